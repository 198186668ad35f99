"""DDIM (Song, Meng & Ermon 2020): the non-Markovian sampler with any eta, and its deterministic inversion."""

from __future__ import annotations

import math
from typing import Any

import torch

from toy.validate import check_float

from ..param import Model, convert
from ..process.base import Process
from .base import sampler
from .loop import Coefficients, coefficients, walk

__all__ = ["ddim_step", "ddim", "ddim_invert"]


def _x0_eps(model: Model, process: Process, x: torch.Tensor, t: torch.Tensor, **kw: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's x_0 and eps predictions at (x, t), whatever it predicts natively."""
    out = model(x, t, **kw)
    pred = getattr(model, "prediction", None)
    a, s = process.alpha(t), process.sigma(t)
    x0 = out if pred == "x0" else convert(out, x, a, s, pred, "x0")
    eps = out if pred == "eps" else convert(out, x, a, s, pred, "eps")
    return x0, eps


def ddim_step(model: Model, process: Process, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor, noise, *,
              last: bool = False, eta: float = 0.0, coef: Coefficients | None = None, **kw: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """x_s = alpha_s x0 + sqrt(sigma_s^2 - sigma_eta^2) eps + sigma_eta z, sigma_eta^2 = eta^2 beta_tilde (Song et al. 2020,
    Eq. 12 and Eq. 16); with eta = 0 it also runs upward in time (``ddim_invert``)."""
    c = coef or coefficients(process, t, s)
    x0, eps = _x0_eps(model, process, x, t, **kw)
    var = eta * eta * c.beta_tilde if eta else 0.0
    if var > c.sigma_s**2 * (1.0 + 1e-12):
        raise ValueError(f"eta={eta:g} is too large for the step t={c.t:.6g} -> {c.s:.6g}: sigma_eta exceeds sigma_s")
    mean = c.alpha_s * x0 + math.sqrt(max(c.sigma_s**2 - var, 0.0)) * eps
    if var == 0.0:
        return mean, mean
    return mean + math.sqrt(var) * noise(x), mean


@sampler("ode", "Song et al. 2020, Eq. 12 with eta = 0 (Euler in x/alpha and sigma/alpha, Eq. 13)", order=1.0, weak_order=1.0, stochastic=True)
def ddim(
    model: Model,
    process: Process,
    x: torch.Tensor,
    grid: Any,
    *,
    eta: float = 0.0,
    generator: Any = None,
    check_finite: bool = True,
    progress: bool = False,
    full: bool = False,
    **model_kwargs: Any,
):
    """DDIM over ``grid`` (e.g. ``ddim_grid(process, S, "uniform"|"quadratic")``); eta = 1 is DDPM's posterior.

    With eta = 0 it is deterministic (global order 1, the ``order`` in its info); with
    eta > 0 it needs ``generator`` and converges weakly at order 1. A step into
    sigma_s = 0 draws no noise (its variance is zero).
    """
    eta = check_float(eta, "eta", low=0.0)
    return walk(ddim_step, model, process, x, grid, generator=generator, stochastic=eta > 0, name="ddim",
                check_finite=check_finite, progress=progress, full=full, eta=eta, **model_kwargs)


@sampler("ode", "Song et al. 2020, Sec. 4.3 (encoding by the reversed ODE)", order=1.0, stochastic=False)
def ddim_invert(
    model: Model,
    process: Process,
    x0: torch.Tensor,
    grid: Any,
    *,
    check_finite: bool = True,
    progress: bool = False,
    full: bool = False,
    **model_kwargs: Any,
):
    """Encode x_0 into x_T by DDIM's ODE run forward: x_t = alpha_t x0(x_s) + sigma_t eps(x_s), over ``grid`` reversed.

    ``grid`` is the decreasing grid a DDIM sampler would walk; the encoder walks it from
    its end to its start with DDIM's eta = 0 step, evaluating the model at the less noisy
    time of each step (one evaluation per step).
    """
    return walk(ddim_step, model, process, x0, grid, stochastic=False, name="ddim_invert", check_finite=check_finite,
                progress=progress, full=full, ascending=True, eta=0.0, **model_kwargs)
