"""k-diffusion's noise-level ladders in float64, and their maps to and from diffcheck's time grids.

A ladder is a decreasing tensor of sigma = sigma(t)/alpha(t) levels, usually ending with 0
(``append_zero``); on a process it is the grid of times with those levels. The
constructors are k-diffusion's ``get_sigmas_*`` in float64: Karras et al. (2022, Eq. 5),
log-uniform ("exponential"), a power of log sigma ("polyexponential") and the VP SDE's
sigma(t)/alpha(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1) at uniform t (Song et al.
2021, Eq. 33; Karras et al. 2022, Table 1).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from toy.validate import as_float_tensor, check_float, check_int

from ...process.base import Process
from ...process.continuous import VP
from ...process.grids import check_grid
from ...process.ladders import karras_sigmas
from .denoiser import sigma_time

__all__ = ["karras", "alternating", "exponential", "polyexponential", "vp", "vp_process", "to_grid", "from_grid", "check_sigmas"]


def _zero(s: torch.Tensor, append_zero: bool) -> torch.Tensor:
    return torch.cat([s, s.new_zeros(1)]) if append_zero else s


def _range(n: int, sigma_min: float, sigma_max: float) -> tuple[int, float, float]:
    n = check_int(n, "n", minimum=2)
    lo = check_float(sigma_min, "sigma_min", low=0.0, low_open=True)
    hi = check_float(sigma_max, "sigma_max", low=0.0, low_open=True)
    if lo >= hi:
        raise ValueError(f"sigma_min must be < sigma_max, got {sigma_min} and {sigma_max}")
    return n, lo, hi


def karras(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, *, append_zero: bool = True) -> torch.Tensor:
    """Karras et al. (2022) Eq. 5: n levels from sigma_max to sigma_min, then 0 (``get_sigmas_karras``)."""
    n, lo, hi = _range(n, sigma_min, sigma_max)
    return _zero(karras_sigmas(n, lo, hi, rho), append_zero)


def exponential(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, *, append_zero: bool = True) -> torch.Tensor:
    """n levels uniform in log sigma from sigma_max to sigma_min, then 0 (``get_sigmas_exponential``)."""
    n, lo, hi = _range(n, sigma_min, sigma_max)
    return _zero(torch.linspace(math.log(hi), math.log(lo), n, dtype=torch.float64).exp(), append_zero)


def polyexponential(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 1.0, *,
                    append_zero: bool = True) -> torch.Tensor:
    """log sigma = log sigma_min + r^rho (log sigma_max - log sigma_min), r from 1 to 0 (``get_sigmas_polyexponential``)."""
    n, lo, hi = _range(n, sigma_min, sigma_max)
    rho = check_float(rho, "rho", low=0.0, low_open=True)
    ramp = torch.linspace(1.0, 0.0, n, dtype=torch.float64) ** rho
    return _zero(torch.exp(ramp * (math.log(hi) - math.log(lo)) + math.log(lo)), append_zero)


def alternating(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, ratio: float = 2.0) -> torch.Tensor:
    """n steps from sigma_max to sigma_min (no final 0) whose log-sigma steps alternate h, ratio h, h, ...

    A family of grids whose neighbouring step ratios do not tend to 1 as n grows: a
    multistep or two-stage method keeps its order on it only if its step-ratio terms are right.
    """
    n, lo, hi = _range(n + 1, sigma_min, sigma_max)
    ratio = check_float(ratio, "ratio", low=0.0, low_open=True)
    w = torch.tensor([1.0 if i % 2 == 0 else ratio for i in range(n - 1)], dtype=torch.float64)
    cum = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(w, 0)]) / w.sum()
    return torch.exp(math.log(hi) + cum * (math.log(lo) - math.log(hi)))


def vp(n: int, beta_d: float = 19.9, beta_min: float = 0.1, eps_s: float = 1e-3, *, append_zero: bool = True) -> torch.Tensor:
    """The VP SDE's levels at n uniform times from 1 to eps_s (``get_sigmas_vp``): ``vp_process`` maps them back to those times."""
    n = check_int(n, "n", minimum=2)
    beta_d = check_float(beta_d, "beta_d", low=0.0, low_open=True)
    beta_min = check_float(beta_min, "beta_min", low=0.0, low_open=True)
    eps_s = check_float(eps_s, "eps_s", low=0.0, high=1.0, low_open=True, high_open=True)
    t = torch.linspace(1.0, eps_s, n, dtype=torch.float64)
    return _zero(torch.expm1(beta_d * t**2 / 2 + beta_min * t).sqrt(), append_zero)


def vp_process(beta_d: float = 19.9, beta_min: float = 0.1) -> VP:
    """The VP process whose sigma/alpha at time t is ``vp``'s level at t: beta(t) = beta_min + beta_d t."""
    return VP(beta_min, beta_min + beta_d)


def check_sigmas(sigmas: Any, name: str = "sigmas") -> torch.Tensor:
    """A ladder: 1-D, finite, at least 2 levels, non-negative, strictly decreasing (no zero-size step), 0 only last."""
    s = as_float_tensor(sigmas, name, dtype=torch.float64, ndim=1)
    if s.numel() < 2:
        raise ValueError(f"{name} must hold at least 2 levels, got {s.numel()}")
    if bool((s < 0).any()):
        raise ValueError(f"{name} must be non-negative")
    steps = s[1:] - s[:-1]
    if bool((steps >= 0).any()):
        i = int(torch.nonzero(steps >= 0)[0])
        raise ValueError(f"{name} must be strictly decreasing: level {i + 1} ({float(s[i + 1]):.6g}) does not fall below "
                         f"level {i} ({float(s[i]):.6g}), a step of size {float(steps[i]):.3g}")
    return s


def to_grid(process: Process, sigmas: Any) -> torch.Tensor:
    """The decreasing process times whose sigma(t)/alpha(t) are the ladder's levels (0 is t = 0, the data)."""
    if not isinstance(process, Process):
        raise TypeError(f"process must be a Process, got {type(process).__name__}")
    s = check_sigmas(sigmas)
    return check_grid(sigma_time(process, s))


def from_grid(process: Process, grid: Any) -> torch.Tensor:
    """The ladder sigma(t)/alpha(t) of a decreasing grid of process times (0 at a time whose sigma is 0)."""
    if not isinstance(process, Process):
        raise TypeError(f"process must be a Process, got {type(process).__name__}")
    g = check_grid(grid).to(torch.float64)
    return process.edm_sigma(g)
