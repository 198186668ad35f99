"""Each Diffusion-GAN check fails when a component is deliberately wrong (tests/test_checks.py runs them as they are)."""

from __future__ import annotations

import math

import torch

from diffcheck.checks import gan, gan_theory
from diffcheck.gan.divergence import jsd_gaussian_shift
from diffcheck.nets.gan import MLPDiscriminator


def test_instance_noise_check_fails_without_the_noise_std():
    # the code's q_sample multiplies the noise by noise_std; forgetting it gives sqrt(1 - abar) eps
    def wrong(noise, x, t, g):
        a, s = noise.scales(t)
        return a[:, None] * x + (s / noise.noise_std)[:, None] * torch.randn(x.shape, generator=g, dtype=x.dtype)

    rec = gan.instance_noise(diffuse_fn=wrong)
    assert not rec.passed
    assert any("covariance test FAILED" in f for f in rec.details["failures"])


def test_timestep_check_fails_when_the_code_uses_the_paper_weights():
    def wrong(sampler, T, n, g):
        if sampler.convention == "official" and sampler.kind == "priority":
            return torch.multinomial(sampler.probs(T).roll(-1), n, replacement=True, generator=g)
        state = sampler.refresh(T, g)
        return sampler.sample(state, n, g) if sampler.convention == "paper" else torch.cat([sampler.sample(sampler.refresh(T, g), 1, g) for _ in range(n)])

    rec = gan.timesteps(sampler_fn=wrong)
    assert not rec.passed and any("priority/official" in f for f in rec.details["failures"])


def test_optimal_discriminator_check_fails_on_the_clean_density_ratio():
    # the ratio of the clean densities is not D* of the noised inputs
    def wrong(real_law, fake_law, y):
        return real_law.mixture.log_prob(y) - fake_law.mixture.log_prob(y)

    assert not gan.optimal_discriminator(logit_fn=wrong).passed


def test_trained_discriminator_check_fails_for_an_untrained_network_and_a_wrong_reference():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        untrained = MLPDiscriminator(2, 64, 3).eval()
    assert not gan.trained_discriminator(discriminator=untrained).passed
    # the trained network judged against D* of a 10x noisier process
    assert not gan.trained_discriminator(noise_std=0.5).passed


def test_rd_check_fails_on_the_wrong_closed_form():
    from diffcheck.gan.optimal import gaussian_separation

    def wrong(mr, mg, S, a, s):
        return 2.0 * torch.special.ndtr(gaussian_separation(mr, mg, S, a, s)) - 1.0  # Phi(Delta) for Phi(Delta / 2)

    rec = gan.rd_closed_form(rd_fn=wrong)
    assert not rec.passed and len(rec.details["failures"]) >= 4


def test_theorem1_check_fails_on_a_wrong_divergence():
    # half the KL divergence Delta^2/4 in place of the JSD: continuous too, but not the JSD
    assert not gan_theory.theorem1(shift_jsd=lambda d: d * d / 4).passed
    # the JSD computed with the wrong scale (a unit Gaussian against one sigma too wide)
    assert not gan_theory.theorem1(shift_jsd=lambda d: jsd_gaussian_shift(d / 1.1)[0]).passed


def test_theorem2_check_fails_for_a_leaking_augmentation():
    # an "augmentation" that replaces x by pure noise (alpha = 0) makes every pair of laws equal
    from diffcheck.gan.noise import InstanceNoise

    noise = InstanceNoise(1000)

    def leaking(m, t):
        s = 0.05 if t == "beyond" else float(noise.scales(t)[1]) + 0.01
        return m.noised(0.0, s)

    rec = gan_theory.theorem2(law_fn=leaking)
    assert not rec.passed
    assert all("not above" in f or "not 3 standard errors" in f for f in rec.details["failures"])


def test_controller_check_fails_with_the_sign_reversed():
    flipped = lambda ctrl, level, rd: min(max(level - math.copysign(ctrl.step, rd - ctrl.target) if rd != ctrl.target else level,
                                              ctrl.t_min), ctrl.t_max)
    rec = gan_theory.controller(update_fn=flipped)
    assert not rec.passed and any("outside the band" in f for f in rec.details["failures"])
