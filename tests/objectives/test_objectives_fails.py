"""Each objective and bound check fails when one component is deliberately wrong."""

import dataclasses

import torch

from diffcheck import elbo, vlb
from diffcheck.checks import elbo as elbo_checks
from diffcheck.checks import elbo_terms
from diffcheck.checks import objectives
from diffcheck.importance import LossSecondMomentSampler
from diffcheck.param import function_model
from diffcheck.process import VP, discretize


def _later(exact, shift=None, factor=None):
    """The exact model's own prediction at a wrong time: plausible, smooth and wrong."""
    def fn(x, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        t = t * factor if factor is not None else (t + shift).clamp(max=1.0)
        return exact(x, t)
    return function_model(fn, exact.prediction)


def test_simple_minimizer_fails_on_eps_at_the_wrong_time():
    rec = objectives.simple_minimizer(eps_fn=lambda e: _later(e, factor=0.9))
    assert not rec.passed and any("minimum" in f for f in rec.details["failures"])


def test_ladder_minimizer_fails_on_the_wrong_level():
    assert not objectives.ladder_minimizer(score_fn=lambda e: _later(e, factor=0.97)).passed


def test_sde_loss_minimizer_fails_on_the_wrong_time():
    assert not objectives.sde_loss_minimizer(score_fn=lambda e: _later(e, factor=0.9)).passed


def test_sliced_implicit_fails_on_a_score_of_another_law():
    rec = objectives.sliced_implicit(score_fn=lambda e: _later(e, shift=0.2))
    assert not rec.passed and any("ISM minimum" in f for f in rec.details["failures"])


def test_vlb_monte_carlo_fails_when_the_posterior_variance_is_beta():
    def wrong(model, sched, x0, step, **kw):
        bt = torch.cat([sched.beta_tilde[:1], sched.transition_var[1:]])
        return vlb.vlb_term(model, dataclasses.replace(sched, beta_tilde=bt), x0, step, **kw)

    rec = elbo_checks.vlb_monte_carlo(term_fn=wrong)
    assert not rec.passed and any("sampled log-ratio" in f for f in rec.details["failures"])


def test_vlb_entropy_fails_on_an_unnormalised_decoder(monkeypatch):
    monkeypatch.setattr(elbo, "_LOG_2PI", 0.0)
    rec = elbo_checks.vlb_entropy()
    assert not rec.passed and any("below the entropy" in f for f in rec.details["failures"])


def test_vlb_entropy_fails_when_the_grid_ignores_T():
    rec = elbo_checks.vlb_entropy(schedule_fn=lambda s: discretize(VP(), torch.arange(11, dtype=torch.float64) / 10))
    assert not rec.passed and all("not above" in f for f in rec.details["failures"])


class _WrongDiffusion(VP):
    """VP with g^2 off by 1%."""

    def _g2(self, t):
        return 1.01 * super()._g2(t)


def test_bound_tight_fails_on_a_wrong_diffusion():
    assert not elbo_checks.bound_tight(processes=[("VP, g^2 +1%", _WrongDiffusion())]).passed


def test_reverse_variance_fails_on_beta_in_place_of_beta_tilde():
    def wrong(m, sched, step, x):
        return elbo.reverse_covariance(m, sched, step, x) + (sched.beta[step - 1] - sched.beta_tilde[step - 1]) * torch.eye(2, dtype=torch.float64)

    rec = elbo_terms.reverse_variance(cov_fn=wrong)
    assert not rec.passed and any("pointwise identity" in f for f in rec.details["failures"])


def test_learned_range_fails_on_interpolating_beta():
    from diffcheck.variance import clipped_log_beta_tilde, log_beta, steps_tensor

    def beta_space(v_raw, sched, step):
        s = steps_tensor(step, sched, v_raw) - 1
        frac = (v_raw + 1) / 2
        hi, lo = log_beta(sched).exp()[s].reshape(-1, 1), clipped_log_beta_tilde(sched).exp()[s].reshape(-1, 1)
        return torch.log(frac * hi + (1 - frac) * lo)

    assert not elbo_terms.learned_range_check(range_fn=beta_space).passed


class _BiasedSampler(LossSecondMomentSampler):
    """Draws from p^2 (renormalised) but weights as if it drew from p."""

    def sample(self, n, generator=None):
        p = self.probabilities()
        q = p * p / (p * p).sum()
        idx = torch.multinomial(q, n, replacement=True, generator=generator)
        return idx + 1, 1.0 / (self.num_steps * p[idx])


class _MeanSampler(LossSecondMomentSampler):
    """p proportional to the mean loss instead of the root mean square."""

    def probabilities(self):
        if not self.warmed_up:
            return super().probabilities()
        w = self._losses.mean(-1).abs()
        return (1 - self.uniform_prob) * w / w.sum() + self.uniform_prob / self.num_steps


def test_importance_sampling_fails_on_mismatched_weights_or_rule():
    rec = elbo_terms.importance_sampling(sampler_factory=_BiasedSampler)
    assert not rec.passed and any("importance-sampled estimate" in f for f in rec.details["failures"])
    rec = elbo_terms.importance_sampling(sampler_factory=_MeanSampler)
    assert not rec.passed and any("probabilities" in f for f in rec.details["failures"])


def test_discretized_decoder_fails_on_the_tanh_cdf_and_a_wrong_prior_term():
    assert not elbo_terms.discretized_decoder(cdf="tanh").passed  # floors at 1e-12 break the telescoping sum
    wrong = lambda sched, x0: vlb.prior_kl(sched, x0) + 0.5 * x0[0].numel() * float(2 * torch.log(sched.sigma[-1]))
    assert not elbo_terms.discretized_decoder(prior_fn=wrong).passed
