"""Probability-flow ODE samplers (Song et al. 2021, Eq. 13): Euler, Heun, and an adaptive Runge-Kutta solve.

Each step evaluates the velocity of ``ReverseSDE(process, model, probability_flow=True)``, the one
definition of the probability-flow ODE (``diffcheck.reverse``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.integrate import solve_ivp

from toy.validate import check_choice, check_float

from ..param import Model
from ..process.base import Process
from ..reverse import ReverseSDE
from .base import Result, SamplingError, StepChecker, check_explicit_step, sampler
from .loop import Coefficients, Counted, coefficients, walk

__all__ = ["probability_flow", "euler_step", "heun_step", "euler_ode", "heun_ode", "adaptive_ode"]


def probability_flow(model: Model, process: Process, x: torch.Tensor, t: Any, *, f: float | None = None,
                     g2: float | None = None, sigma: float | None = None, **kw: Any) -> torch.Tensor:
    """The probability-flow velocity dx/dt = f x - g^2/2 score (Song et al. 2021, Eq. 13): ``ReverseSDE(process, model, True).drift``.

    ``f``, ``g2`` and ``sigma`` at t may be passed in when already known.
    """
    return ReverseSDE(process, model, probability_flow=True).drift(x, t, f=f, g2=g2, sigma=sigma, **kw)


def euler_step(model: Model, process: Process, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor, noise=None, *,
               last: bool = False, coef: Coefficients | None = None, **kw: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """x_s = x_t + (s - t) v(x_t, t), v the probability-flow velocity (Song et al. 2021, Eq. 13)."""
    c = coef or coefficients(process, t, s)
    check_explicit_step("euler_step", c.t, c.s, c.f_t, c.g2_t, c.sigma_t, 0.5)
    flow = ReverseSDE(process, model, probability_flow=True)
    x = x + (c.s - c.t) * flow.drift(x, t, f=c.f_t, g2=c.g2_t, sigma=c.sigma_t, **kw)
    return x, x


def heun_step(model: Model, process: Process, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor, noise=None, *,
              last: bool = False, coef: Coefficients | None = None, **kw: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Heun's (explicit trapezoidal) step on the probability flow (Karras et al. 2022, Algorithm 1, lines 5-8); an Euler
    step where the velocity at s is undefined (sigma(s) = 0)."""
    c = coef or coefficients(process, t, s)
    check_explicit_step("heun_step", c.t, c.s, c.f_t, c.g2_t, c.sigma_t, 0.5)
    flow = ReverseSDE(process, model, probability_flow=True)
    h = c.s - c.t
    d_cur = flow.drift(x, t, f=c.f_t, g2=c.g2_t, sigma=c.sigma_t, **kw)
    x_euler = x + h * d_cur
    if c.sigma_s <= 0.0:
        return x_euler, x_euler
    d_prime = flow.drift(x_euler, s, f=c.f_s, g2=c.g2_s, sigma=c.sigma_s, **kw)
    x = x + 0.5 * h * (d_cur + d_prime)
    return x, x


@sampler("ode", "Song et al. 2021, Eq. 13 (Euler)", order=1.0, stochastic=False)
def euler_ode(model: Model, process: Process, x: torch.Tensor, grid: Any, *, check_finite: bool = True,
              progress: bool = False, full: bool = False, **model_kwargs: Any):
    """Euler's method on the probability-flow ODE over ``grid``."""
    return walk(euler_step, model, process, x, grid, stochastic=False, name="euler_ode", check_finite=check_finite,
                progress=progress, full=full, **model_kwargs)


@sampler("ode", "Song et al. 2021, Eq. 13 (Heun; Karras et al. 2022, Algorithm 1)", order=2.0, stochastic=False)
def heun_ode(model: Model, process: Process, x: torch.Tensor, grid: Any, *, check_finite: bool = True,
             progress: bool = False, full: bool = False, **model_kwargs: Any):
    """Heun's method on the probability-flow ODE over ``grid`` (two evaluations per step, one on a final step to sigma = 0)."""
    return walk(heun_step, model, process, x, grid, stochastic=False, name="heun_ode", check_finite=check_finite,
                progress=progress, full=full, **model_kwargs)


@sampler("ode", "Song et al. 2021, Sec. 4.3 (black-box adaptive ODE solver)", stochastic=False)
def adaptive_ode(
    model: Model,
    process: Process,
    x: torch.Tensor,
    grid: Any,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    method: str = "RK45",
    full: bool = False,
    **model_kwargs: Any,
):
    """Solve the probability-flow ODE from grid[0] to grid[-1] with scipy's ``solve_ivp`` at the given tolerances.

    The whole batch is one system, so step sizes are shared across samples (each sample
    is accurate to the tolerance, not bit-independent of the others). With ``full`` the
    states at every grid time and the number of function evaluations are returned.
    """
    checker = StepChecker(process, x, grid, name="adaptive_ode")
    g = checker.grid
    rtol = check_float(rtol, "rtol", low=0.0, low_open=True)
    atol = check_float(atol, "atol", low=0.0, low_open=True)
    check_choice(method, "method", ("RK45", "RK23", "DOP853", "Radau", "BDF", "LSODA"))
    counted = Counted(model)
    flow = ReverseSDE(process, counted, probability_flow=True)
    shape, dtype, device = x.shape, x.dtype, x.device

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        xt = torch.from_numpy(y).to(dtype=dtype, device=device).reshape(shape)
        with torch.no_grad():
            v = flow.drift(xt, torch.tensor(t, dtype=torch.float64), **model_kwargs)
        if not bool(torch.isfinite(v).all()):
            raise SamplingError(f"adaptive_ode: the model gave a non-finite drift at t = {t:.6g}")
        return v.reshape(-1).double().cpu().numpy()

    y0 = x.detach().reshape(-1).double().cpu().numpy()
    sol = solve_ivp(rhs, (float(g[0]), float(g[-1])), y0, method=method, rtol=rtol, atol=atol, t_eval=g.numpy())
    if not sol.success:
        raise SamplingError(f"adaptive_ode: the solver failed ({sol.message})")
    states = [torch.from_numpy(sol.y[:, k].copy()).to(dtype=dtype, device=device).reshape(shape) for k in range(sol.y.shape[1])]
    if full:
        return Result(states[-1], states, g, int(sol.nfev))
    return states[-1]
