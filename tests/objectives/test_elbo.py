"""Closed-form bound terms for mixture data: identities, estimators that must agree, entropies, the continuous-time bound."""

import math

import pytest
import torch
from scipy import integrate

import toy
from diffcheck import elbo
from diffcheck.param import function_model
from diffcheck.process import VE, VP, DiscreteVP, SubVP, discretize
from diffcheck.testing import stats as st


def _grid(p, T):
    return discretize(p, torch.arange(T + 1, dtype=torch.float64) / T)


def test_prior_term_is_the_mean_of_the_per_sample_kl(gen):
    from diffcheck.vlb import prior_kl

    m = toy.two_modes()
    sched = _grid(VP(), 10)
    kl = prior_kl(sched, m.sample(20000, gen))
    assert st.zero_mean_test(kl - elbo.prior_term(m, sched), alpha=1e-3).passed
    # and for a point mass the expectation is the per-sample value itself
    point = toy.single_gaussian([1.0, -2.0], 1e-30)
    torch.testing.assert_close(torch.tensor(elbo.prior_term(point, sched), dtype=torch.float64),
                               prior_kl(sched, torch.tensor([[1.0, -2.0]], dtype=torch.float64))[0], rtol=1e-12, atol=0)


def test_posterior_and_pair_averages_agree(gen):
    for m in (toy.anisotropic(), toy.narrow()):
        sched = _grid(VP(), 8)
        S = elbo.optimal_covariance(m, sched, 2000, gen)
        a = elbo.optimal_bound(m, sched, 8000, gen, covariances=S)
        b = elbo.optimal_bound(m, sched, 8000, gen, covariances=S, average="pair")
        z = (a.terms - b.terms)[:-1] / (a.se.pow(2) + b.se.pow(2))[:-1].sqrt()
        assert float(z.abs().max()) <= 4.0  # 16 z-tests, false-alarm rate below 1e-3
        assert bool((a.se[:-1] <= b.se[:-1]).all())  # averaging over x_0 | x_t in closed form only removes variance


def test_bound_rejects_bad_inputs(gen):
    m = toy.two_modes()
    sched = _grid(VP(), 4)
    with pytest.raises(ValueError, match="covariances"):
        elbo.optimal_bound(m, sched, 10, gen, covariances=torch.ones(3, 2, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="positive definite"):
        elbo.optimal_bound(m, sched, 10, gen, covariances=torch.zeros(4, 2, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="average"):
        elbo.optimal_bound(m, sched, 10, gen, average="both")
    with pytest.raises(ValueError, match="kind"):
        elbo.optimal_covariance(m, sched, 10, gen, kind="banded")
    with pytest.raises(TypeError, match="mixture"):
        elbo.prior_term("two_modes", sched)
    with pytest.raises(ValueError, match="start at the data"):
        elbo.optimal_bound(m, discretize(VP(), torch.tensor([0.2, 1.0], dtype=torch.float64)), 10, gen)


def test_reverse_covariance_is_the_posterior_of_the_previous_step(gen):
    m = toy.anisotropic()
    sched = _grid(DiscreteVP.cosine(), 1000)
    for i in (1, 3, 700):
        x = sched.process.marginal(m, sched.t[i]).sample(16, gen)
        prev = m if i == 1 else sched.process.marginal(m, sched.t[i - 1]).to_mixture()
        direct = prev.noised(sched.transition_alpha[i - 1], sched.transition_var[i - 1].sqrt()).posterior_cov(x)
        torch.testing.assert_close(elbo.reverse_covariance(m, sched, i, x), direct, rtol=1e-12, atol=1e-18)


# -- entropies ------------------------------------------------------------------------------------


def test_entropy_grid_matches_closed_forms_and_quadrature():
    cov = torch.tensor([[0.5, 0.3], [0.3, 0.4]], dtype=torch.float64)
    g = toy.single_gaussian([0.2, -0.1], cov[None])
    H = elbo.entropy_grid(g)
    assert abs(H.value - 0.5 * float(torch.logdet(2 * math.pi * math.e * cov))) <= 1e-9
    assert H.se <= 1e-8
    one = toy.GaussianMixture([0.3, 0.7], [[-1.0], [2.0]], [0.25, 1.0])
    f = lambda u: -math.exp(float(one.log_prob(torch.tensor([[u]], dtype=torch.float64)))) * float(one.log_prob(torch.tensor([[u]], dtype=torch.float64)))
    want, _ = integrate.quad(f, -15, 18, limit=200, epsabs=1e-13)
    assert abs(elbo.entropy_grid(one).value - want) <= 1e-9
    with pytest.raises(ValueError, match="dimension"):
        elbo.entropy_grid(toy.single_gaussian([0.0, 0.0, 0.0], 1.0))


def test_entropy_mc_agrees_with_the_grid(gen):
    m = toy.anisotropic()
    mc = elbo.entropy_mc(m, 40000, gen)
    assert abs(mc.value - elbo.entropy_grid(m).value) <= 4 * mc.se
    assert "+-" in str(mc)


# -- the continuous-time bound --------------------------------------------------------------------


def _gaussian_target(m, p):
    p1 = p.marginal(m, 1.0).to_mixture()
    d = m.dim
    H0 = 0.5 * float(torch.logdet(2 * math.pi * math.e * m.covariance()))
    H1 = 0.5 * float(torch.logdet(2 * math.pi * math.e * p1.covariance()))
    ce = 0.5 * d * math.log(2 * math.pi * p.prior_std**2) + 0.5 * float(p1.covariance().trace() + p1.mean().pow(2).sum()) / p.prior_std**2
    return H0 + ce - H1


@pytest.mark.parametrize("p", [VP(), SubVP(), VE(sigma_max=30.0)], ids=["VP", "subVP", "VE"])
@pytest.mark.parametrize("std", [1.0, 0.01])
def test_sde_bound_quadrature_on_gaussian_data(p, std, gen):
    # Gaussian data: the Fisher information's conditional estimate is constant, so nothing is random and the
    # bound must equal H(p_0) + KL(p_1 || prior) up to the quadrature error alone
    cov = std**2 * torch.tensor([[1.0, 0.5], [0.5, 0.8]], dtype=torch.float64)
    m = toy.single_gaussian([0.4, -0.3], cov[None])
    b = elbo.sde_bound(m, p, 4, gen)
    assert b.se <= 1e-9
    assert abs(b.value - _gaussian_target(m, p)) <= 1e-7  # 20 nodes per piece; 16 give 2e-6 at std 0.01


def test_sde_bound_rises_by_the_score_matching_loss(gen):
    # for N(0, I) data under VP, grad log p_t = -x and E|x_t|^2 = D: s = 1.1 grad log p_t costs 1/2 (0.1)^2 D int beta
    m, p = toy.single_gaussian([0.0, 0.0], 1.0), VP()
    exact = elbo.sde_bound(m, p, 4, gen)
    scaled = function_model(lambda x, t: -1.1 * x, "score")
    worse = elbo.sde_bound(m, p, 2000, gen, model=scaled)
    rise = 0.5 * 0.01 * 2 * float(p.integral_beta(1.0))
    assert abs(worse.value - exact.value - rise) <= 4 * worse.se
    assert worse.se > 0


def test_sde_bound_rejects_a_blurred_start(gen):
    with pytest.raises(ValueError, match="sigma"):
        elbo.sde_bound(toy.two_modes(), VE(kernel="official"), 10, gen)
    with pytest.raises(TypeError, match="process"):
        elbo.sde_bound(toy.two_modes(), "VP", 10, gen)
