"""Reverse-SDE samplers of the score SDE paper (Song et al. 2021): Euler-Maruyama, reverse diffusion, predictor-corrector."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from toy.validate import check_choice, check_float, check_int

from ..param import Model, predict
from ..process.base import Process
from ..reverse import ReverseSDE
from .base import check_explicit_step, sampler
from .loop import Coefficients, coefficients, walk

NORMS = ("sigma", "per_sample", "batch")  # the Langevin corrector's step rules (langevin_corrector_step)

__all__ = [
    "NORMS",
    "euler_maruyama_step",
    "reverse_diffusion_step",
    "langevin_corrector_step",
    "euler_maruyama",
    "reverse_diffusion",
    "predictor_corrector",
]


def euler_maruyama_step(model: Model, process: Process, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor, noise, *,
                        last: bool = False, coef: Coefficients | None = None, **kw: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """x_s = x_t - b(x_t, t) (t - s) + g(t) sqrt(t - s) z, with b the reverse SDE's drift (Song et al. 2021, Eq. 6)."""
    c = coef or coefficients(process, t, s)
    check_explicit_step("euler_maruyama", c.t, c.s, c.f_t, c.g2_t, c.sigma_t, 1.0)
    h = c.t - c.s
    sde = ReverseSDE(process, model)
    mean = x - h * sde.drift(x, t, f=c.f_t, g2=c.g2_t, sigma=c.sigma_t, **kw)
    return mean + (sde.diffusion(t, g2=c.g2_t) * math.sqrt(h)) * noise(x), mean


