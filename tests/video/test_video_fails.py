"""Every video check fails when given a deliberately wrong component (the passing runs are in tests/test_checks.py)."""

import torch

import toy
from diffcheck.checks import video as V
from diffcheck.checks import video_denoisers as VD
from diffcheck.checks import video_trained as VT
from diffcheck.video import ExactConditional, MCVDExact, RaMViDExact


def test_identity_check_fails_on_the_gaussian_approximation_of_log_q():
    """Reconstruction guidance's N(x^a(z), sigma²/alpha² I) approximation is not the identity's exact term."""
    rec = V.guidance_identity(n=32, grad_fn=V.log_q_grad_gaussian_approx, times=(0.3, 0.7))
    assert not rec.passed and rec.measured > 1e-3


def test_table_check_fails_when_guidance_has_no_weight():
    """At w_r = 0 reconstruction guidance is replacement: no weight beats replacement."""
    kls = V.conditioning_kls(w_sweep=(0.0,))
    for row in kls.values():
        assert abs(row["reconstruction guidance w_r=0"] - row["replacement"]) < 1e-9
    rec = V.conditioning_table(kls=kls)
    assert not rec.passed
    assert any("no guidance weight beats replacement" in f for f in rec.details["failures"])


def test_table_check_fails_when_replacement_is_not_biased_or_ramvid_is_not_exact():
    good = {name: dict(row) for name, row in V.conditioning_kls().items()}
    unbiased = {name: {**row, "replacement": 0.05} for name, row in good.items()}
    assert not V.conditioning_table(kls=unbiased).passed
    off = {name: {**row, "RaMViD reset, exact denoiser": row["exact conditional sampler"] * 1.01} for name, row in good.items()}
    assert not V.conditioning_table(kls=off).passed


def test_two_sample_check_fails_on_a_wrong_conditional_model():
    """The conditional of a video with rho = 0.8 (instead of 0.9, and 0.5 instead of 0.6) is rejected at n = 500."""
    def wrong(m, known):
        rho = [0.8] if m.num_components == 1 else [0.8, 0.5]
        offsets = m.means[:, :2]
        w = toy.ar1_video(6, 2, rho=rho, offsets=offsets, weights=m.weights)
        return ExactConditional(w, V.ddpm_process(), known)

    rec = V.exact_sampler_two_sample(n=500, model=wrong)
    assert not rec.passed
    assert min(p for name, p in rec.measured.items() if name.startswith("exact")) < 1e-3 / 3


def test_ramvid_check_fails_on_a_denoiser_of_another_mixture():
    m = V.ar1_mixture()
    wrong = toy.ar1_video(6, 2, rho=[0.9, 0.6], offsets=m.means[:, :2], weights=[0.5, 0.5])
    rec = VD.ramvid_exact_denoiser(n=16, denoiser=RaMViDExact(wrong, V.ddpm_process(), 6))
    assert not rec.passed


class _IgnoresConditioning:
    """The exact MCVD model told that every block is masked: it generates instead of predicting."""

    prediction = "eps"

    def __init__(self, exact):
        self.exact = exact

    def __call__(self, z, t, cond=None, cond_mask=None):
        return self.exact(z, t, cond=cond, cond_mask=torch.zeros(z.shape[0], 2, dtype=torch.bool))


def test_mcvd_bayes_check_fails_on_a_predictor_that_ignores_the_mask():
    """Its loss exceeds the Bayes risk by E||eps_blind − eps*||² / 2 in every state that keeps a block."""
    rec = VD.mcvd_bayes_optimal(model=_IgnoresConditioning(MCVDExact(V.ar1(5), V.ddpm_process(), V.BLOCKS)))
    assert not rec.passed and set(rec.measured["states outside"]) == {"prediction", "interpolation", "future only"}


def test_trained_predictor_checks_fail_on_models_that_ignore_the_mask():
    exact = MCVDExact(V.ar1(5), V.ddpm_process(), V.BLOCKS)
    rec = VT.mcvd_trained_predictor(model=_IgnoresConditioning(exact))
    assert not rec.passed and rec.measured["generation"] < 1e-12 and rec.measured["interpolation"] > 0.3
    assert VT.mcvd_trained_predictor(model=exact).measured["prediction"] < 1e-12

    ram = RaMViDExact(V.ar1(), V.ddpm_process(), 6)
    blind = lambda x, t, mask=None: ram(x, t, mask=torch.zeros_like(mask))  # noqa: E731
    rec = VT.ramvid_trained_predictor(model=blind)
    assert not rec.passed and rec.measured["unconditional"] < 1e-12 and rec.measured["interpolation (0, 5 given)"] > 0.12


def test_sample_check_passes_the_exact_model_and_fails_a_wrong_one():
    """At 250 steps and n = 500 the exact model's discretisation (KL ~0.005 nats) is below the test's resolution."""
    assert VT.mcvd_trained_samples(model=MCVDExact(V.ar1(5), V.ddpm_process(), V.BLOCKS), n=500, steps=250).passed
    rec = VT.mcvd_trained_samples(model=MCVDExact(toy.ar1_video(5, 2, rho=0.7), V.ddpm_process(), V.BLOCKS), n=500, steps=250)
    assert not rec.passed


def test_rollout_check_passes_the_exact_model_and_fails_one_that_ignores_the_past():
    exact = MCVDExact(V.ar1(5), V.ddpm_process(), V.BLOCKS)
    assert VT.mcvd_rollout(model=exact, allowance=0.0, n=500, steps=250).passed
    rec = VT.mcvd_rollout(model=_IgnoresConditioning(exact), n=500, steps=250)
    assert not rec.passed
    assert any("lag 2" in f for f in rec.details["failures"])
