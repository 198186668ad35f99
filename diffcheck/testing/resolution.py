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
from toy.validate import as_float_tensor, check_covariance, check_finite, check_float, check_int

__all__ = ["law_resolution", "gaussian_kl", "gaussian_distance", "LawVerdict", "gaussian_law_check"]


def law_resolution(dim: int, n: int, alpha: float = 1e-3) -> float:
    """The KL (nats) that a level-``alpha`` likelihood-ratio test on ``n`` samples detects with even odds."""
    dim = check_int(dim, "dim", minimum=1)
    n = check_int(n, "n", minimum=1)
    alpha = check_float(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)
    k = dim + dim * (dim + 1) // 2
    return float((stats.chi2.ppf(1.0 - alpha, k) - k) / (2.0 * n))


def _shaped(mean: Any, cov: Any, mean_name: str, cov_name: str, d: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    m = as_float_tensor(mean, mean_name, dtype=torch.float64).reshape(-1)
    d = m.numel() if d is None else d
    if m.numel() != d:
        raise ValueError(f"{mean_name} must hold {d} entries, got {m.numel()}")
    c = as_float_tensor(cov, cov_name, dtype=torch.float64)
    if c.numel() != d * d:
        raise ValueError(f"{cov_name} must be a ({d}, {d}) matrix, got shape {tuple(c.shape)}")
    check_finite(m, mean_name)
    return m, check_covariance(c.reshape(d, d), cov_name)


def gaussian_kl(mean: Any, cov: Any, ref_mean: Any, ref_cov: Any) -> float:
    """KL(N(mean, cov) || N(ref_mean, ref_cov)) in nats, float64; +inf where ``cov`` is singular.

    Every argument must be finite and each covariance symmetric positive semi-definite
    (a ValueError names the one that is not). ``ref_cov`` must be non-singular: the
    reference law has a density. A singular ``cov`` (a sampler whose output collapsed
    onto a subspace, or to a point) gets +inf, which is the value of the divergence:
    that law puts all its mass on a set of reference probability 0, so it is not
    absolutely continuous with respect to the reference (KL(P || Q) = +inf unless P << Q).
    """
    m, c = _shaped(mean, cov, "mean", "cov")
    rm, rc = _shaped(ref_mean, ref_cov, "ref_mean", "ref_cov", m.numel())
    if int(torch.linalg.cholesky_ex(rc).info) != 0:
        raise ValueError("ref_cov must be positive definite: the reference law needs a density (it is singular, "
                         f"smallest eigenvalue {float(torch.linalg.eigvalsh(rc)[0]):.3g})")
    if int(torch.linalg.cholesky_ex(c).info) != 0:
        return math.inf  # singular law against one with a density: not absolutely continuous, KL = +inf
    return max(float(kl_gaussian(m, c, rm, rc)), 0.0)


def gaussian_distance(mean: Any, cov: Any, ref_mean: Any, ref_cov: Any) -> float:
    """sqrt(2 KL): a scale-free distance between Gaussian laws, linear in small errors (+inf where ``cov`` is singular)."""
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
    """Is the exact law N(mean, cov) indistinguishable from N(ref_mean, ref_cov) with ``n`` samples? (A singular ``cov`` is not.)"""
    d = as_float_tensor(mean, "mean").numel()
    kl = gaussian_kl(mean, cov, ref_mean, ref_cov)
    res = law_resolution(d, n, alpha)
    return LawVerdict(kl, res, int(n), float(alpha), bool(kl <= res))
