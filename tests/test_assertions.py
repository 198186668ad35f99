"""The public assertions say what was expected, what was measured, at what n and alpha; and they pass on exact samples."""

import pytest
import torch

import toy
from diffcheck.testing import (
    DiffcheckAssertionError,
    assert_gaussian_kl,
    assert_mode_weights,
    assert_moments,
    assert_order,
    assert_samples_match,
)


def test_exact_samples_pass_every_assertion(gen):
    m = toy.anisotropic()
    law = m.noised(0.8, 0.4)
    x = law.sample(3000, gen)
    assert_samples_match(x, law, generator=gen)
    assert_moments(x, law)
    assert_mode_weights(x, law.to_mixture(), generator=gen)
    assert assert_gaussian_kl(x, law, max_kl=0.01) < 0.01


def test_wrong_samples_fail_with_a_full_message(gen):
    m = toy.two_modes()
    wrong = toy.GaussianMixture([0.5, 0.5], m.means, 1.0).sample(2000, gen)
    with pytest.raises(DiffcheckAssertionError) as e:
        assert_samples_match(wrong, m, alpha=1e-3, generator=gen)
    msg = str(e.value)
    assert "n=2000" in msg and "alpha=0.001" in msg and "expected" in msg and "measured" in msg
    assert len(e.value.results) == 2
    with pytest.raises(DiffcheckAssertionError, match="sample moments"):
        assert_moments(wrong, m)
    with pytest.raises(DiffcheckAssertionError, match="expected <= 0.001 nats"):
        assert_gaussian_kl(wrong, m, max_kl=1e-3)


def test_assert_order():
    steps = [10, 20, 40, 80]
    assert_order(steps, [1 / s for s in steps], 1.0)
    with pytest.raises(DiffcheckAssertionError, match=r"expected 2 \+- 0.1, measured 1.000"):
        assert_order(steps, [1 / s for s in steps], 2.0)
    assert_order(steps, [1 / s**2 for s in steps], 1.0, at_least=True)


def test_assert_order_with_monte_carlo_errors_allows_their_noise_and_no_more():
    steps = [64, 128, 256, 512]
    rel = 0.05
    x = torch.log(torch.tensor(steps, dtype=torch.float64))
    se_slope = rel / float(((x - x.mean()) ** 2).sum().sqrt())  # the weighted fit's standard error (delta method)
    z = 3.090232306167813  # Phi^{-1}(1 - 1e-3)

    def errors(order):
        return [s**-order for s in steps], [rel * s**-order for s in steps]

    for inside in (2.1 + 0.99 * z * se_slope, 1.9 - 0.99 * z * se_slope):  # within band + z SE: passes
        e, se = errors(inside)
        assert_order(steps, e, 2.0, stderr=se, alpha=1e-3)
    for outside in (2.1 + 1.01 * z * se_slope, 1.9 - 1.01 * z * se_slope):
        e, se = errors(outside)
        with pytest.raises(DiffcheckAssertionError, match=r"alpha = 0.001"):
            assert_order(steps, e, 2.0, stderr=se, alpha=1e-3)
        with pytest.raises(DiffcheckAssertionError):  # exact errors have no slack at all
            assert_order(steps, e, 2.0)
    e, se = errors(1.9 - 1.01 * z * se_slope)  # at_least: one-sided, the same z
    with pytest.raises(DiffcheckAssertionError, match=">= 1.9"):
        assert_order(steps, e, 2.0, stderr=se, alpha=1e-3, at_least=True)
    e, se = errors(5.0)
    assert_order(steps, e, 2.0, stderr=se, alpha=1e-3, at_least=True)
    with pytest.raises(ValueError, match="band"):
        assert_order(steps, e, 2.0, band=-0.1)


def test_assertions_reject_bad_input(gen):
    with pytest.raises(TypeError, match="law must be a toy"):
        assert_samples_match(torch.zeros(10, 2), "two_modes")
    with pytest.raises(ValueError, match="dimension"):
        assert_samples_match(torch.zeros(10, 3, dtype=torch.float64), toy.two_modes())
    with pytest.raises(ValueError, match="alpha must be < 1"):
        assert_samples_match(torch.zeros(10, 2), toy.two_modes(), alpha=1.5)
