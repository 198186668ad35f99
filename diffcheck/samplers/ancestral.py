"""DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) on any process and any grid."""

from __future__ import annotations

from typing import Any

import torch

from toy.validate import check_choice

from ..param import Model, predict
from ..process.base import Process
from .base import sampler
from .loop import Coefficients, coefficients, walk

__all__ = ["ancestral_step", "ddpm_ancestral", "ve_ancestral", "vp_ancestral"]


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
    """One step x_t -> x_s ~ N(posterior mean at the predicted x_0, variance); no noise into sigma_s = 0.

    ``variance="beta_tilde"``: the posterior variance (exact for x_0 at a point);
    ``"beta"``: the forward transition variance (exact for x_0 ~ N(0, I)) (Ho et al. 2020, Sec. 3.2).
    The mean is (x_t - trans_var / sigma_t * eps) / a (Eq. 11) or, with ``clip_x0``, the
    posterior mean at the clipped x_0 prediction (Eq. 7), as the DDPM code does.
    """
    c = coef or coefficients(process, t, s)
    if clip_x0 is None:
        eps = predict(model, process, x, t, "eps", **kw)
        mean = (x - (c.sigma_t * c.drop) * eps) / c.a
    else:
        x0 = predict(model, process, x, t, "x0", **kw).clamp(clip_x0[0], clip_x0[1])
        mean = c.coef_x0 * x0 + c.coef_xt * x
    if c.sigma_s == 0.0:  # the step to the data: Algorithm 2 draws no noise at t = 1
        return mean, mean
    var = c.post_var if variance == "beta_tilde" else c.trans_var
    return mean + var**0.5 * noise(x), mean


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
    """DDPM ancestral sampling over ``grid`` (every step, or a respaced sub-grid: Nichol & Dhariwal 2021).

    ``clip_x0`` (e.g. (-1, 1)) clamps the x_0 prediction as the official code does by
    default; it is off here because it is wrong for data outside that range.
    """
    check_choice(variance, "variance", ("beta_tilde", "beta"))
    if clip_x0 is not None and (len(clip_x0) != 2 or not clip_x0[0] < clip_x0[1]):
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
