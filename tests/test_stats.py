"""The statistical tests are calibrated (false-alarm rate at most alpha under the null) and have power.

Calibration runs R independent replicates under the null at level alpha and bounds the
number of rejections by the binomial(R, alpha) quantile at 1e-4 (so this test itself
fails by chance with probability below 1e-4 for a calibrated test); power runs each test
on a deliberately wrong sample.
"""

import pytest
import torch
from scipy import stats as sps

import toy
from diffcheck.testing import stats as st

R = 200
ALPHA = 0.05
UPPER = int(sps.binom.ppf(1 - 1e-4, R, ALPHA))  # at most this many false alarms
LOWER = int(sps.binom.ppf(1e-4, R, ALPHA))  # an asymptotically exact test also rejects this many


def _rate(run):
    return sum(not run(i).passed for i in range(R))


def test_sliced_two_sample_calibrated():
    m = toy.anisotropic()

    def run(i):
        g = torch.Generator().manual_seed(100 + i)
        return st.two_sample_test(m.sample(200, g), m.sample(300, g), alpha=ALPHA, generator=g, features=m.log_prob)

    assert _rate(run) <= UPPER  # Bonferroni over slices: conservative


def test_energy_two_sample_calibrated_and_exact():
    m = toy.two_modes()

    def run(i):
        g = torch.Generator().manual_seed(500 + i)
        return st.two_sample_test(m.sample(60, g), m.sample(60, g), alpha=ALPHA, method="energy", permutations=99, generator=g)

    assert LOWER <= _rate(run) <= UPPER  # permutation p-values are exact


def test_mean_test_calibrated():
    m = toy.anisotropic()

    def run(i):
        g = torch.Generator().manual_seed(900 + i)
        return st.mean_test(m.sample(500, g), m.mean(), m.covariance(), alpha=ALPHA)

    assert LOWER <= _rate(run) <= UPPER


def test_hotelling_calibrated():
    m = toy.anisotropic()

    def run(i):
        g = torch.Generator().manual_seed(1300 + i)
        return st.mean_test(m.sample(100, g), m.mean(), alpha=ALPHA)

    assert LOWER <= _rate(run) <= UPPER


def test_covariance_test_calibrated():
    m = toy.anisotropic()

    def run(i):
        g = torch.Generator().manual_seed(1700 + i)
        return st.covariance_test(m.sample(2000, g), m.covariance(), alpha=ALPHA)

    assert _rate(run) <= UPPER


def test_zero_mean_and_mode_weight_tests_calibrated():
    m = toy.ring(n=4, std=0.4)

    def run_zero(i):
        g = torch.Generator().manual_seed(2100 + i)
        return st.zero_mean_test(torch.randn(300, 3, generator=g, dtype=torch.float64), alpha=ALPHA)

    def run_modes(i):
        g = torch.Generator().manual_seed(2500 + i)
        return st.mode_weights_test(m.sample(400, g), m, alpha=ALPHA, reference_n=20000, generator=g)

    assert _rate(run_zero) <= UPPER
    assert LOWER <= _rate(run_modes) <= UPPER


# -- power: each kind rejects a wrong sample -----------------------------------------------------


def test_each_test_rejects_a_wrong_sample(gen):
    m = toy.anisotropic()
    good = m.sample(4000, gen)
    shifted = good + 0.1
    wide = m.mean() + 1.2 * (good - m.mean())
    assert not st.mean_test(shifted, m.mean(), m.covariance(), alpha=1e-3).passed
    assert not st.mean_test(shifted, m.mean(), alpha=1e-3).passed
    assert not st.covariance_test(wide, m.covariance(), alpha=1e-3).passed
    assert not st.two_sample_test(wide, m.sample(4000, gen), alpha=1e-3).passed
    assert not st.two_sample_test(wide[:500], m.sample(500, gen), alpha=1e-2, method="energy", permutations=199).passed
    assert not st.zero_mean_test(torch.randn(4000, generator=gen, dtype=torch.float64) + 0.1, alpha=1e-3).passed
    # wrong mode weights: 0.5 / 0.5 instead of 0.2 / 0.8
    tm = toy.two_modes()
    half = toy.GaussianMixture([0.5, 0.5], tm.means, 1.0).sample(2000, gen)
    assert not st.mode_weights_test(half, tm, alpha=1e-3, generator=gen).passed
    assert not st.proportions_test([1000, 1000], [0.2, 0.8], alpha=1e-3).passed


