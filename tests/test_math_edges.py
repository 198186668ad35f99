"""Edges of the math modules that their main tests do not reach: each test states a claim with an independent answer
(ladders, step tables, time samplers, the class posterior of a class of several components, Gaussian conditioning, the
guided ancestral step, the optimal covariance's exact symmetry, guidance defaults)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

import toy
from diffcheck import elbo
from diffcheck import process as P
from diffcheck import samplers as S
from diffcheck.exact import ExactModel
from diffcheck.guidance import ClassifierGuided, ExactClassifier, classifier_guided_ancestral_step, tilted_log_density
from diffcheck.losses import uniform_times


# -- process: ladders and tables ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("gamma,k", [(1.2, 2), (1.1, 3), (5.0, 3), (2.0, 29)])
def test_a_ladder_of_k_ratios_gamma_has_k_plus_one_levels(gamma, k):
    """sigma_max = sigma_min gamma^k: the levels are sigma_min gamma^j, j = 0..k, even where log(gamma^k) / log(gamma)
    rounds just above k."""
    assert P.ncsnv2_num_levels(gamma**k, 1.0, gamma) == k + 1


def test_ladder_ratios_at_or_below_one_are_refused():
    for bad in (1.0, 0.5):
        with pytest.raises(ValueError, match="gamma"):
            P.ncsnv2_num_levels(10.0, 1.0, bad)
    with pytest.raises(ValueError, match="gamma"):
        P.ncsnv2_variance_ratio(0.1, 0.5, 1.0, 5)


def test_technique_2_finds_ratios_above_two():
    """In D = 5 the overlap at gamma = 2 is 0.998, so the ratio of overlap 1/2 lies above 2 (Song & Ermon 2020, Sec. 3.2):
    a = sqrt(2D)(gamma - 1), overlap = Phi(a + 3 gamma) - Phi(a - 3 gamma)."""
    gamma = P.ncsnv2_gamma(5, 0.5)
    a = math.sqrt(10.0) * (gamma - 1.0)
    assert gamma > 2.0
    assert math.isclose(stats.norm.cdf(a + 3 * gamma) - stats.norm.cdf(a - 3 * gamma), 0.5, abs_tol=1e-10)


def test_one_ddim_step_is_allowed():
    """S = 1: the code's range(0, T, T) keeps code step 0, i.e. step 1."""
    assert P.ddim_steps(1000, 1).tolist() == [1]


def test_the_vp_table_has_ddpm_length_by_default():
    """vp_to_ddpm_betas maps the VP SDE to DDPM's T = 1000 table (Song et al. 2021, App. B: N = 1000)."""
    b = P.vp_to_ddpm_betas()
    i = torch.arange(1, 1001, dtype=torch.float64)
    assert b.numel() == 1000
    assert torch.allclose(b, 0.1 / 1000 + (i - 1) * 19.9 / (1000 * 999), rtol=1e-14)


# -- losses: the time sampler ---------------------------------------------------------------------------------------


def test_uniform_times_are_uniform_on_the_unit_interval_by_default():
    """t ~ U(0, 1) (Song et al. 2021, Eq. 7); KS test at alpha = 1e-3 (fixed seed), and one time is a valid request."""
    t = uniform_times(4000, torch.Generator().manual_seed(0))
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    assert stats.kstest(t.numpy(), "uniform").pvalue > 1e-3
    one = uniform_times(1, torch.Generator().manual_seed(1))
    assert one.shape == (1,) and 0.0 <= float(one) <= 1.0


# -- toy: class posteriors and conditioning -------------------------------------------------------------------------


def _gauss_logpdf(x, mean, cov):
    return torch.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob(x)


