"""Every registered check passes, and each one fails when given a deliberately wrong component."""

import math

import pytest
import torch

import toy
from diffcheck import checks
from diffcheck.checks import ddpm, mixture, ncsn, objectives, processes
from diffcheck.exact import ExactModel
from diffcheck.param import function_model
from diffcheck.process import VP, SubVP

ALL = checks.registry()


@pytest.mark.parametrize("check_id", list(ALL))
def test_registered_check_passes(check_id):
    record = ALL[check_id]()
    assert record.passed, str(record) + f"\n{record.details}"
    as_json = record.to_dict()
    for key in ("id", "source", "claim", "expected", "measured", "tolerance", "passed", "seconds"):
        assert key in as_json


# -- each check fails on a wrong answer ------------------------------------------------------


def test_score_check_fails_on_wrong_score():
    # the score of the law with 2% more noise: close, but wrong
    wrong = lambda law, x: (law.mixture.noised(law.alpha, law.sigma * 1.02).score(x) if hasattr(law, "alpha") else law.noised(1.0, 0.02).score(x))
    assert not mixture.score_matches_autograd(n=64, score_fn=wrong).passed


def _kinds(rec):
    return {f.split(": ", 1)[1].split(" FAILED")[0] for f in rec.details["failures"]}


def test_noised_sampling_fails_on_wrong_noise_level():
    wrong = lambda m, a, s, n, gen: a * m.sample(n, gen) + 1.5 * s * torch.randn(n, m.dim, generator=gen, dtype=m.dtype)
    rec = mixture.noised_sampling(sampler=wrong)
    assert not rec.passed
    assert "covariance test" in _kinds(rec)


def test_noised_sampling_fails_on_shifted_mean():
    wrong = lambda m, a, s, n, gen: a * m.sample(n, gen) + s * torch.randn(n, m.dim, generator=gen, dtype=m.dtype) + 0.15
    rec = mixture.noised_sampling(sampler=wrong)
    assert not rec.passed
    assert "mean test" in _kinds(rec)


def test_noised_sampling_two_sample_part_fails_on_wrong_shape_same_moments():
    # right mean and covariance, wrong law: a single Gaussian with the mixture's moments
    def moment_matched(m, a, s, n, gen):
        law = m.noised(a, s)
        chol = torch.linalg.cholesky(law.covariance())
        return law.mean() + torch.randn(n, m.dim, generator=gen, dtype=m.dtype) @ chol.T

    rec = mixture.noised_sampling(sampler=moment_matched)
    assert not rec.passed
    assert all("sliced KS two-sample test" in f for f in rec.details["failures"])


def test_posterior_monte_carlo_fails_on_wrong_posterior():
    wrong_mean = lambda law: law.mixture.noised(law.alpha, law.sigma * 1.15).posterior_mean
    assert not mixture.posterior_monte_carlo(mean_fn=wrong_mean).passed
    wrong_cov = lambda law: (lambda x: 1.2 * law.posterior_cov(x))
    assert not mixture.posterior_monte_carlo(cov_fn=wrong_cov).passed


class _WrongDiffusion(VP):
    """VP with g^2 off by 1%: every derivative-based check must notice."""

    def _g2(self, t):
        return 1.01 * super()._g2(t)


class _WrongDrift(VP):
    def _f(self, t):
        return 0.99 * super()._f(t)


@pytest.mark.parametrize("broken", [_WrongDiffusion(), _WrongDrift()])
def test_process_checks_fail_on_wrong_coefficients(broken):
    procs = [("broken", broken)]
    assert not processes.coefficients_autograd(processes=procs).passed
    if isinstance(broken, _WrongDiffusion):  # the quadrature involves g^2 and alpha, not f
        assert not processes.kernel_quadrature(processes=procs).passed
    assert not processes.fokker_planck(processes=procs).passed
    assert not processes.continuity(processes=procs).passed


def test_a_factor_in_the_one_reverse_sde_fails_continuity_and_a_sampler_law_check(monkeypatch):
    """The continuity check and the samplers run one definition (diffcheck.reverse.ReverseSDE): corrupting it is seen by both."""
    from diffcheck.checks import orders
    from diffcheck.reverse import ReverseSDE

    euler = [case for case in orders._order_cases() if case[0] == "euler_ode"]
    steps = (32, 64, 128)
    assert processes.continuity().passed
    assert orders.orders(steps=steps, cases=euler).passed
    weight = ReverseSDE.weight
    monkeypatch.setattr(ReverseSDE, "weight", property(lambda self: 1.05 * weight.fget(self)))  # 5% on g^2 score
    assert not processes.continuity().passed
    rec = orders.orders(steps=steps, cases=euler)
    assert not rec.passed and rec.measured["euler_ode"] < 0.5  # the error stalls at the wrong flow's bias


def test_forward_sde_check_fails_on_wrong_diffusion():
    sub = SubVP()
    rec = processes.forward_sde(g2_fn={"VP": sub.g2})
    assert not rec.passed
    assert all(f.startswith("VP") for f in rec.details["failures"])


def test_dsm_check_fails_on_wrong_score():
    # the exact score of a slightly different time: a plausible but wrong model
    def wrong(exact):
        return function_model(lambda x, t: exact.score(x, torch.as_tensor(t) * 0.9), "score")

    assert not objectives.dsm_minimizer(score_fn=wrong).passed


def test_technique4_fails_on_a_wrong_formula(monkeypatch):
    # r^T in place of r^(2T): the recursion and the simulation both disagree with it
    def wrong(eps, gamma, sigma_L, T):
        r = 1.0 - eps / sigma_L**2
        c = 2.0 * eps / (sigma_L**2 - sigma_L**2 * r * r)
        return r**T * (gamma**2 - c) + c

    monkeypatch.setattr(ncsn, "ncsnv2_variance_ratio", wrong)
    rec = ncsn.technique4()
    assert not rec.passed
    assert "FAILED" in rec.details["simulation_test"]


def test_posterior_bayes_detects_a_wrong_coefficient(monkeypatch):
    real = ddpm._bayes_posterior

    def off(sched, step, x0, z):
        m, v, cm, cv = real(sched, step, x0, z)
        return m, v, cm, cv * (1 + 1e-6)

    monkeypatch.setattr(ddpm, "_bayes_posterior", off)
    assert not ddpm.posterior_bayes().passed


def test_record_json_handles_non_finite():
    rec = checks.Record("x", "s", "c", float("inf"), float("nan"), 1.0, "", False, 0.0, {"t": torch.tensor([1.0])})
    d = rec.to_dict()
    assert d["expected"] == "inf" and d["measured"] == "nan" and d["details"]["t"] == [1.0]


def test_select_filters_by_id_and_source():
    assert {c.check_id for c in checks.select("ddpm.")} >= {"ddpm.kernel_composition", "ddpm.posterior_bayes"}
    assert all("Song & Ermon 2020" in c.source for c in checks.select("Song & Ermon 2020"))
    assert checks.select("no-such-check-anywhere") == []
