"""Fit D(y, t) to fixed real and generated mixtures, and measure its distance from the exact D*.

With both laws fixed, the discriminator's logistic loss L(D) = E_{p_r,t} softplus(-l) + E_{p_g,t} softplus(l)
(t ~ p) is minimised by D* (Goodfellow et al. 2014, Prop. 1), and for any D
L(D) - L(D*) = 2 E_{m_t} KL(Bern(D*) || Bern(D)) >= 4 E_{m_t} (D - D*)^2 (Pinsker), m_t = (p_r,t + p_g,t)/2:
the root-mean-square error under m is at most sqrt(excess loss / 4).
"""

from __future__ import annotations

import math
import sys

import torch
import torch.nn.functional as F
from torch import nn

from toy.mixture import GaussianMixture
from toy.validate import as_float_tensor, check_float, check_int

from .noise import InstanceNoise
from .optimal import optimal_logit
from .train import discriminator_loss

__all__ = ["fit_discriminator", "discriminator_error"]


def _draw(real: GaussianMixture, fake: GaussianMixture, noise: InstanceNoise, probs: torch.Tensor, n: int, gen: torch.Generator):
    t_r = torch.multinomial(probs, n, replacement=True, generator=gen)
    t_f = torch.multinomial(probs, n, replacement=True, generator=gen)
    y_r = noise.diffuse(real.sample(n, gen), t_r, gen)
    y_f = noise.diffuse(fake.sample(n, gen), t_f, gen)
    return y_r, t_r, y_f, t_f


def _probs(noise: InstanceNoise, probs) -> torch.Tensor:
    p = as_float_tensor(probs, "probs", dtype=torch.float64, ndim=1)
    if p.shape[0] != noise.T + 1:
        raise ValueError(f"probs must have T + 1 = {noise.T + 1} entries, got {p.shape[0]}")
    return p


def fit_discriminator(
    D: nn.Module,
    real: GaussianMixture,
    fake: GaussianMixture,
    noise: InstanceNoise,
    probs: torch.Tensor,
    *,
    steps: int = 1500,
    batch_size: int = 512,
    lr: float = 3e-3,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> list[float]:
    """Minimise the logistic loss of D on fresh noised draws (Adam, cosine-decayed rate); returns the loss per step."""
    from tqdm import tqdm

    steps = check_int(steps, "steps", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    lr = check_float(lr, "lr", low=0.0, low_open=True)
    probs = _probs(noise, probs)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(D.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    D.train()
    for _ in tqdm(range(steps), desc="fit D", file=sys.stderr, disable=not progress, leave=False):
        y_r, t_r, y_f, t_f = _draw(real, fake, noise, probs, batch_size, gen)
        loss = discriminator_loss(D(y_r.float(), t_r), D(y_f.float(), t_f))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    D.eval()
    return losses


def discriminator_error(
    D: nn.Module,
    real: GaussianMixture,
    fake: GaussianMixture,
    noise: InstanceNoise,
    probs: torch.Tensor,
    *,
    n: int = 20000,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """RMS and largest |D - D*| under m_t, and the excess logistic loss L(D) - L(D*) with its standard error."""
    n = check_int(n, "n", minimum=2)
    probs = _probs(noise, probs)
    gen = generator if generator is not None else torch.Generator().manual_seed(1)
    y_r, t_r, y_f, t_f = _draw(real, fake, noise, probs, n, gen)
    with torch.no_grad():
        l_r = D(y_r.float(), t_r).double()
        l_f = D(y_f.float(), t_f).double()
    s_r = optimal_logit(noise.law(real, t_r), noise.law(fake, t_r), y_r)
    s_f = optimal_logit(noise.law(real, t_f), noise.law(fake, t_f), y_f)
    err = torch.cat([torch.sigmoid(l_r) - torch.sigmoid(s_r), torch.sigmoid(l_f) - torch.sigmoid(s_f)])
    # paired per-draw excess loss: (softplus(-l_r) + softplus(l_f)) - (softplus(-s_r) + softplus(s_f))
    diff = (F.softplus(-l_r) + F.softplus(l_f)) - (F.softplus(-s_r) + F.softplus(s_f))
    return {
        "rms": float(err.pow(2).mean().sqrt()),
        "max": float(err.abs().max()),
        "excess": float(diff.mean()),
        "excess_se": float(diff.std() / math.sqrt(n)),
        "loss": float((F.softplus(-l_r) + F.softplus(l_f)).mean()),
        "loss_optimal": float((F.softplus(-s_r) + F.softplus(s_f)).mean()),
    }
