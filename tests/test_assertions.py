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


def test_assertions_reject_bad_input(gen):
    with pytest.raises(TypeError, match="law must be a toy"):
        assert_samples_match(torch.zeros(10, 2), "two_modes")
    with pytest.raises(ValueError, match="dimension"):
        assert_samples_match(torch.zeros(10, 3, dtype=torch.float64), toy.two_modes())
    with pytest.raises(ValueError, match="alpha must be < 1"):
        assert_samples_match(torch.zeros(10, 2), toy.two_modes(), alpha=1.5)