def test_two_sample_detects_shape_with_matched_moments(gen):
    m = toy.ring(n=3, radius=2.0, std=0.3)
    chol = torch.linalg.cholesky(m.covariance())
    gauss = m.mean() + torch.randn(3000, 2, generator=gen, dtype=torch.float64) @ chol.T
    assert st.mean_test(gauss, m.mean(), m.covariance(), alpha=1e-3).passed  # moments agree...
    assert not st.two_sample_test(gauss, m.sample(3000, gen), alpha=1e-3, features=m.log_prob).passed  # ...the law does not


def test_energy_refuses_unreachable_alpha():
    x = torch.randn(10, 2)
    with pytest.raises(ValueError, match="permutations=99 cannot reach"):
        st.two_sample_test(x, x, alpha=1e-3, method="energy", permutations=99)


def test_binomial_interval_and_fit_order():
    lo, hi = st.binomial_interval(50, 100, 0.05)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(0.2, abs=0.02)
    fit = st.fit_order([8, 16, 32, 64], [1 / 8**2, 1 / 16**2, 1 / 32**2, 1 / 64**2])
    assert fit.order == pytest.approx(2.0, abs=1e-12)
    with pytest.raises(ValueError, match="positive"):
        st.fit_order([1, 2], [0.0, 1.0])


def test_failed_result_message_says_expected_measured_n_alpha(gen):
    r = st.mean_test(torch.randn(100, 2, generator=gen, dtype=torch.float64) + 1, torch.zeros(2), torch.eye(2), alpha=1e-3)
    msg = str(r)
    assert "FAILED" in msg and "n = 100" in msg and "alpha = 0.001" in msg and "expected" in msg and "measured" in msg


def test_weighted_order_fit_with_standard_errors():
    steps = [64, 128, 256, 512]
    errors = [3.0 * s**-1.5 for s in steps]
    # standard errors proportional to the errors weigh every log-error alike: the slope is the ordinary one, and
    # its standard error is rel / sqrt(sum (log s - mean)^2) (delta method), whatever the residuals
    fit = st.fit_order(steps, errors, [0.05 * e for e in errors])
    x = torch.log(torch.tensor(steps, dtype=torch.float64))
    assert fit.weighted and fit.order == pytest.approx(1.5, abs=1e-12)
    assert fit.stderr == pytest.approx(0.05 / float(((x - x.mean()) ** 2).sum().sqrt()), rel=1e-12)
    # a point with a 10x larger standard error pulls the fit 100x less: the slope follows the precise points
    bent = errors[:3] + [errors[3] * 2.0]
    loose = st.fit_order(steps, bent, [0.05 * errors[0], 0.05 * errors[1], 0.05 * errors[2], 0.5 * bent[3]])
    tight = st.fit_order(steps, bent, [0.05 * e for e in bent])
    assert abs(loose.order - 1.5) < abs(tight.order - 1.5) / 5
    with pytest.raises(ValueError, match="stderr"):
        st.fit_order(steps, errors, [0.1, 0.1, 0.0, 0.1])
    with pytest.raises(ValueError, match="distinct"):
        st.fit_order([8, 8], [1.0, 2.0])


def test_exact_law_test_uses_the_exact_projected_cdfs(gen):
    from diffcheck.testing.exact_law import _projected_cdf, exact_law_test

    m = toy.anisotropic()
    w = torch.tensor([0.6, 0.8], dtype=torch.float64)
    # the CDF of w^T X against an independent computation: the empirical CDF of a million exact draws
    y = (m.sample(1_000_000, gen) @ w).numpy()
    grid = torch.linspace(-4, 4, 9, dtype=torch.float64).numpy()
    emp = (y[None, :] <= grid[:, None]).mean(1)
    assert abs(_projected_cdf(m, w)(grid) - emp).max() < 5 * 0.5 / 1000  # 5 standard errors of a proportion
    assert exact_law_test(m.sample(2000, gen), m, alpha=1e-3, features=m.log_prob, generator=gen).passed
    wide = m.mean() + 1.2 * (m.sample(2000, gen) - m.mean())
    r = exact_law_test(wide, m, alpha=1e-3, generator=gen)
    assert not r.passed and r.details["reference_n"] == 0
    with pytest.raises(ValueError, match="dimension"):
        exact_law_test(torch.zeros(10, 3), m)
