"""The one place for training losses: functions of (model, process, x_0, t or a t-sampler, generator), per sample.

Built on them: ``diffcheck.learned.objectives`` (recipes for toy models: a loss with its
process, network and sampler), ``diffcheck.training.objective`` (the ``loss_fn`` the
training loop takes) and ``diffcheck.checks.objectives`` (checks of their minima).

Every loss returns one value per sample (shape (B,)); a training step averages them,
times importance weights where t was importance-sampled (``diffcheck.importance``).
Noise is drawn from ``generator`` unless ``eps`` fixes it, so that two models can be
compared on the same draws. On the exact model each objective's minimum and its rise
under a perturbation of the prediction are closed form (``diffcheck.checks.objectives``).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from toy.validate import as_float_tensor, check_choice, check_float, check_int

from .param import PREDICTIONS, Model, convert, predict
from .process.base import Process
from .process.discrete import Schedule
from .tensor import batch_time, per_sample
from .variance import learned_range, split_output, steps_tensor
from .vlb import bound_term, check_data_schedule

__all__ = [
    "uniform_steps",
    "uniform_times",
    "denoising_score_matching",
    "ncsn_loss",
    "eps_mse",
    "simple_loss",
    "score_sde_loss",
    "sliced_score_matching",
    "implicit_score_matching",
    "hybrid_loss",
]


# -- t-samplers ---------------------------------------------------------------------------------
def uniform_steps(num_steps: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n steps drawn uniformly from 1..num_steps (DDPM's t ~ Uniform{1, ..., T}), int64."""
    num_steps = check_int(num_steps, "num_steps", minimum=1)
    n = check_int(n, "n", minimum=1)
    return torch.randint(1, num_steps + 1, (n,), generator=generator)


def uniform_times(n: int, generator: torch.Generator | None = None, t_min: float = 0.0, t_max: float = 1.0) -> torch.Tensor:
    """n times drawn uniformly from [t_min, t_max] (float64)."""
    n = check_int(n, "n", minimum=1)
    t_min = check_float(t_min, "t_min", low=0.0, high=1.0)
    t_max = check_float(t_max, "t_max", low=0.0, high=1.0)
    if t_max < t_min:
        raise ValueError(f"t_max must be >= t_min, got t_min={t_min}, t_max={t_max}")
    return t_min + (t_max - t_min) * torch.rand(n, generator=generator, dtype=torch.float64)


# -- helpers ------------------------------------------------------------------------------------
def _data(x0: Any) -> torch.Tensor:
    if not isinstance(x0, torch.Tensor) or not x0.is_floating_point():
        raise TypeError("x0 must be a floating tensor of shape (B, ...)")
    if x0.ndim < 2:
        raise ValueError(f"x0 must have a batch dimension, shape (B, ...), got {tuple(x0.shape)}")
    if x0.device.type == "cpu" and not bool(torch.isfinite(x0).all()):  # values on an accelerator are not read: that would synchronise
        raise ValueError("x0 contains NaN or inf")
    return x0


