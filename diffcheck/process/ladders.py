"""Noise-level ladders: NCSN's geometric sigmas, Song & Ermon 2020, techniques 1, 2 and 4, and Karras et al. 2022 grids."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy import optimize, stats

from toy.validate import as_float_tensor, check_float, check_int

__all__ = [
    "geometric_sigmas",
    "ncsnv2_sigma_max",
    "ncsnv2_overlap",
    "ncsnv2_gamma",
    "ncsnv2_num_levels",
    "ncsnv2_variance_ratio",
    "ncsnv2_step_size",
    "karras_sigmas",
]


def geometric_sigmas(sigma_max: float, sigma_min: float, L: int) -> torch.Tensor:
    """NCSN's ladder sigma_1 > ... > sigma_L, geometric from sigma_max to sigma_min (Song & Ermon 2019, Sec. 4.2).

    One level (L = 1) is sigma_max alone; sigma_min may then equal it but never exceed it.
    """
    sigma_max = check_float(sigma_max, "sigma_max", low=0.0, low_open=True)
    sigma_min = check_float(sigma_min, "sigma_min", low=0.0, low_open=True)
    L = check_int(L, "L", minimum=1)
    if sigma_min > sigma_max or (L > 1 and sigma_min == sigma_max):
        bound = "<" if L > 1 else "<="
        raise ValueError(f"sigma_min must be {bound} sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    return torch.from_numpy(np.exp(np.linspace(math.log(sigma_max), math.log(sigma_min), L)))


def ncsnv2_sigma_max(data: Any, chunk: int = 4096) -> float:
    """Song & Ermon 2020, technique 1 (Sec. 3.1): sigma_1 = the largest pairwise Euclidean distance in the data."""
    x = as_float_tensor(data, "data")
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(f"data must hold at least 2 points as (N, ...), got shape {tuple(x.shape)}")
    x = x.reshape(x.shape[0], -1)
    best = torch.zeros((), dtype=x.dtype)
    for lo in range(0, x.shape[0], chunk):
        best = torch.maximum(best, torch.cdist(x[lo : lo + chunk], x).max())
    return float(best)


def ncsnv2_overlap(gamma: float, D: int) -> float:
    """Song & Ermon 2020, technique 2: the overlap Phi(sqrt(2D)(g-1) + 3g) - Phi(sqrt(2D)(g-1) - 3g) for ratio g = sigma_{i-1}/sigma_i."""
    gamma = check_float(gamma, "gamma", low=1.0)
    D = check_int(D, "D", minimum=1)
    a = math.sqrt(2.0 * D) * (gamma - 1.0)
    return float(stats.norm.cdf(a + 3.0 * gamma) - stats.norm.cdf(a - 3.0 * gamma))


def ncsnv2_gamma(D: int, target: float = 0.5) -> float:
    """Song & Ermon 2020, technique 2: the geometric ratio gamma > 1 whose overlap equals ``target`` in dimension D.

    At gamma = 1 the overlap is Phi(3) - Phi(-3) = 0.9973. It falls to 0 as gamma grows only
    when sqrt(2D) > 3 (D >= 5); in lower dimensions it tends to 1 and no ratio reaches the
    target, which raises a ``ValueError``.
    """
    D = check_int(D, "D", minimum=1)
    target = check_float(target, "target", low=0.0, high=1.0, low_open=True, high_open=True)
    at_one = ncsnv2_overlap(1.0, D)
    if target >= at_one:
        raise ValueError(f"target must be below the overlap at gamma = 1 ({at_one:.6f}) in dimension D={D}")
    if math.sqrt(2.0 * D) <= 3.0:
        raise ValueError(
            f"no gamma gives overlap {target} in dimension D={D}: the overlap never falls below "
            f"{min(at_one, 1.0):.4f} when sqrt(2D) <= 3 (technique 2 needs D >= 5)"
        )
    hi = 2.0
    while ncsnv2_overlap(hi, D) > target:
        hi = 1.0 + 2.0 * (hi - 1.0)
    return float(optimize.brentq(lambda g: ncsnv2_overlap(g, D) - target, 1.0, hi, xtol=1e-14, rtol=1e-14))


def ncsnv2_num_levels(sigma_max: float, sigma_min: float, gamma: float) -> int:
    """Number of levels L of a geometric ladder from sigma_max to sigma_min with ratio at most gamma."""
    sigma_max = check_float(sigma_max, "sigma_max", low=0.0, low_open=True)
    sigma_min = check_float(sigma_min, "sigma_min", low=0.0, low_open=True)
    gamma = check_float(gamma, "gamma", low=1.0, low_open=True)
    if sigma_min >= sigma_max:
        raise ValueError("sigma_min must be < sigma_max")
    return 1 + math.ceil(math.log(sigma_max / sigma_min) / math.log(gamma) - 1e-12)


def ncsnv2_variance_ratio(eps: float, gamma: float, sigma_L: float, T: int) -> float:
    """Song & Ermon 2020, technique 4: s_T^2 / sigma_i^2 = (1 - eps/sigma_L^2)^{2T} (gamma^2 - c) + c, c = 2 eps / (sigma_L^2 - sigma_L^2 (1 - eps/sigma_L^2)^2).

    Exact for data at one point: T steps of x + a s + sqrt(2a) z with a = eps sigma_i^2 / sigma_L^2
    and s = -x / sigma_i^2, started from N(0, sigma_{i-1}^2 I) (Song & Ermon 2020, Sec. 3.3).
    """
    sigma_L = check_float(sigma_L, "sigma_L", low=0.0, low_open=True)
    eps = check_float(eps, "eps", low=0.0, high=sigma_L**2, low_open=True, high_open=True)
    gamma = check_float(gamma, "gamma", low=1.0)
    T = check_int(T, "T", minimum=1)
    r = 1.0 - eps / sigma_L**2
    c = 2.0 * eps / (sigma_L**2 - sigma_L**2 * r * r)
    return r ** (2 * T) * (gamma**2 - c) + c


def ncsnv2_step_size(gamma: float, sigma_L: float, T: int) -> float:
    """Song & Ermon 2020, technique 4: the step size eps in (0, sigma_L^2) that brings the variance ratio closest to 1.

    The ratio exceeds 1 for every eps (it lies between c > 1 and gamma^2), so this is the
    minimiser of the ratio, found by bounded scalar minimisation in log eps.
    """
    sigma_L = check_float(sigma_L, "sigma_L", low=0.0, low_open=True)
    gamma = check_float(gamma, "gamma", low=1.0, low_open=True)
    T = check_int(T, "T", minimum=1)
    lo, hi = math.log(sigma_L**2 * 1e-12), math.log(sigma_L**2 * (1.0 - 1e-9))
    res = optimize.minimize_scalar(
        lambda le: ncsnv2_variance_ratio(math.exp(le), gamma, sigma_L, T),
        bounds=(lo, hi), method="bounded", options={"xatol": 1e-10},
    )
    return float(math.exp(res.x))


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. 2022, Eq. 5: n decreasing noise levels (sigma_max^(1/rho) + i/(n-1)(sigma_min^(1/rho) - sigma_max^(1/rho)))^rho."""
    n = check_int(n, "n", minimum=2)
    sigma_min = check_float(sigma_min, "sigma_min", low=0.0, low_open=True)
    sigma_max = check_float(sigma_max, "sigma_max", low=0.0, low_open=True)
    rho = check_float(rho, "rho", low=0.0, low_open=True)
    if sigma_min >= sigma_max:
        raise ValueError(f"sigma_min must be < sigma_max, got {sigma_min} and {sigma_max}")
    ramp = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    a, b = sigma_max ** (1.0 / rho), sigma_min ** (1.0 / rho)
    return (a + ramp * (b - a)) ** rho
