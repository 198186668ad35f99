"""Step samplers: uniform weights, Improved DDPM's loss-history rule, unbiasedness."""

import math

import pytest
import torch

from diffcheck.importance import LossSecondMomentSampler, UniformSampler


def test_uniform_sampler(gen):
    s = UniformSampler(7)
    torch.testing.assert_close(s.probabilities(), torch.full((7,), 1 / 7, dtype=torch.float64))
    steps, w = s.sample(5000, gen)
    assert steps.dtype == torch.int64 and set(steps.tolist()) == set(range(1, 8))
    torch.testing.assert_close(w, torch.ones(5000, dtype=torch.float64))


def _fill(sampler, per_step):
    """Feed per_step[i] (a list of losses) to step i + 1, interleaved across steps."""
    for k in range(max(len(v) for v in per_step)):
        steps = [i + 1 for i, v in enumerate(per_step) if k < len(v)]
        sampler.update(torch.tensor(steps), torch.tensor([per_step[s - 1][k] for s in steps], dtype=torch.float64))


def test_second_moment_sampler_is_uniform_until_every_step_holds_its_history():
    s = LossSecondMomentSampler(4, history=3)
    _fill(s, [[1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [5.0, 5.0, 5.0], [2.0, 2.0]])
    assert not s.warmed_up
    torch.testing.assert_close(s.probabilities(), torch.full((4,), 0.25, dtype=torch.float64))
    _fill(s, [[], [], [], [2.0]])
    assert s.warmed_up


def test_second_moment_sampler_keeps_the_last_losses_and_mixes_uniform():
    s = LossSecondMomentSampler(3, history=10, uniform_prob=0.001)
    # old losses (100) are pushed out by 10 newer ones per step
    _fill(s, [[100.0] * 5 + [1.0] * 10, [100.0] * 3 + [2.0] * 10, [3.0] * 10 + [4.0] * 10])
    rms = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    want = 0.999 * rms / rms.sum() + 0.001 / 3
    torch.testing.assert_close(s.probabilities(), want, rtol=1e-15, atol=0)
    # sqrt of the mean square, not the mean: losses 0 and 2 give sqrt(2)
    t = LossSecondMomentSampler(2, history=2, uniform_prob=0.0)
    _fill(t, [[0.0, 2.0], [1.0, 1.0]])
    torch.testing.assert_close(t.probabilities(), torch.tensor([math.sqrt(2), 1.0], dtype=torch.float64) / (1 + math.sqrt(2)))


def test_weights_make_the_estimate_unbiased(gen):
    L = torch.tensor([5.0, 1.0, 0.2, 0.05, 0.01], dtype=torch.float64)
    s = LossSecondMomentSampler(5, history=10)
    _fill(s, [[float(v)] * 10 for v in L])
    p = s.probabilities()
    torch.testing.assert_close((p * (L / p)).sum(), L.sum(), rtol=1e-15, atol=0)  # E_p[L/p] = sum L exactly
    steps, w = s.sample(40000, gen)
    torch.testing.assert_close(w, 1.0 / (5 * p[steps - 1]), rtol=1e-15, atol=0)
    est = 5 * w * L[steps - 1]
    assert abs(float(est.mean()) - float(L.sum())) <= 4 * float(est.std()) / math.sqrt(40000)
    # with deterministic per-step losses, p proportional to L makes the estimate nearly constant
    assert float(est.std()) < 0.01 * float(L.sum())
    # the sampler's step frequencies follow p
    counts = torch.bincount(steps - 1, minlength=5).double() / 40000
    assert float((counts - p).abs().max()) <= 4 * math.sqrt(0.25 / 40000)


def test_zero_losses_fall_back_to_uniform():
    s = LossSecondMomentSampler(3, history=1, uniform_prob=0.0)
    _fill(s, [[0.0], [0.0], [0.0]])
    torch.testing.assert_close(s.probabilities(), torch.full((3,), 1 / 3, dtype=torch.float64))


def test_samplers_validate():
    with pytest.raises(ValueError, match="num_steps"):
        UniformSampler(0)
    with pytest.raises(ValueError, match="history"):
        LossSecondMomentSampler(3, history=0)
    with pytest.raises(ValueError, match="uniform_prob"):
        LossSecondMomentSampler(3, uniform_prob=1.5)
    s = LossSecondMomentSampler(3)
    with pytest.raises(ValueError, match="steps"):
        s.update(torch.tensor([0, 1]), torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match="same length"):
        s.update(torch.tensor([1, 2]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="n"):
        s.sample(0)
    assert "num_steps=3" in repr(s)