def reverse_diffusion_step(model: Model, process: Process, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor, noise, *,
                           last: bool = False, coef: Coefficients | None = None, **kw: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The reverse of the discretised forward step x_t = a x_s + G z: x_s = (2 - a) x_t + G^2 score + G z (Song et al. 2021, App. E).

    a = alpha_t / alpha_s and G^2 = beta, the step's forward transition variance (Ho et al. 2020, Eq. 2 for VP).
    """
    c = coef or coefficients(process, t, s)
    a, beta = c.alpha_ratio, c.beta
    score = predict(model, process, x, t, "score", **kw)
    mean = (2.0 - a) * x + beta * score
    return mean + math.sqrt(beta) * noise(x), mean


def langevin_corrector_step(model: Model, process: Process, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor, noise, *,
                            snr: float = 0.16, norm: str = "sigma", coef: Coefficients | None = None,
                            **kw: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """One Langevin corrector step at time t with step 2 a_i (snr |z| / |score|)^2 (Song et al. 2021, Algorithm 4-5).

    a_i = alpha_t^2 / alpha_s^2 (1 - beta_i for VP, 1 for VE). The norms' ratio |z| / |score|
    is, by ``norm``: ``"sigma"`` (default) sigma_t, the ratio of the expected norms
    sqrt(d) / sqrt(d / sigma_t^2) when the noise dominates (exact in expectation for the score of
    N(0, sigma_t^2 I)), the same for every sample and state; ``"per_sample"`` each sample's own
    norms, as Song et al. 2021, Algorithm 4 is written (the step grows without bound where |score| vanishes, at the
    modes and saddles of p_t, and throws samples far out in low dimension); ``"batch"`` the norms
    averaged over the batch as the official code does, which makes every sample depend on the others.
    """
    c = coef or coefficients(process, t, s)
    check_choice(norm, "norm", NORMS)
    score = predict(model, process, x, t, "score", **kw)
    z = noise(x)
    if norm == "sigma":
        step = 2.0 * c.alpha_ratio**2 * (snr * c.sigma_t) ** 2
        mean = x + step * score
        return mean + math.sqrt(2.0 * step) * z, mean
    gn = score.reshape(x.shape[0], -1).norm(dim=-1)
    zn = z.reshape(x.shape[0], -1).norm(dim=-1)
    if norm == "batch":
        gn, zn = gn.mean().expand_as(gn), zn.mean().expand_as(zn)
    step = 2.0 * c.alpha_ratio**2 * (snr * zn / gn) ** 2
    step = step.reshape(-1, *([1] * (x.ndim - 1)))
    mean = x + step * score
    return mean + torch.sqrt(2.0 * step) * z, mean


@sampler("sde", "Song et al. 2021, Eq. 6 discretised by Euler-Maruyama", weak_order=1.0, strong_order=1.0)
def euler_maruyama(model: Model, process: Process, x: torch.Tensor, grid: Any, *, generator: Any, denoise: bool = True,
                   check_finite: bool = True, progress: bool = False, full: bool = False, **model_kwargs: Any):
    """Euler-Maruyama on the reverse SDE over ``grid``; with ``denoise`` the last step's noise is left out.

    The reverse SDE has additive noise (g depends on t only), so its strong order is 1.
    """
    return walk(euler_maruyama_step, model, process, x, grid, generator=generator, name="euler_maruyama", denoise=denoise,
                check_finite=check_finite, progress=progress, full=full, **model_kwargs)


@sampler("sde", "Song et al. 2021, App. E (reverse diffusion predictor)", weak_order=1.0)
def reverse_diffusion(model: Model, process: Process, x: torch.Tensor, grid: Any, *, generator: Any, denoise: bool = True,
                      check_finite: bool = True, progress: bool = False, full: bool = False, **model_kwargs: Any):
    """The reverse diffusion predictor over ``grid``; with ``denoise`` the last step's noise is left out."""
    return walk(reverse_diffusion_step, model, process, x, grid, generator=generator, name="reverse_diffusion", denoise=denoise,
                check_finite=check_finite, progress=progress, full=full, **model_kwargs)


def _pc_step(model, process, x, t, s, noise, *, last, coef, predictor, corrector, n_corrector, snr, norm, predictor_options,
             **kw):
    # every keyword comes from predictor_corrector through walk: the defaults live there alone
    mean = x
    if corrector is not None:
        for _ in range(n_corrector):
            x, mean = corrector(model, process, x, t, s, noise, snr=snr, norm=norm, coef=coef, **kw)
    if predictor is not None:
        x, mean = predictor(model, process, x, t, s, noise, last=last, coef=coef, **(predictor_options or {}), **kw)
    return x, mean


@sampler("sde", "Song et al. 2021, App. G (predictor-corrector, Algorithms 2-3)", weak_order=1.0)
def predictor_corrector(
    model: Model,
    process: Process,
    x: torch.Tensor,
    grid: Any,
    *,
    generator: Any,
    predictor: Callable | None = reverse_diffusion_step,
    corrector: Callable | None = langevin_corrector_step,
    n_corrector: int = 1,
    snr: float = 0.16,
    norm: str = "sigma",
    denoise: bool = True,
    predictor_options: dict | None = None,
    check_finite: bool = True,
    progress: bool = False,
    full: bool = False,
    **model_kwargs: Any,
):
    """At each grid time: ``n_corrector`` corrector steps, then one predictor step to the next time.

    ``predictor`` is a step function (``reverse_diffusion_step``, ``euler_maruyama_step``,
    ``ancestral_step``, ...) or None for corrector only; ``corrector`` is
    ``langevin_corrector_step`` or None. ``snr`` is the signal-to-noise ratio r (0.16 for
    CIFAR-10 VE); ``norm`` is the corrector's step rule (``langevin_corrector_step``): "sigma"
    (default: batch-independent and bounded), "per_sample" (Song et al. 2021, Algorithm 4, as written) or "batch"
    (the official code's coupling).
    """
    n_corrector = check_int(n_corrector, "n_corrector", minimum=0)
    snr = check_float(snr, "snr", low=0.0, low_open=True)
    check_choice(norm, "norm", NORMS)
    if predictor is None and (corrector is None or n_corrector == 0):
        raise ValueError("predictor_corrector needs a predictor, a corrector, or both")
    for name, fn in (("predictor", predictor), ("corrector", corrector)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be a step function or None")
    return walk(_pc_step, model, process, x, grid, generator=generator, name="predictor_corrector", denoise=denoise,
                check_finite=check_finite, progress=progress, full=full, predictor=predictor,
                corrector=corrector if n_corrector else None, n_corrector=n_corrector, snr=snr, norm=norm,
                predictor_options=predictor_options, **model_kwargs)

