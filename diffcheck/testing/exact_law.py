"""A test of samples against an exact Gaussian-mixture law: one-sample KS on projections, no reference draw needed."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from scipy import stats

from toy.mixture import GaussianMixture
from toy.validate import check_int

from .stats import TestResult, _check_alpha, _points

__all__ = ["exact_law_test"]


def _projected_cdf(mixture: GaussianMixture, w: torch.Tensor) -> Callable[[np.ndarray], np.ndarray]:
    """The exact CDF of w^T X for X ~ mixture: sum_k pi_k Phi((s - w^T mu_k) / sqrt(w^T Sigma_k w)).

    ``w`` (D,) gives a function of values (n,); ``w`` (J, D) a function of values (n, J), column j along w_j.
    """
    ws = w.to(torch.float64).reshape(-1, w.shape[-1])
    pi = mixture.weights.to(torch.float64).numpy()
    mu = (ws @ mixture.means.to(torch.float64).T).numpy()  # (J, K)
    sd = torch.einsum("ji,kil,jl->jk", ws, mixture.covs.to(torch.float64), ws).clamp_min(0.0).sqrt().numpy()
    point = sd == 0.0  # a component at a point along w (a degenerate covariance): a step in the CDF

    def cdf(v: np.ndarray) -> np.ndarray:
        vv = np.asarray(v, dtype=np.float64).reshape(len(v), -1)[:, :, None]  # (n, J, 1)
        z = (vv - mu) / np.where(point, 1.0, sd)
        parts = np.where(point, (vv >= mu).astype(np.float64), stats.norm.cdf(z))
        out = parts @ pi
        return out[:, 0] if w.ndim == 1 else out

    return cdf


def _ks_one_sample(values: np.ndarray, cdf: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Kolmogorov-Smirnov statistics and exact p-values (scipy's ``kstwo``) of each column of (n, J) values."""
    n = values.shape[0]
    f = cdf(np.sort(values, axis=0))
    i = np.arange(1, n + 1, dtype=np.float64)[:, None]
    d = np.maximum((i / n - f).max(0), (f - (i - 1) / n).max(0))
    return d, stats.kstwo.sf(d, n)


def exact_law_test(
    x: Any,
    mixture: GaussianMixture,
    *,
    alpha: float = 0.01,
    projections: int = 16,
    features: Callable[[torch.Tensor], torch.Tensor] | None = None,
    reference_n: int = 50_000,
    generator: torch.Generator | None = None,
) -> TestResult:
    """Test "x follows the Gaussian mixture ``mixture``" at false-alarm rate ``alpha``, against the exact law.

    One-sample Kolmogorov-Smirnov tests (scipy's exact p-values) of the coordinates and of ``projections``
    random directions against their exact CDFs (a projected mixture is a 1D mixture), and two-sample tests of
    any scalar ``features`` (e.g. the exact log-density, whose law has no closed form) against ``reference_n``
    exact draws; Bonferroni over all. With no reference sample for the projections, the false-alarm rate does
    not depend on a particular reference draw, as a two-sample test's rate given a fixed reference does.
    """
    alpha = _check_alpha(alpha)
    x = _points(x, "x")
    if x.shape[1] != mixture.dim:
        raise ValueError(f"x has {x.shape[1]} values per point, the mixture has dimension {mixture.dim}")
    projections = check_int(projections, "projections", minimum=0)
    reference_n = check_int(reference_n, "reference_n", minimum=2)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    d = x.shape[1]
    dirs = [torch.eye(d, dtype=torch.float64)]
    if projections:
        r = torch.randn(projections, d, generator=gen, dtype=torch.float64)
        dirs.append(r / r.norm(dim=1, keepdim=True))
    w = torch.cat(dirs)
    d_stat, p_proj = _ks_one_sample((x @ w.T).numpy(), _projected_cdf(mixture, w))
    pvals, stat = [float(v) for v in p_proj], float(d_stat.max())
    if features is not None:
        ref = mixture.sample(reference_n, gen).to(torch.float64)
        fx = torch.as_tensor(features(x), dtype=torch.float64).reshape(x.shape[0], -1)
        fy = torch.as_tensor(features(ref), dtype=torch.float64).reshape(reference_n, -1)
        for j in range(fx.shape[1]):
            r = stats.ks_2samp(fx[:, j].numpy(), fy[:, j].numpy())
            pvals.append(float(r.pvalue))
            stat = max(stat, float(r.statistic))
    k = len(pvals)
    p = min(1.0, k * min(pvals))
    return TestResult(
        name="sliced KS test against the exact law", passed=p > alpha, statistic=stat, p_value=p, alpha=alpha,
        n=x.shape[0], details={"slices": k, "smallest_slice_p": min(pvals),
                               "reference_n": reference_n if features is not None else 0},
    )
