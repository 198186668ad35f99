"""Sample-quality figures for GANs on mixture toys: mode coverage, high-quality share, two-sample statistics.

A sample is "high quality" if it lies within ``n_std`` standard deviations (Mahalanobis distance under
the component's covariance) of its nearest component; a mode is "covered" if it receives at least
``min_share`` of its expected share of the samples as high-quality samples (the 3-standard-deviation
rule follows VEEGAN, Srivastava et al. 2017; the share threshold guards against a few stray points).
"""

from __future__ import annotations

from typing import Any

import torch

from toy.mixture import GaussianMixture
from toy.validate import as_float_tensor, check_float

from ..testing import stats as st

__all__ = ["mode_coverage", "point_metrics"]


def mode_coverage(x: Any, mixture: GaussianMixture, *, n_std: float = 3.0, min_share: float = 0.25) -> dict[str, Any]:
    """Counts of high-quality samples per component, the number of covered modes and the high-quality share."""
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    n_std = check_float(n_std, "n_std", low=0.0, low_open=True)
    min_share = check_float(min_share, "min_share", low=0.0)
    x = as_float_tensor(x, "x", dtype=torch.float64, ndim=2)
    if x.shape[1] != mixture.dim:
        raise ValueError(f"x must have {mixture.dim} columns, got {x.shape[1]}")
    diff = x[:, None, :] - mixture.means[None]  # (n, K, D)
    chol = torch.linalg.cholesky(mixture.covs)  # (K, D, D)
    w = torch.linalg.solve_triangular(chol[None].expand(x.shape[0], -1, -1, -1), diff[..., None], upper=False)[..., 0]
    dist = w.pow(2).sum(-1).sqrt()  # Mahalanobis distance to each component
    best, idx = dist.min(1)
    good = best <= n_std
    k = mixture.num_components
    counts = torch.bincount(idx[good], minlength=k)
    expected = mixture.weights * x.shape[0]
    covered = counts.double() >= min_share * expected
    return {
        "counts": counts.tolist(),
        "modes_covered": int(covered.sum()),
        "modes": k,
        "high_quality": float(good.double().mean()),
    }


def point_metrics(x: Any, mixture: GaussianMixture, reference: Any, *, generator: torch.Generator | None = None) -> dict[str, float]:
    """Mode coverage plus two-sample statistics of ``x`` against ``reference`` (exact draws from ``mixture``).

    ``energy``: the energy-distance statistic of ``diffcheck.testing.stats.two_sample_test`` (and its
    permutation p-value); ``sliced_ks``: the largest Kolmogorov-Smirnov statistic over coordinates, 16
    random directions and the exact log-density.
    """
    x = as_float_tensor(x, "x", dtype=torch.float64, ndim=2)
    ref = as_float_tensor(reference, "reference", dtype=torch.float64, ndim=2)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    cov = mode_coverage(x, mixture)
    energy = st.two_sample_test(x, ref, method="energy", alpha=0.05, permutations=99, generator=gen, max_n=2000)
    sliced = st.two_sample_test(x, ref, method="sliced", alpha=0.05, features=mixture.log_prob, generator=gen)
    return {
        "modes_covered": float(cov["modes_covered"]),
        "high_quality": cov["high_quality"],
        "energy": energy.statistic,
        "energy_p": energy.p_value,
        "sliced_ks": sliced.statistic,
    }
