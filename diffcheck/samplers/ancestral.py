"""DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) on any process and any grid, with DDPM's fixed variances or
Improved DDPM's learned one (Nichol & Dhariwal 2021, Eq. 15)."""

from __future__ import annotations

import math
from typing import Any

import torch

from toy.validate import check_choice

from ..param import Model, predict
from ..process.base import Process
from ..variance import learned_log_variance, predict_with_variance
from .base import sampler
from .loop import Coefficients, coefficients, walk

__all__ = ["VARIANCES", "ancestral_moments", "ancestral_step", "check_variance", "gaussian_draw", "ddpm_ancestral", "ve_ancestral",
           "vp_ancestral"]

VARIANCES = ("beta_tilde", "beta", "learned")


def check_variance(variance: str, model: Any) -> str:
    """Validate an ancestral variance choice; ``"learned"`` needs a learned-variance model (``diffcheck.variance``)."""
    check_choice(variance, "variance", VARIANCES)
    if variance == "learned" and not callable(getattr(model, "forward_full", None)):
        raise TypeError("variance='learned' needs a learned-variance model: model has no forward_full(x, t) "
                        "(see diffcheck.variance)")
    return variance


def ancestral_moments(
    model: Model,
    process: Process,
    x: torch.Tensor,
    t: torch.Tensor,
    s: torch.Tensor,
    *,
    variance: str = "beta_tilde",
    clip_x0: tuple[float, float] | None = None,
    coef: Coefficients | None = None,
    **kw: Any,
) -> tuple[torch.Tensor, float | torch.Tensor]:
    """Mean and variance of the reverse step x_t -> x_s, from one model evaluation (Ho et al. 2020, Eq. 11).

    The mean is (x_t - beta / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) (Ho et al. 2020, Eq. 11; for any
    process sqrt(1 - alpha_bar_t) is sigma_t and sqrt(alpha_t) is alpha_t / alpha_s) or, with ``clip_x0``, the
    posterior mean at the clipped x_0 prediction (Ho et al. 2020, Eq. 7), as the DDPM code does. The variance is
    ``"beta_tilde"`` (exact for x_0 at a point), ``"beta"`` (exact for x_0 ~ N(0, I)) (Ho et al. 2020, Sec. 3.2) or
    ``"learned"``: exp(v log beta + (1 - v) log beta_tilde) per coordinate from the model's variance output
    (Nichol & Dhariwal 2021, Eq. 15), with the beta and beta_tilde of this step t -> s. A step into sigma_s = 0
    has variance 0: Ho et al. 2020, Algorithm 2 draws no noise at its last step.
    """
    check_choice(variance, "variance", VARIANCES)
    c = coef or coefficients(process, t, s)
    beta, beta_tilde = c.beta, c.beta_tilde
    want = "eps" if clip_x0 is None else "x0"
    learned = variance == "learned" and c.sigma_s > 0.0
    if learned:
        out, v_raw = predict_with_variance(model, process, x, t, want, **kw)
    else:
        out = predict(model, process, x, t, want, **kw)
    if clip_x0 is None:
        eps = out
        sqrt_one_minus_alpha_bar, sqrt_alpha = c.sigma_t, c.alpha_ratio
        mean = (x - (beta / sqrt_one_minus_alpha_bar) * eps) / sqrt_alpha
    else:
        x0 = out.clamp(clip_x0[0], clip_x0[1])
        mean = c.posterior_mean_coef_x0 * x0 + c.posterior_mean_coef_xt * x
    if c.sigma_s == 0.0:
        return mean, 0.0
    if learned:
        return mean, learned_log_variance(v_raw, math.log(beta), math.log(beta_tilde)).exp()
    return mean, beta_tilde if variance == "beta_tilde" else beta


def ancestral_step(
    model: Model,
    process: Process,
    x: torch.Tensor,
    t: torch.Tensor,
    s: torch.Tensor,
    noise,
    *,
    last: bool = False,
    variance: str = "beta_tilde",
    clip_x0: tuple[float, float] | None = None,
    coef: Coefficients | None = None,
    **kw: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step x_t -> x_s ~ N(mu, Sigma) of Ho et al. 2020, Algorithm 2 (line 4), with ``ancestral_moments``' mu, Sigma."""
    mean, var = ancestral_moments(model, process, x, t, s, variance=variance, clip_x0=clip_x0, coef=coef, **kw)
    return gaussian_draw(mean, var, noise, x), mean


def gaussian_draw(mean: torch.Tensor, var: float | torch.Tensor, noise, x: torch.Tensor) -> torch.Tensor:
    """mean + sqrt(var) z with z = noise(x); a variance of exactly 0 (the step to the data) draws no noise."""
    if isinstance(var, float) and var == 0.0:
        return mean
    return mean + var**0.5 * noise(x)


@sampler("chain", "Ho et al. 2020, Algorithm 2", weak_order=1.0)
def ddpm_ancestral(
    model: Model,
    process: Process,
    x: torch.Tensor,
    grid: Any,
    *,
    generator: Any,
    variance: str = "beta_tilde",
    clip_x0: tuple[float, float] | None = None,
    check_finite: bool = True,
    progress: bool = False,
    full: bool = False,
    **model_kwargs: Any,
):
    """DDPM ancestral sampling over ``grid`` (every step, or a respaced sub-grid: Nichol & Dhariwal 2021, App. B).

    ``variance`` is "beta_tilde", "beta" or "learned" (a learned-variance model, e.g. one
    trained with L_hybrid: Nichol & Dhariwal 2021, Eq. 16). ``clip_x0`` (e.g. (-1, 1)) clamps
    the x_0 prediction as the official code does by default; it is off here because it is
    wrong for data outside that range.
    """
    check_variance(variance, model)
    if clip_x0 is not None and (not isinstance(clip_x0, (tuple, list)) or len(clip_x0) != 2 or not clip_x0[0] < clip_x0[1]):
        raise ValueError(f"clip_x0 must be a (low, high) pair with low < high, got {clip_x0!r}")
    return walk(ancestral_step, model, process, x, grid, generator=generator, name="ddpm_ancestral",
                check_finite=check_finite, progress=progress, full=full, variance=variance, clip_x0=clip_x0, **model_kwargs)


@sampler("chain", "Song et al. 2021, App. F (VE ancestral sampling = SMLD posterior)", weak_order=1.0)
def ve_ancestral(model: Model, process: Process, x: torch.Tensor, grid: Any, *, generator: Any, **kw: Any):
    """The score SDE paper's ancestral predictor for VE: posterior variance sigma_s^2 (sigma_t^2 - sigma_s^2) / sigma_t^2."""
    return ddpm_ancestral(model, process, x, grid, generator=generator, variance="beta_tilde", **kw)


@sampler("chain", "Song et al. 2021, App. F (VP ancestral sampling = DDPM with sigma_t^2 = beta_t)", weak_order=1.0)
def vp_ancestral(model: Model, process: Process, x: torch.Tensor, grid: Any, *, generator: Any, **kw: Any):
    """The score SDE paper's ancestral predictor for VP: mean (x + beta s)/sqrt(1 - beta), variance beta."""
    return ddpm_ancestral(model, process, x, grid, generator=generator, variance="beta", **kw)
