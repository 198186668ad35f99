"""The sample-size resolution of exact Gaussian laws: closed forms, the likelihood-ratio test it stands for, bad input."""

import math

import pytest
import torch
from scipy import stats

from diffcheck import testing
from diffcheck.testing import gaussian_distance, gaussian_kl, gaussian_law_check, law_resolution


def test_exported_from_diffcheck_testing():
    assert testing.gaussian_kl is gaussian_kl and testing.resolution.law_resolution is law_resolution


def test_resolution_in_one_dimension_is_a_closed_form():
    # d = 1: k = 2 degrees of freedom, and chi2_2's (1 - alpha) quantile is -2 log alpha
    for n, alpha in [(10_000, 1e-3), (500, 0.05)]:
        assert law_resolution(1, n, alpha) == pytest.approx((-2 * math.log(alpha) - 2) / (2 * n), rel=1e-10)


def test_kl_against_closed_forms():
    # one dimension: log(s2 / s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2
    m1, s1, m2, s2 = 0.3, 0.7, -0.2, 1.3
    want = math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    assert gaussian_kl([m1], [[s1**2]], [m2], [[s2**2]]) == pytest.approx(want, rel=1e-12)
    # two dimensions, rotated: the KL is invariant under a common rotation, so it is the sum of the axis-wise KLs
    c, s = math.cos(0.4), math.sin(0.4)
    rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    v0, v1 = torch.tensor([0.5, 2.0], dtype=torch.float64), torch.tensor([1.0, 3.0], dtype=torch.float64)
    d = torch.tensor([0.4, -1.0], dtype=torch.float64)
    axis = sum(0.5 * (a / b - 1 - math.log(a / b)) for a, b in zip(v0.tolist(), v1.tolist())) + 0.5 * float((d**2 / v1).sum())
    got = gaussian_kl(rot @ d, rot @ torch.diag(v0) @ rot.T, torch.zeros(2), rot @ torch.diag(v1) @ rot.T)
    assert got == pytest.approx(axis, rel=1e-12)
    assert gaussian_distance([m1], [[s1**2]], [m2], [[s2**2]]) == pytest.approx(math.sqrt(2 * want), rel=1e-12)


def test_a_collapsed_law_is_infinitely_far_and_bad_input_is_named():
    ref = (torch.zeros(2), torch.eye(2))
    assert gaussian_kl([1.0, 2.0], torch.zeros(2, 2), *ref) == math.inf  # a point mass: not absolutely continuous
    assert gaussian_kl([0.0, 0.0], [[1.0, 1.0], [1.0, 1.0]], *ref) == math.inf  # a line
    assert not gaussian_law_check([0.0, 0.0], torch.zeros(2, 2), *ref).passed
    with pytest.raises(ValueError, match="ref_cov must be positive definite"):
        gaussian_kl([0.0, 0.0], torch.eye(2), [0.0, 0.0], [[1.0, 1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="mean contains NaN"):
        gaussian_kl([math.nan, 0.0], torch.eye(2), *ref)
    with pytest.raises(ValueError, match="ref_cov contains inf"):
        gaussian_kl([0.0, 0.0], torch.eye(2), [0.0, 0.0], [[math.inf, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="cov must be positive semi-definite"):
        gaussian_kl([0.0, 0.0], [[1.0, 0.0], [0.0, -1.0]], *ref)
    with pytest.raises(ValueError, match="ref_mean must hold 2 entries"):
        gaussian_kl([0.0, 0.0], torch.eye(2), [0.0], torch.eye(2))


def test_the_resolution_is_the_kl_that_the_likelihood_ratio_test_detects_with_even_odds():
    # draw n samples from N(delta, 1) at KL = resolution from N(0, 1); the likelihood-ratio statistic of
    # "N(0, 1)" against any Gaussian is 2 n KL(fitted || N(0, 1)). Its rejection rate at level alpha is the
    # non-central chi2_2 tail at non-centrality 2 n KL; the simulated rate must lie in its 99.9% binomial band.
    n, alpha, reps = 2000, 1e-3, 4000
    res = law_resolution(1, n, alpha)
    delta = math.sqrt(2 * res)
    x = delta + torch.randn(reps, n, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    m, v = x.mean(1), x.var(1, unbiased=False)
    stat = 2 * n * 0.5 * (v - 1 - v.log() + m**2)
    crit = stats.chi2.ppf(1 - alpha, 2)
    rate = float((stat > crit).double().mean())
    power = float(stats.ncx2.sf(crit, 2, 2 * n * res))
    assert 0.4 < power < 0.6  # "about even odds"
    band = stats.norm.ppf(1 - 5e-4) * math.sqrt(power * (1 - power) / reps)
    assert abs(rate - power) < band
    # and the verdict: just inside passes, just beyond fails
    assert gaussian_law_check([math.sqrt(2 * res * 0.99)], [[1.0]], [0.0], [[1.0]], n=n, alpha=alpha).passed
    assert not gaussian_law_check([math.sqrt(2 * res * 1.01)], [[1.0]], [0.0], [[1.0]], n=n, alpha=alpha).passed
