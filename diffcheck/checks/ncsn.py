"""Checks of NCSNv2's techniques for choosing noise levels and step sizes (Song & Ermon 2020)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

from ..process import geometric_sigmas, ncsnv2_gamma, ncsnv2_overlap, ncsnv2_step_size, ncsnv2_variance_ratio
from ..testing import stats as st
from . import Outcome, check

ORDER = 40  # position in the tour

_CIFAR = {"sigma_max": 50.0, "sigma_min": 0.01, "L": 232, "D": 3 * 32 * 32, "eps": 6.2e-6, "T": 5}


def _cifar_gamma() -> float:
    s = geometric_sigmas(_CIFAR["sigma_max"], _CIFAR["sigma_min"], _CIFAR["L"])
    return float(s[0] / s[1])


@check(
    "ncsnv2.technique2",
    source="Song & Ermon 2020, Sec. 3.1 (Technique 2)",
    claim="With the CIFAR-10 ladder (sigma 50 -> 0.01, L = 232, D = 3072) the overlap Phi(sqrt(2D)(g-1)+3g) - Phi(sqrt(2D)(g-1)-3g) is about 0.567, matching the exact chi probability it approximates",
)
def technique2() -> Outcome:
    D, g = _CIFAR["D"], _cifar_gamma()
    overlap = ncsnv2_overlap(g, D)
    # exact: |x|/sigma_i ~ chi(D); the shell of sigma_{i-1} is g (sqrt(D) -+ 3/sqrt(2)) in units of sigma_i
    lo, hi = g * (math.sqrt(D) - 3 / math.sqrt(2)), g * (math.sqrt(D) + 3 / math.sqrt(2))
    exact = float(stats.chi.cdf(hi, D) - stats.chi.cdf(lo, D))
    # an interval probability moves by at most twice the Kolmogorov distance of the approximation
    grid = np.linspace(math.sqrt(D) - 12, math.sqrt(D) + 12, 200001)
    kolmogorov = float(np.abs(stats.chi.cdf(grid, D) - stats.norm.cdf(grid, math.sqrt(D), math.sqrt(0.5))).max())
    solved = ncsnv2_gamma(D)
    at_solution = ncsnv2_overlap(solved, D)
    try:
        ncsnv2_gamma(2)
        low_d_error = False
    except ValueError:
        low_d_error = True
    ok = abs(overlap - 0.567) <= 0.0005 and abs(overlap - exact) <= 2 * kolmogorov and abs(at_solution - 0.5) < 1e-10 and low_d_error
    return Outcome(
        {"overlap": 0.567, "exact chi probability": exact, "overlap at solved gamma": 0.5, "D=2": "no solution"},
        {"overlap": overlap, "exact chi probability": exact, "overlap at solved gamma": at_solution,
         "D=2": "ValueError" if low_d_error else "solved"},
        {"stated value": 0.0005, "vs chi": 2 * kolmogorov},
        ok,
        "0.567 to the digits stated; the normal approximation of chi(D) moves an interval probability by at most twice its Kolmogorov distance",
        {"gamma": g, "solved_gamma_for_0.5": solved},
    )


@check(
    "ncsnv2.technique4",
    source="Song & Ermon 2020, Sec. 3.3 (Technique 4)",
    claim="The variance ratio formula of technique 4 equals the exact recursion and a simulation, and for the CIFAR-10 ladder with T = 5 it is minimised near eps = 6.2e-6",
)
def technique4(n: int = 1000, seed: int = 20, alpha: float = 1e-3, eps: float | None = None) -> Outcome:
    g, sigma_L, T, D = _cifar_gamma(), _CIFAR["sigma_min"], _CIFAR["T"], _CIFAR["D"]
    eps = _CIFAR["eps"] if eps is None else eps
    formula = ncsnv2_variance_ratio(eps, g, sigma_L, T)
    # exact recursion of the per-coordinate variance, in units of sigma_i^2 (any sigma_i)
    sigma_i = 0.37
    a = eps * sigma_i**2 / sigma_L**2
    v = (g * sigma_i) ** 2
    for _ in range(T):
        v = (1.0 - a / sigma_i**2) ** 2 * v + 2.0 * a
    recursion = v / sigma_i**2
    # simulation of x <- x + a s(x) + sqrt(2a) z with s(x) = -x / sigma_i^2, from N(0, sigma_{i-1}^2 I)
    gen = torch.Generator().manual_seed(seed)
    x = g * sigma_i * torch.randn(n, D, generator=gen, dtype=torch.float64)
    for _ in range(T):
        x = x - a * x / sigma_i**2 + math.sqrt(2.0 * a) * torch.randn(n, D, generator=gen, dtype=torch.float64)
    per_coordinate = (x**2).reshape(-1) / sigma_i**2  # mean-zero coordinates: E[x^2] is the variance
    sim = st.zero_mean_test(per_coordinate - formula, alpha=alpha, name="simulated variance ratio")
    best = ncsnv2_step_size(g, sigma_L, T)
    ok = abs(formula - recursion) <= 1e-12 and sim.passed and abs(best - 6.2e-6) <= 0.05e-6
    return Outcome(
        {"ratio (formula)": formula, "eps minimising the ratio": 6.2e-6},
        {"ratio (recursion)": recursion, "ratio (simulation)": float(per_coordinate.mean()), "eps minimising the ratio": best},
        {"recursion": 1e-12, "simulation": f"|z| <= {sim.threshold:.2f}", "eps": 0.05e-6},
        ok,
        f"recursion in float64; simulation over {n} x {D} coordinates at alpha={alpha:g}; eps to the digits of the published config",
        {"simulation_test": str(sim)},
    )