def _noise(x0: torch.Tensor, eps: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
    if eps is None:
        return torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    if eps.shape != x0.shape:
        raise ValueError(f"eps must have the shape of x0 {tuple(x0.shape)}, got {tuple(eps.shape)}")
    return eps


def _flat(v: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape[0], -1)


def _noised(process: Process, x0: torch.Tensor, tb: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    a, s = process.alpha(tb), process.sigma(tb)
    return per_sample(a, x0) * x0 + per_sample(s, x0) * eps, a, s


# -- denoising score matching -----------------------------------------------------------------
def denoising_score_matching(
    model: Model,
    process: Process,
    x0: torch.Tensor,
    t: Any,
    generator: torch.Generator | None = None,
    *,
    weight: str = "sigma2",
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-sample DSM loss lambda(t) * 1/2 |s(x_t, t) + eps / sigma|^2 (Vincent 2011; Song & Ermon 2019, Eq. 5-6).

    ``weight="sigma2"`` is NCSN's lambda(sigma) = sigma^2 (its code's anneal_power 2),
    ``"g2"`` the likelihood weighting g(t)^2 (Song et al. 2021b), ``"none"`` the
    unweighted objective. ``eps`` fixes the noise (else drawn with ``generator``).
    """
    weight = check_choice(weight, "weight", ("sigma2", "g2", "none"))
    x0 = _data(x0)
    eps = _noise(x0, eps, generator)
    tb = batch_time(t, x0)
    xt, _, sig = _noised(process, x0, tb, eps)
    score = predict(model, process, xt, tb, "score")
    per = 0.5 * _flat(score + eps / per_sample(sig, x0)).pow(2).sum(-1)
    if weight == "sigma2":
        return per * sig**2
    if weight == "g2":
        return per * process.g2(tb)
    return per


def ncsn_loss(
    model: Model,
    process: Process,
    x0: torch.Tensor,
    sigmas: Any,
    generator: torch.Generator | None = None,
    *,
    eps: torch.Tensor | None = None,
    index: torch.Tensor | None = None,
) -> torch.Tensor:
    """NCSN's objective (Song & Ermon 2019, Eq. 6): DSM with lambda(sigma) = sigma^2 at a level drawn uniformly from the ladder.

    ``sigmas`` are the noise levels sigma/alpha of the ladder; each is mapped to the time
    of ``process`` with that level (``t_of_edm_sigma``; for a VE process sigma itself).
    ``index`` (B,) fixes the levels drawn.
    """
    x0 = _data(x0)
    sig = as_float_tensor(sigmas, "sigmas", dtype=torch.float64, ndim=1)
    if sig.numel() == 0 or bool((sig <= 0).any()):
        raise ValueError("sigmas must be a non-empty ladder of positive noise levels")
    times = process.t_of_edm_sigma(sig)
    if index is None:
        index = torch.randint(0, sig.numel(), (x0.shape[0],), generator=generator)
    elif index.shape != (x0.shape[0],) or bool((index < 0).any()) or bool((index >= sig.numel()).any()):
        raise ValueError(f"index must have shape ({x0.shape[0]},) with values in [0, {sig.numel() - 1}]")
    return denoising_score_matching(model, process, x0, times[index].to(x0), generator, weight="sigma2", eps=eps)


# -- epsilon prediction -----------------------------------------------------------------------
def eps_mse(
    model: Model,
    process: Process,
    x0: torch.Tensor,
    t: Any,
    generator: torch.Generator | None = None,
    *,
    eps: torch.Tensor | None = None,
    reduce: str = "sum",
    **model_kwargs: Any,
) -> torch.Tensor:
    """|eps - eps_theta(x_t, t)|^2 per sample (Ho et al. 2020, Eq. 14); ``reduce="mean"`` averages over dimensions as both official codes do.

    ``model_kwargs`` (e.g. class labels ``y``) are passed on to the model.
    """
    reduce = check_choice(reduce, "reduce", ("sum", "mean"))
    x0 = _data(x0)
    eps = _noise(x0, eps, generator)
    tb = batch_time(t, x0)
    xt, _, _ = _noised(process, x0, tb, eps)
    sq = _flat(eps - predict(model, process, xt, tb, "eps", **model_kwargs)).pow(2)
    return sq.sum(-1) if reduce == "sum" else sq.mean(-1)


def simple_loss(
    model: Model,
    schedule: Schedule,
    x0: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    steps: torch.Tensor | None = None,
    eps: torch.Tensor | None = None,
    reduce: str = "sum",
) -> torch.Tensor:
    """DDPM's L_simple (Ho et al. 2020, Eq. 14, Algorithm 1): eps-MSE at a step drawn uniformly from 1..N of ``schedule``."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    x0 = _data(x0)
    if steps is None:
        steps = uniform_steps(schedule.num_steps, x0.shape[0], generator)
    s = steps_tensor(steps, schedule, x0)
    return eps_mse(model, schedule.process, x0, schedule.t.to(x0)[s], generator, eps=eps, reduce=reduce)


# -- score SDE ----------------------------------------------------------------------------------
def score_sde_loss(
    model: Model,
    process: Process,
    x0: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    weighting: str = "sigma2",
    t_eps: float | None = None,
    t: Any = None,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """Continuous-time DSM (Song et al. 2021, Eq. 7) at t ~ U(t_eps, 1): lambda = sigma^2, or g^2 (``weighting="likelihood"``).

    With the likelihood weighting the expected loss is, up to a constant of the data, the
    score-matching part of the bound on -log p of the reverse SDE (Song et al. 2021b, Thm. 1).
    ``t_eps`` defaults to the process's ``t_eps``; ``t`` fixes the times.
    """
    weighting = check_choice(weighting, "weighting", ("sigma2", "likelihood"))
    x0 = _data(x0)
    if t is None:
        lo = process.t_eps if t_eps is None else check_float(t_eps, "t_eps", low=0.0, high=1.0, high_open=True)
        t = uniform_times(x0.shape[0], generator, lo, 1.0).to(x0)
    weight = "sigma2" if weighting == "sigma2" else "g2"
    return denoising_score_matching(model, process, x0, t, generator, weight=weight, eps=eps)


# -- score matching without noise: sliced and implicit ----------------------------------------
def _score_at(model: Model, process: Process, x0: torch.Tensor, t: Any, generator, eps) -> tuple[torch.Tensor, torch.Tensor]:
    """x_t (requiring grad) and the model's score there."""
    x0 = _data(x0)
    tb = batch_time(t, x0)
    xt, _, _ = _noised(process, x0, tb, _noise(x0, eps, generator))
    xt = xt.detach().requires_grad_(True)
    return xt, predict(model, process, xt, tb, "score")


def sliced_score_matching(
    model: Model,
    process: Process,
    x0: torch.Tensor,
    t: Any,
    generator: torch.Generator | None = None,
    *,
    projections: int = 1,
    distribution: str = "gaussian",
    variance_reduced: bool = False,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sliced score matching at x_t ~ p_t (Song et al. 2019): v^T grad(v^T s) v + 1/2 (v^T s)^2, averaged over projections.

    ``variance_reduced`` uses 1/2 |s|^2 for the second term (SSM-VR). Projections v are
    ``"gaussian"``, ``"rademacher"`` or uniform on the ``"sphere"`` of radius sqrt(D); all
    have E[v v^T] = I, so the expectation is implicit score matching. With sigma(t) = 0
    the points are the data themselves (the toy of Song & Ermon 2019, Fig. 2). The projections are drawn
    from ``generator`` after the noise.
    """
    projections = check_int(projections, "projections", minimum=1)
    distribution = check_choice(distribution, "distribution", ("gaussian", "rademacher", "sphere"))
    xt, score = _score_at(model, process, x0, t, generator, eps)
    d = xt[0].numel()
    total = torch.zeros(xt.shape[0], dtype=score.dtype, device=score.device)
    for _ in range(projections):
        v = torch.randn(xt.shape, generator=generator, dtype=xt.dtype, device=xt.device)
        if distribution == "rademacher":
            v = torch.sign(v)
        elif distribution == "sphere":
            v = v / _flat(v).norm(dim=-1).clamp_min(1e-300).reshape(-1, *([1] * (xt.ndim - 1))) * math.sqrt(d)
        sv = _flat(v * score).sum(-1)
        (grad,) = torch.autograd.grad(sv.sum(), xt, create_graph=True)
        second = 0.5 * _flat(score).pow(2).sum(-1) if variance_reduced else 0.5 * sv**2
        total = total + _flat(v * grad).sum(-1) + second
    return total / projections


def implicit_score_matching(
    model: Model,
    process: Process,
    x0: torch.Tensor,
    t: Any,
    generator: torch.Generator | None = None,
    *,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """Implicit score matching at x_t ~ p_t (Hyvarinen 2005, Thm. 1): tr(grad_x s) + 1/2 |s|^2, the trace exact.

    The trace costs one backward pass per dimension: meant for low-dimensional data.
    Its expectation is 1/2 E|s - grad log p_t|^2 - 1/2 E|grad log p_t|^2.
    """
    xt, score = _score_at(model, process, x0, t, generator, eps)
    flat = _flat(score)
    trace = torch.zeros(xt.shape[0], dtype=score.dtype, device=score.device)
    for j in range(flat.shape[1]):
        (grad,) = torch.autograd.grad(flat[:, j].sum(), xt, create_graph=True)
        trace = trace + _flat(grad)[:, j]
    return trace + 0.5 * flat.pow(2).sum(-1)


# -- Improved DDPM ---------------------------------------------------------------------------
def hybrid_loss(
    model: Any,
    schedule: Schedule,
    x0: torch.Tensor,
    step: Any,
    generator: torch.Generator | None = None,
    *,
    lam: float = 0.001,
    decoder: str = "gaussian",
    cdf: str = "exact",
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_hybrid = L_simple + lam L_vlb per sample (Nichol & Dhariwal 2021, Eq. 16), the mean stopped from L_vlb's gradient.

    ``model`` is a learned-variance model (``diffcheck.variance``). As in the official code
    (its RESCALED_MSE loss): L_simple is the mean over dimensions of (eps - eps_theta)^2, the
    bound term L_{i-1} at the sampled step is in bits per dimension and is scaled by N, so
    that N L_{i-1} estimates L_vlb under uniform steps (lam N = 1 at N = 1000). L_vlb's
    gradient reaches the variance output only: the model's mean output is detached there.
    """
    lam = check_float(lam, "lam", low=0.0)
    check_data_schedule(schedule)
    x0 = _data(x0)
    kind = getattr(model, "prediction", None)
    if kind not in PREDICTIONS:
        raise TypeError(f"model must have a 'prediction' attribute in {PREDICTIONS}, got {kind!r}")
    s = steps_tensor(step, schedule, x0)
    eps = _noise(x0, eps, generator)
    a = schedule.alpha.to(x0)[s]
    sg = schedule.sigma.to(x0)[s]
    xt = per_sample(a, x0) * x0 + per_sample(sg, x0) * eps
    pred, v_raw = split_output(model, xt, schedule.t.to(x0)[s])
    simple = _flat(eps - convert(pred, xt, a, sg, kind, "eps")).pow(2).mean(-1)
    x0_hat = convert(pred.detach(), xt, a, sg, kind, "x0")
    term = bound_term(schedule, x0, xt, s, x0_hat, learned_range(v_raw, schedule, s), decoder=decoder, cdf=cdf)
    return simple + lam * schedule.num_steps * term / (x0[0].numel() * math.log(2.0))
