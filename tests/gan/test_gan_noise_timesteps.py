"""Instance noise and step laws of Diffusion-GAN: identities, shapes, errors and invariants."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as hs

import toy
from diffcheck.gan.noise import InstanceNoise
from diffcheck.gan.timesteps import TimestepSampler, t_probs


def test_alpha_bar_starts_clean_and_matches_the_official_table():
    # the official code: betas = linspace(1e-4, 2e-2, T); alphas_cumprod = cat([1], cumprod(1 - betas))
    for T in (10, 1000):
        noise = InstanceNoise(T)
        betas = [1e-4 + (2e-2 - 1e-4) * i / (T - 1) for i in range(T)]
        assert noise.alpha_bar.shape == (T + 1,) and float(noise.alpha_bar[0]) == 1.0
        assert float(noise.betas[0]) == 1e-4 and abs(float(noise.betas[-1]) - 2e-2) < 1e-17
        assert max(abs(float(b) - c) for b, c in zip(noise.betas, betas)) < 1e-17
    # the end of the chain: abar_T ~ 4.0e-5 for T = 1000 (as in DDPM), much larger for T = 10
    assert 3.9e-5 < float(InstanceNoise(1000).alpha_bar[-1]) < 4.1e-5
    # T = 10: sum of betas = 10 * 0.01005, so abar_10 = exp(-0.1005 - O(sum beta^2)) ~ 0.904
    assert 0.90 < float(InstanceNoise(10).alpha_bar[-1]) < math.exp(-0.1005)


def test_scales_include_the_noise_std():
    noise = InstanceNoise(1000, noise_std=0.05)
    a, s = noise.scales(torch.tensor([0, 500, 1000]))
    ab = noise.alpha_bar[[0, 500, 1000]]
    assert torch.equal(a, ab.sqrt())
    assert torch.allclose(s, 0.05 * (1 - ab).sqrt(), rtol=0, atol=1e-17)
    assert float(s[0]) == 0.0


def test_diffuse_is_the_affine_map_with_the_given_noise_for_images_and_points():
    noise = InstanceNoise(100)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, 8, 8, generator=gen)
    eps = torch.randn(4, 1, 8, 8, generator=gen)
    t = torch.tensor([0, 1, 50, 100])
    y = noise.diffuse(x, t, noise=eps)
    a, s = noise.scales(t)
    for i in range(4):
        assert torch.allclose(y[i], float(a[i]) * x[i] + float(s[i]) * eps[i], atol=1e-6)
    assert torch.equal(y[0], x[0])  # t = 0 leaves the input clean
    pts = torch.randn(3, 2, dtype=torch.float64, generator=gen)
    assert noise.diffuse(pts, 7, gen).shape == (3, 2)


def test_diffuse_is_differentiable_in_x():
    noise = InstanceNoise(100)
    x = torch.randn(5, 2, requires_grad=True)
    t = torch.tensor([0, 10, 20, 50, 100])
    noise.diffuse(x, t, torch.Generator().manual_seed(1)).sum().backward()
    assert torch.allclose(x.grad[:, 0].double(), noise.scales(t)[0], atol=1e-6)


def test_law_is_the_noised_mixture():
    m = toy.two_modes()
    noise = InstanceNoise(1000)
    law = noise.law(m, 300)
    a, s = noise.scales(300)
    x = torch.randn(6, 2, dtype=torch.float64)
    assert torch.allclose(law.log_prob(x), m.noised(a, s).log_prob(x), rtol=0, atol=1e-14)
    per = noise.law(m, torch.tensor([1, 300, 1000, 0, 5, 6]))
    for i, t in enumerate([1, 300, 1000, 0, 5, 6]):
        assert torch.allclose(per.log_prob(x)[i], noise.law(m, t).log_prob(x[i]), atol=1e-12)


@pytest.mark.parametrize("kwargs, word", [
    ({"T": 0}, "T"), ({"T": 1.5}, "T"), ({"T": 10, "noise_std": 0.0}, "noise_std"),
    ({"T": 10, "beta_end": 1.0}, "beta_end"), ({"T": 10, "beta_start": float("nan")}, "beta_start"),
])
def test_bad_noise_configuration_names_the_argument(kwargs, word):
    with pytest.raises((ValueError, TypeError), match=word):
        InstanceNoise(**kwargs)


def test_bad_steps_and_inputs_are_rejected():
    noise = InstanceNoise(10)
    with pytest.raises(ValueError, match="t must lie in"):
        noise.scales(11)
    with pytest.raises(ValueError, match="t must lie in"):
        noise.scales(torch.tensor([-1, 2]))
    with pytest.raises(TypeError, match="t must be integers"):
        noise.scales(torch.tensor([0.5]))
    with pytest.raises(ValueError, match="shape"):
        noise.diffuse(torch.zeros(3, 2), torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="x must be"):
        noise.diffuse([[0.0, 1.0]], 1)
    with pytest.raises(TypeError, match="mixture"):
        noise.law("ring", 1)


# -- step laws ------------------------------------------------------------------------------


def test_paper_and_official_priority_differ_by_one_step():
    T = 5
    paper, code = t_probs(T, "priority", "paper"), t_probs(T, "priority", "official")
    assert paper.tolist() == pytest.approx([0, 1 / 15, 2 / 15, 3 / 15, 4 / 15, 5 / 15], abs=1e-16)
    assert code.tolist() == pytest.approx([0, 0, 1 / 10, 2 / 10, 3 / 10, 4 / 10], abs=1e-16)
    # the code's law is the paper's shifted by one step: p_code(t) = p_paper(t - 1) T(T+1) / (T(T-1))
    assert torch.allclose(code[2:], paper[1:-1] * (T + 1) / (T - 1), atol=1e-16)


def test_official_pool_holds_half_zeros_and_the_official_weights():
    s = TimestepSampler("priority", "official")
    gen = torch.Generator().manual_seed(3)
    pool = s.refresh(1000, gen)
    assert pool.shape == (64,) and pool.dtype == torch.int64
    assert (pool[32:] == 0).all() and (pool[:32] >= 2).all()
    draws = s.sample(pool, 10_000, gen)
    assert set(draws.tolist()) <= set(pool.tolist())
    p = s.probs(1000)
    assert float(p[0]) == 0.5 and float(p[1]) == 0.0 and abs(float(p.sum()) - 1) < 1e-14


@given(T=hs.integers(2, 3000), kind=hs.sampled_from(["priority", "uniform"]), conv=hs.sampled_from(["paper", "official"]))
def test_step_laws_are_probability_vectors(T, kind, conv):
    p = t_probs(T, kind, conv)
    assert p.shape == (T + 1,) and float(p[0]) == 0.0 and bool((p >= 0).all())
    assert abs(float(p.sum()) - 1.0) < 1e-12
    if kind == "priority":
        assert bool((p[2:] >= p[1:-1]).all())  # non-decreasing in t
    marginal = TimestepSampler(kind, conv).probs(T)
    assert abs(float(marginal.sum()) - 1.0) < 1e-12


def test_step_law_errors_name_the_argument():
    with pytest.raises(ValueError, match="kind"):
        t_probs(10, "linear")
    with pytest.raises(ValueError, match="convention"):
        t_probs(10, "priority", "github")
    with pytest.raises(ValueError, match="T >= 2"):
        t_probs(1, "priority", "official")
    with pytest.raises(ValueError, match="drawn"):
        TimestepSampler(slots=8, drawn=9)
    s = TimestepSampler("uniform", "official")
    with pytest.raises(ValueError, match="pool"):
        s.sample(torch.zeros(3, dtype=torch.int64), 4)
    with pytest.raises(ValueError, match="pmf"):
        TimestepSampler().sample(torch.zeros(3, dtype=torch.int64), 4)
    assert math.isclose(float(t_probs(1, "priority", "paper")[1]), 1.0)


@given(T=hs.integers(1, 2000), start=hs.floats(1e-5, 1e-3), end=hs.floats(1e-3, 0.05), std=hs.floats(0.01, 2.0))
@example(T=1386, start=0.0002618542638594286, end=0.046875, std=1.0)  # alpha_bar_T = 5e-15: s stalls at float64 resolution
def test_noise_tables_are_monotone_and_bounded(T, start, end, std):
    noise = InstanceNoise(T, start, end, std)
    ab = noise.alpha_bar
    assert float(ab[0]) == 1.0 and bool((ab[1:] < ab[:-1]).all()) and bool((ab > 0).all())
    a, s = noise.scales(torch.arange(T + 1))
    # signal falls, noise rises, and a^2 + (s / std)^2 = 1 at every step; once alpha_bar is below about 1e-13,
    # s = std sqrt(1 - alpha_bar) of neighbouring steps differ by less than float64 resolves near std (T = 1386,
    # beta up to 0.047 reaches alpha_bar = 5e-15), so there s need only not fall
    resolved = ab[:-1] > 1e-12
    assert bool((a[1:] < a[:-1]).all()) and bool((s[1:] > s[:-1])[resolved].all()) and bool((s[1:] >= s[:-1]).all())
    assert torch.allclose(a * a + (s / std) ** 2, torch.ones_like(a), atol=1e-14)
