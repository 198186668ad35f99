"""Calibrated statistical tests: two-sample, moments, proportions, Monte Carlo means, convergence order.

Every test reports its statistic, p-value (or threshold), sample size and false-alarm
rate ``alpha``; ``passed`` is False when the null hypothesis ("the samples follow the
exact answer") is rejected at level ``alpha``. Permutation p-values are exact: under the
null, P(p <= alpha) <= alpha for any sample size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from scipy import stats

from toy.mixture import GaussianMixture
from toy.validate import as_float_tensor, check_float, check_int

__all__ = [
    "TestResult",
    "two_sample_test",
    "mean_test",
    "covariance_test",
    "zero_mean_test",
    "binomial_interval",
    "proportions_test",
    "mode_assignment",
    "mode_weights_test",
    "fit_order",
    "normal_quantile",
]


@dataclass
class TestResult:
    """Outcome of a statistical test: what was expected, what was measured, at what n and alpha."""

    name: str
    passed: bool
    statistic: float
    p_value: float | None
    alpha: float
    n: int | tuple[int, ...]
    expected: Any = None
    measured: Any = None
    threshold: float | None = None
    details: dict = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        parts = [f"{self.name} {verdict}: statistic {self.statistic:.6g}"]
        if self.p_value is not None:
            parts.append(f"p = {self.p_value:.4g}")
        if self.threshold is not None:
            parts.append(f"threshold {self.threshold:.6g}")
        parts.append(f"n = {self.n}, false-alarm rate alpha = {self.alpha:g}")
        if self.expected is not None:
            parts.append(f"expected {_short(self.expected)}")
        if self.measured is not None:
            parts.append(f"measured {_short(self.measured)}")
        return "; ".join(parts)


def _short(v: Any) -> str:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().tolist()
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_short(u) for u in v) + "]"
    return str(v)


def _check_alpha(alpha: float) -> float:
    return check_float(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)


def normal_quantile(p: float) -> float:
    """Phi^{-1}(p)."""
    return float(stats.norm.ppf(p))


def _points(x: Any, name: str) -> torch.Tensor:
    t = as_float_tensor(x, name).to(torch.float64)
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2:
        t = t.reshape(t.shape[0], -1)
    if t.shape[0] < 2:
        raise ValueError(f"{name} must hold at least 2 points, got {t.shape[0]}")
    return t


def two_sample_test(
    x: Any,
    y: Any,
    *,
    alpha: float = 0.01,
    method: str = "sliced",
    projections: int = 16,
    features: Callable[[torch.Tensor], torch.Tensor] | None = None,
    permutations: int = 500,
    generator: torch.Generator | None = None,
    max_n: int = 2500,
) -> TestResult:
    """Two-sample test of "x and y come from the same law" at false-alarm rate ``alpha``.

    ``method="sliced"`` (default): Kolmogorov-Smirnov tests (scipy's exact or asymptotic
    p-values) of the coordinates, ``projections`` random directions and any scalar
    ``features`` (e.g. the exact log-density), combined by Bonferroni. Cheap, so it takes
    large samples, and valid at any alpha.
    ``method="energy"``: the energy distance (Szekely & Rizzo 2004) with an exact
    permutation p-value; its smallest attainable p-value is 1/(permutations + 1), so
    ``permutations`` must exceed 1/alpha. Samples beyond ``max_n`` are subsampled.
    """
    alpha = _check_alpha(alpha)
    x, y = _points(x, "x"), _points(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    if method == "sliced":
        return _sliced_test(x, y, alpha, projections, features, gen)
    if method != "energy":
        raise ValueError(f"method must be 'sliced' or 'energy', got {method!r}")
    permutations = check_int(permutations, "permutations", minimum=19)
    if 1.0 / (permutations + 1) > alpha:
        raise ValueError(f"permutations={permutations} cannot reach p <= alpha={alpha:g}; use at least {math.ceil(1 / alpha)}")
    if x.shape[0] > max_n:
        x = x[torch.randperm(x.shape[0], generator=gen)[:max_n]]
    if y.shape[0] > max_n:
        y = y[torch.randperm(y.shape[0], generator=gen)[:max_n]]
    n, m = x.shape[0], y.shape[0]
    z = torch.cat([x, y])
    d = torch.cdist(z, z)
    N = n + m
    labels = torch.zeros(permutations + 1, N, dtype=torch.float64)
    labels[0, :n] = 1.0
    for i in range(1, permutations + 1):
        labels[i, torch.randperm(N, generator=gen)[:n]] = 1.0
    a = labels.T  # (N, P+1) indicator of group x
    da = d @ a
    row = d.sum(1)
    total = row.sum()
    aa = (a * da).sum(0)  # a^T D a
    ab = (row @ a) - aa  # a^T D b
    bb = total - 2.0 * (row @ a) + aa  # b^T D b
    e = 2.0 * ab / (n * m) - aa / (n * n) - bb / (m * m)
    e = e * (n * m / N)
    obs = float(e[0])
    p = float((1 + (e[1:] >= obs - 1e-12 * abs(obs)).sum()) / (permutations + 1))
    return TestResult(
        name="energy two-sample test", passed=p > alpha, statistic=obs, p_value=p, alpha=alpha, n=(n, m),
        details={"permutations": permutations},
    )


def _sliced_test(x, y, alpha, projections, features, gen) -> TestResult:
    d = x.shape[1]
    projections = check_int(projections, "projections", minimum=0)
    dirs = [torch.eye(d, dtype=torch.float64)]
    if projections:
        r = torch.randn(projections, d, generator=gen, dtype=torch.float64)
        dirs.append(r / r.norm(dim=1, keepdim=True))
    w = torch.cat(dirs)
    px, py = x @ w.T, y @ w.T
    if features is not None:
        fx = torch.as_tensor(features(x), dtype=torch.float64).reshape(x.shape[0], -1)
        fy = torch.as_tensor(features(y), dtype=torch.float64).reshape(y.shape[0], -1)
        px, py = torch.cat([px, fx], 1), torch.cat([py, fy], 1)
    k = px.shape[1]
    pvals = []
    stat = 0.0
    for j in range(k):
        r = stats.ks_2samp(px[:, j].numpy(), py[:, j].numpy())
        pvals.append(float(r.pvalue))
        stat = max(stat, float(r.statistic))
    p = min(1.0, k * min(pvals))
    return TestResult(
        name="sliced KS two-sample test", passed=p > alpha, statistic=stat, p_value=p, alpha=alpha,
        n=(x.shape[0], y.shape[0]), details={"slices": k, "smallest_slice_p": min(pvals)},
    )


def mean_test(x: Any, mean: Any, cov: Any | None = None, *, alpha: float = 0.01) -> TestResult:
    """Test E[x] = mean: chi-square n (xbar - mean)^T cov^{-1} (xbar - mean) with the exact cov, else Hotelling T^2."""
    alpha = _check_alpha(alpha)
    x = _points(x, "x")
    n, d = x.shape
    mu = as_float_tensor(mean, "mean", dtype=torch.float64).reshape(-1)
    if mu.numel() != d:
        raise ValueError(f"mean must have {d} entries, got {mu.numel()}")
    diff = x.mean(0) - mu
    if cov is not None:
        c = as_float_tensor(cov, "cov", dtype=torch.float64).reshape(d, d)
        stat = float(n * diff @ torch.linalg.solve(c, diff))
        p = float(stats.chi2.sf(stat, d))
    else:
        if n <= d:
            raise ValueError("Hotelling's test needs more points than dimensions")
        c = torch.cov(x.T).reshape(d, d)
        t2 = float(n * diff @ torch.linalg.solve(c, diff))
        stat = t2
        p = float(stats.f.sf(t2 * (n - d) / ((n - 1) * d), d, n - d))
    return TestResult("mean test", p > alpha, stat, p, alpha, n, expected=mu.tolist(), measured=x.mean(0).tolist())


def covariance_test(x: Any, cov: Any, mean: Any | None = None, *, alpha: float = 0.01) -> TestResult:
    """Test Cov[x] = cov entry by entry: z-scores with plug-in standard errors, Bonferroni over D(D+1)/2 entries."""
    alpha = _check_alpha(alpha)
    x = _points(x, "x")
    n, d = x.shape
    c = as_float_tensor(cov, "cov", dtype=torch.float64).reshape(d, d)
    mu = x.mean(0) if mean is None else as_float_tensor(mean, "mean", dtype=torch.float64).reshape(d)
    r = x - mu
    prod = r[:, :, None] * r[:, None, :]  # (n, d, d)
    est = prod.mean(0) * (n / (n - 1) if mean is None else 1.0)
    se = prod.std(0) / math.sqrt(n)
    iu = torch.triu_indices(d, d)
    z = ((est - c) / se.clamp_min(1e-300))[iu[0], iu[1]]
    k = iu.shape[1]
    thr = normal_quantile(1.0 - alpha / (2 * k))
    stat = float(z.abs().max())
    return TestResult(
        "covariance test", stat <= thr, stat, None, alpha, n, expected=c.tolist(), measured=est.tolist(), threshold=thr,
        details={"entries": k},
    )


def zero_mean_test(values: Any, *, alpha: float = 0.01, name: str = "zero-mean test") -> TestResult:
    """Test that i.i.d. values (n,) or (n, k) have mean zero: |mean| <= z_{1-alpha/(2k)} SE per column (Bonferroni)."""
    alpha = _check_alpha(alpha)
    v = as_float_tensor(values, "values").to(torch.float64)
    if v.ndim == 1:
        v = v[:, None]
    v = v.reshape(v.shape[0], -1)
    n, k = v.shape
    if n < 2:
        raise ValueError("values must hold at least 2 draws")
    m = v.mean(0)
    se = v.std(0) / math.sqrt(n)
    z = m / se.clamp_min(1e-300)
    thr = normal_quantile(1.0 - alpha / (2 * k))
    stat = float(z.abs().max())
    return TestResult(name, stat <= thr, stat, None, alpha, n, expected=0.0, measured=m.tolist(), threshold=thr,
                      details={"standard_errors": se.tolist()})


def binomial_interval(k: int, n: int, alpha: float = 0.01) -> tuple[float, float]:
    """Clopper-Pearson interval for a binomial proportion at confidence 1 - alpha."""
    k = check_int(k, "k", minimum=0)
    n = check_int(n, "n", minimum=1)
    if k > n:
        raise ValueError(f"k must be <= n, got k={k}, n={n}")
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=1.0 - _check_alpha(alpha), method="exact")
    return float(ci.low), float(ci.high)


def proportions_test(counts: Any, probs: Any, *, alpha: float = 0.01) -> TestResult:
    """Test observed category counts against exact probabilities: a Clopper-Pearson interval per category, Bonferroni."""
    alpha = _check_alpha(alpha)
    c = np.asarray(torch.as_tensor(counts).cpu().numpy(), dtype=np.int64).reshape(-1)
    p = np.asarray(torch.as_tensor(probs, dtype=torch.float64).cpu().numpy()).reshape(-1)
    if c.shape != p.shape:
        raise ValueError(f"counts and probs must have the same length, got {c.shape} and {p.shape}")
    if abs(p.sum() - 1.0) > 1e-6 or (p < 0).any():
        raise ValueError("probs must be non-negative and sum to 1")
    n = int(c.sum())
    each = alpha / len(c)
    intervals = [binomial_interval(int(k), n, each) for k in c]
    inside = [lo <= q <= hi for q, (lo, hi) in zip(p, intervals)]
    worst = max(abs(k / n - q) for k, q in zip(c, p))
    return TestResult(
        "proportions test", all(inside), worst, None, alpha, n, expected=p.tolist(), measured=(c / n).tolist(),
        details={"intervals": intervals},
    )


def mode_assignment(x: Any, mixture: GaussianMixture) -> torch.Tensor:
    """Index of the most responsible component for each point."""
    return mixture.responsibilities(torch.as_tensor(x, dtype=mixture.dtype)).argmax(-1)


def mode_weights_test(
    x: Any,
    mixture: GaussianMixture,
    *,
    alpha: float = 0.01,
    reference_n: int = 200_000,
    generator: torch.Generator | None = None,
    reference: GaussianMixture | None = None,
) -> TestResult:
    """Test the share of points assigned to each component of ``mixture`` against exact samples' shares.

    The exact samples come from ``reference`` (default: ``mixture`` itself; e.g. a
    class-conditional law whose points are still assigned to the full mixture's modes).
    The probability that an exact draw is assigned to component k is estimated from
    ``reference_n`` exact draws; the test is a chi-square test of homogeneity between the
    two count vectors (valid whatever the overlap of the components).
    """
    alpha = _check_alpha(alpha)
    gen = generator if generator is not None else torch.Generator().manual_seed(12345)
    k = mixture.num_components
    law = mixture if reference is None else reference
    if law.dim != mixture.dim:
        raise ValueError(f"reference has dimension {law.dim}, the mixture {mixture.dim}")
    obs = torch.bincount(mode_assignment(x, mixture), minlength=k).numpy()
    ref = torch.bincount(mode_assignment(law.sample(reference_n, gen), mixture), minlength=k).numpy()
    table = np.stack([obs, ref])
    keep = table.sum(0) > 0
    chi2, p, _, _ = stats.chi2_contingency(table[:, keep], correction=False)
    return TestResult(
        "mode weights test", p > alpha, float(chi2), float(p), alpha, int(obs.sum()),
        expected=(ref / ref.sum()).tolist(), measured=(obs / max(1, obs.sum())).tolist(),
    )


@dataclass
class OrderFit:
    """Least-squares slope of log error against log steps (weighted by the errors' standard errors when given)."""

    slope: float
    intercept: float
    stderr: float
    r2: float
    weighted: bool = False

    @property
    def order(self) -> float:
        """Convergence order: minus the slope of log error vs log steps."""
        return -self.slope


def fit_order(steps: Sequence[float], errors: Sequence[float], stderr: Sequence[float] | None = None) -> OrderFit:
    """Fit log(error) = intercept + slope log(steps).

    Without ``stderr``: ordinary least squares (scipy.stats.linregress), its ``stderr`` from the residuals.
    With ``stderr`` (the standard errors of Monte Carlo error estimates): weighted least squares with the
    variance of log(error_i) taken as (stderr_i / error_i)^2 (delta method), and the slope's standard error
    propagated from those variances, so that it is valid with as few as two steps.
    """
    s = np.asarray(steps, dtype=np.float64)
    e = np.asarray(errors, dtype=np.float64)
    if s.shape != e.shape or s.ndim != 1 or s.size < 2:
        raise ValueError("steps and errors must be equal-length sequences of at least 2 values")
    if not np.isfinite(s).all() or (s <= 0).any() or (e <= 0).any() or not np.isfinite(e).all():
        raise ValueError("steps and errors must be positive and finite")
    if len(set(s.tolist())) < 2:
        raise ValueError("steps must hold at least 2 distinct values")
    if stderr is None:
        r = stats.linregress(np.log(s), np.log(e))
        return OrderFit(float(r.slope), float(r.intercept), float(r.stderr), float(r.rvalue**2))
    se = np.asarray(stderr, dtype=np.float64)
    if se.shape != e.shape or not np.isfinite(se).all() or (se <= 0).any():
        raise ValueError("stderr must hold one positive, finite standard error per error")
    x, y, w = np.log(s), np.log(e), (e / se) ** 2
    xm, ym = np.sum(w * x) / w.sum(), np.sum(w * y) / w.sum()
    sxx = np.sum(w * (x - xm) ** 2)
    slope = float(np.sum(w * (x - xm) * (y - ym)) / sxx)
    resid = y - ym - slope * (x - xm)
    syy = np.sum(w * (y - ym) ** 2)
    r2 = float(1.0 - np.sum(w * resid**2) / syy) if syy > 0 else 1.0
    return OrderFit(slope, float(ym - slope * xm), float(np.sqrt(1.0 / sxx)), r2, weighted=True)
