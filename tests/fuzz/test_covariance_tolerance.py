"""The symmetry tolerance of covariances is relative to their dtype: float32 R D R^T passes, a truly asymmetric matrix does not."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import toy
from toy.validate import check_covariance


def _rdr(dim: int, seed: int, log_range: float) -> torch.Tensor:
    """R D R^T in float32 with R a random rotation and D's eigenvalues log-uniform over exp(+-log_range)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    lam = torch.exp(torch.empty(dim, dtype=torch.float64).uniform_(-log_range, log_range, generator=g))
    r = q.float()
    return r @ torch.diag(lam.float()) @ r.T


@settings(max_examples=30, deadline=None)
@given(dim=st.integers(2, 8), seed=st.integers(0, 2**31 - 1), log_range=st.floats(0.0, 7.0))
def test_float32_rotated_covariances_are_accepted(dim, seed, log_range):
    cov = _rdr(dim, seed, log_range)
    check_covariance(cov, "covs")
    m = toy.GaussianMixture([1.0], torch.zeros(1, dim, dtype=torch.float32), cov[None], dtype=torch.float32)
    assert m.dtype == torch.float32


def test_float32_rounding_asymmetry_exceeds_the_float64_tolerance():
    # the case the dtype-relative tolerance is for: the old fixed 1e-9 refused it
    worst = max(float((c - c.T).abs().max() / c.abs().max()) for c in (_rdr(4, s, 5.0) for s in range(20)))
    assert worst > 1e-9
    check_covariance(_rdr(4, 0, 5.0), "covs")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rel", [1e-4, 1e-2, 1.0])
def test_truly_asymmetric_covariances_are_refused(dtype, rel):
    cov = _rdr(3, 7, 3.0).to(dtype)
    cov[0, 1] += rel * cov.abs().max()
    with pytest.raises(ValueError, match="covs must be symmetric"):
        check_covariance(cov, "covs")
    with pytest.raises(ValueError, match="covs must be symmetric"):
        toy.GaussianMixture([1.0], torch.zeros(1, 3, dtype=dtype), cov[None], dtype=dtype)


def test_float64_keeps_its_tolerance():
    # float64 asymmetry just above 1e-9 |C| is refused, just below is accepted (64 eps64 is smaller than 1e-9)
    cov = torch.eye(2, dtype=torch.float64)
    below, above = cov.clone(), cov.clone()
    below[0, 1], above[0, 1] = 0.5e-9, 2e-9
    check_covariance(below, "covs")
    with pytest.raises(ValueError, match="symmetric"):
        check_covariance(above, "covs")
