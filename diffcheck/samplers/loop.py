"""The walk every step-based sampler shares: grid pairs, checks, trajectory, progress, evaluation count."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any, Callable

import torch
from tqdm import tqdm

from ..param import Model
from ..process.base import Process
from .base import Result, StepChecker, make_noise

__all__ = ["Coefficients", "coefficients", "coefficient_table", "Counted", "walk"]


@dataclass(frozen=True)
class Coefficients:
    """Gaussian facts of one step from time t down to s < t, as floats.

    ``a = alpha_t / alpha_s``; the forward transition x_t | x_s is N(a x_s, trans_var I)
    with trans_var = sigma_t^2 - a^2 sigma_s^2; the posterior x_s | x_t, x_0 is
    N(coef_x0 x_0 + coef_xt x_t, post_var I). For a VP process trans_var is DDPM's beta
    and post_var its beta_tilde (Ho et al. 2020, Eq. 6-7).
    """

    t: float
    s: float
    alpha_t: float
    alpha_s: float
    sigma_t: float
    sigma_s: float
    a: float
    drop: float  # trans_var / sigma_t^2 = 1 - exp(lambda_t - lambda_s)
    trans_var: float
    post_var: float
    coef_x0: float
    coef_xt: float
    f_t: float  # SDE drift coefficient and squared diffusion at t and s
    g2_t: float
    f_s: float
    g2_s: float


def coefficient_table(process: Process, grid: torch.Tensor) -> list[Coefficients]:
    """Coefficients of every step of a decreasing grid, from one vectorised evaluation of the process."""
    g = torch.as_tensor(grid, dtype=torch.float64)
    la, ls, lam = process.log_alpha(g).tolist(), process.log_sigma(g).tolist(), process.log_snr(g).tolist()
    f, g2 = process.f(g).tolist(), process.g2(g).tolist()
    t = g.tolist()
    out = []
    for i in range(len(t) - 1):
        j = i + 1
        drop = -math.expm1(lam[i] - lam[j]) if math.isfinite(lam[j]) else 1.0
        a = math.exp(la[i] - la[j])
        sig_t, sig_s = math.exp(ls[i]), math.exp(ls[j])
        out.append(Coefficients(
            t=t[i], s=t[j], alpha_t=math.exp(la[i]), alpha_s=math.exp(la[j]), sigma_t=sig_t, sigma_s=sig_s,
            a=a, drop=drop, trans_var=sig_t * sig_t * drop, post_var=sig_s * sig_s * drop,
            coef_x0=math.exp(la[j]) * drop, coef_xt=a * math.exp(2.0 * (ls[j] - ls[i])) if sig_s > 0 else 0.0,
            f_t=f[i], g2_t=g2[i], f_s=f[j], g2_s=g2[j],
        ))
    return out


def coefficients(process: Process, t: torch.Tensor, s: torch.Tensor) -> Coefficients:
    """Coefficients of the step t -> s, computed through log-SNR differences (no cancellation)."""
    tt = torch.stack([torch.as_tensor(t, dtype=torch.float64), torch.as_tensor(s, dtype=torch.float64)])
    return coefficient_table(process, tt)[0]


class Counted:
    """A model proxy that counts evaluations (its ``prediction`` is the model's)."""

    def __init__(self, model: Model) -> None:
        if not callable(model):
            raise TypeError("model must be callable as model(x, t)")
        self.model = model
        self.prediction = getattr(model, "prediction", None)
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        self.calls += 1
        return self.model(*args, **kwargs)


Step = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def walk(
    step: Step,
    model: Model,
    process: Process,
    x: torch.Tensor,
    grid: Any,
    *,
    generator: Any = None,
    stochastic: bool = True,
    name: str = "sampler",
    denoise: bool = False,
    check_finite: bool = True,
    progress: bool = False,
    full: bool = False,
    **options: Any,
) -> torch.Tensor | Result:
    """Run ``step(model, process, x, t, s, noise, last=..., coef=..., **options) -> (x, x_mean)`` over neighbouring grid times.

    The coefficients of every step are computed once, up front, and passed as ``coef``.

    Returns the final state (its noise-free mean with ``denoise``), or a ``Result`` with
    the trajectory and the number of model evaluations when ``full``.
    """
    checker = StepChecker(process, x, grid, enabled=check_finite, name=name)
    g = checker.grid
    table = coefficient_table(process, g)
    noise = make_noise(generator) if stochastic else None
    counted = Counted(model)
    traj = [x] if full else None
    n = len(g) - 1
    x_mean = x
    for i in tqdm(range(n), desc=name, file=sys.stderr, disable=not progress, leave=False):
        x, x_mean = step(counted, process, x, g[i], g[i + 1], noise, last=(i == n - 1), coef=table[i], **options)
        checker(x, i)
        if traj is not None:
            traj.append(x)
    out = x_mean if denoise else x
    if full:
        return Result(out, traj, g, counted.calls)
    return out
