"""Whether two Gaussian laws differ by more than n samples could show: a noise-free verdict for exact output laws.

The likelihood-ratio test of "the samples follow N(m*, C*)" against any Gaussian, on n
samples in dimension d, has statistic 2 n KL(fitted || reference), chi-square with
k = d + d(d+1)/2 degrees of freedom under the null and non-central with non-centrality
2 n KL when the truth is at KL from the reference. It rejects at level alpha with about
even odds when 2 n KL = chi2_k(1 - alpha) - k. ``law_resolution`` is that KL; an exact
output law closer than it is indistinguishable from the reference at that sample size.
``gaussian_distance`` = sqrt(2 KL) is linear in small errors of mean and covariance
(a Mahalanobis length), so its log-log slope against the step count is an order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from scipy import stats

from toy.gaussian import kl_gaussian
from toy.validate import as_float_tensor, check_float, check_int

__all__ = ["law_resolution", "gaussian_kl", "gaussian_distance", "LawVerdict", "gaussian_law_check"]


def law_resolution(dim: int, n: int, alpha: float = 1e-3) -> float:
    """The KL (nats) that a level-``alpha`` likelihood-ratio test on ``n`` samples detects with even odds."""
    dim = check_int(dim, "dim", minimum=1)
    n = check_int(n, "n", minimum=1)
    alpha = check_float(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)
    k = dim + dim * (dim + 1) // 2
    return float((stats.chi2.ppf(1.0 - alpha, k) - k) / (2.0 * n))


def gaussian_kl(mean: Any, cov: Any, ref_mean: Any, ref_cov: Any) -> float:
    """KL(N(mean, cov) || N(ref_mean, ref_cov)) in nats, float64."""
    m = as_float_tensor(mean, "mean", dtype=torch.float64).reshape(-1)
    d = m.numel()
    c = as_float_tensor(cov, "cov", dtype=torch.float64).reshape(d, d)
    rm = as_float_tensor(ref_mean, "ref_mean", dtype=torch.float64).reshape(d)
    rc = as_float_tensor(ref_cov, "ref_cov", dtype=torch.float64).reshape(d, d)
    if not bool(torch.isfinite(m).all()) or not bool(torch.isfinite(c).all()):
        return math.inf
    try:
        return max(float(kl_gaussian(m, c, rm, rc)), 0.0)
    except ValueError:  # a singular law (a collapsed covariance) is infinitely far from a non-singular one
        return math.inf


def gaussian_distance(mean: Any, cov: Any, ref_mean: Any, ref_cov: Any) -> float:
    """sqrt(2 KL): a scale-free distance between Gaussian laws, linear in small errors."""
    return math.sqrt(2.0 * gaussian_kl(mean, cov, ref_mean, ref_cov))


@dataclass(frozen=True)
class LawVerdict:
    """An exact output law against the exact reference: its KL, the resolution at n samples, and the verdict."""

    kl: float
    resolution: float
    n: int
    alpha: float
    passed: bool

    def __str__(self) -> str:
        word = "within" if self.passed else "BEYOND"
        return (f"KL {self.kl:.3g} nats, {word} the resolution {self.resolution:.3g} of a level-{self.alpha:g} test "
                f"on n = {self.n} samples")


def gaussian_law_check(mean: Any, cov: Any, ref_mean: Any, ref_cov: Any, *, n: int = 10_000, alpha: float = 1e-3) -> LawVerdict:
    """Is the exact law N(mean, cov) indistinguishable from N(ref_mean, ref_cov) with ``n`` samples?"""
    d = as_float_tensor(mean, "mean").numel()
    kl = gaussian_kl(mean, cov, ref_mean, ref_cov)
    res = law_resolution(d, n, alpha)
    return LawVerdict(kl, res, int(n), float(alpha), bool(kl <= res))