def test_the_class_posterior_of_a_class_of_several_components_sums_their_responsibilities():
    """p(c | x) = sum over the components k of class c of pi_k N(x; mu_k, C_k) / p(x), with K = 3 components in C = 2
    classes (one of them of two components), for a batch of shape (2, 5, D)."""
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]], dtype=torch.float64)
    covs = torch.stack([torch.eye(2), 0.5 * torch.eye(2), torch.tensor([[1.0, 0.3], [0.3, 0.6]])]).double()
    w = torch.tensor([0.5, 0.2, 0.3], dtype=torch.float64)
    m = toy.GaussianMixture(w, means, covs, labels=[0, 1, 0])
    x = torch.randn(2, 5, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    joint = torch.stack([math.log(float(w[k])) + _gauss_logpdf(x, means[k], covs[k]) for k in range(3)], -1)
    resp = torch.softmax(joint, -1)
    expect = torch.stack([resp[..., 0] + resp[..., 2], resp[..., 1]], -1)
    for law in (m, m.noised(1.0, 0.0)):
        assert torch.allclose(law.log_class_posterior(x).exp(), expect, rtol=1e-12, atol=1e-14)
        assert torch.allclose(law.log_class_posterior(x.reshape(-1, 2)).exp(), expect.reshape(-1, 2), rtol=1e-12, atol=1e-14)


def test_conditioning_a_gaussian_is_schur_complement_conditioning():
    """E[x_f | x_o = v] = mu_f + C_fo C_oo^-1 (v - mu_o) for one Gaussian, for a batch of values."""
    mu = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    A = torch.tensor([[1.0, 0.2, 0.1], [0.0, 0.8, 0.3], [0.0, 0.0, 0.5]], dtype=torch.float64)
    C = A @ A.T
    m = toy.single_gaussian(mu, C)
    v = torch.tensor([[0.3], [1.7], [-0.4]], dtype=torch.float64)
    got = m.conditional_mean([1], v)
    free = [0, 2]
    expect_free = mu[free][:, None] + (C[free][:, [1]] / C[1, 1]) @ (v - mu[1]).T
    assert torch.allclose(got[:, free], expect_free.T, rtol=1e-12, atol=1e-12)
    assert torch.equal(got[:, 1], v[:, 0])


# -- elbo: the optimal covariance ------------------------------------------------------------------------------------


def test_the_full_optimal_covariance_is_exactly_symmetric_and_small_batches_are_refused():
    m = toy.anisotropic()
    s = P.discretize(P.DiscreteVP.linear(20), torch.arange(21, dtype=torch.float64) / 20)
    cov = elbo.optimal_covariance(m, s, 30, torch.Generator().manual_seed(3), kind="full")
    assert torch.equal(cov, cov.mT)  # a covariance, to the last bit (Cholesky and log-densities rely on it)
    with pytest.raises(ValueError, match="n must be"):
        elbo.mean_posterior_cov(m, s, 1)


# -- guidance -------------------------------------------------------------------------------------------------------


def test_the_guided_ancestral_step_draws_around_the_shifted_mean():
    """Dhariwal & Nichol 2021, Algorithm 1: x_s = mu + s Sigma grad log p(y | x_t) + sqrt(Sigma) z, with mu, Sigma the
    ancestral step's (here beta_tilde = sigma_s^2 (1 - SNR_t / SNR_s)) and the gradient by autograd of log p(y | x_t)."""
    m, p = toy.two_modes(), P.VP()
    model = ExactModel(m, p, "eps")
    t, s = torch.tensor(0.6, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64)
    x = model.law(0.6).sample(6, torch.Generator().manual_seed(4))
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    z = torch.randn(6, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    scale = 2.5
    out, mean = classifier_guided_ancestral_step(model, p, x, t, s, lambda like: z.clone(), classifier=ExactClassifier(m, p),
                                                 scale=scale, y=y)
    snr = lambda u: float(p.alpha(u) ** 2 / p.sigma(u) ** 2)  # noqa: E731
    var = float(p.sigma(s)) ** 2 * (1.0 - snr(t) / snr(s))
    mu, _ = S.ancestral_moments(model, p, x, t, s)
    xr = x.clone().requires_grad_(True)
    logp = p.marginal(m, t).log_class_posterior(xr).gather(1, y[:, None]).sum()
    (grad,) = torch.autograd.grad(logp, xr)
    assert torch.allclose(mean, mu + scale * var * grad, rtol=1e-10, atol=1e-12)
    assert torch.allclose(out, mean + math.sqrt(var) * z, rtol=1e-12, atol=1e-12)


def test_classifier_guidance_defaults_to_scale_one_the_conditional_model():
    """At scale 1 the guided model is the conditional one: eps(x | y) = eps(x) - sigma grad log p(y | x) (Bayes)."""
    m, p = toy.two_modes(), P.VP()
    model = ExactModel(m, p, "eps")
    x = model.law(0.4).sample(5, torch.Generator().manual_seed(6))
    y = torch.tensor([0, 1, 1, 0, 1])
    clf = ExactClassifier(m, p)
    default = ClassifierGuided(model, clf, p)(x, 0.4, y)
    expect = model(x, 0.4) - float(p.sigma(0.4)) * clf.grad(x, 0.4, y)
    assert torch.allclose(default, expect, rtol=1e-10, atol=1e-12)
    assert torch.allclose(default, ClassifierGuided(model, clf, p, scale=1.0)(x, 0.4, y), rtol=0, atol=0)


def test_a_nan_guidance_weight_is_refused():
    m, p = toy.two_modes(), P.VP()
    for w in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="w must be"):
            tilted_log_density(m, p, 0.5, torch.zeros(2, 2, dtype=torch.float64), 0, w)
