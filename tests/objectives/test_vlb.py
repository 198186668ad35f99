"""The bound's terms for a model: Gaussian identities, the decomposition, decoders, variances, validation."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as hst
from scipy import stats

import toy
from diffcheck import elbo, vlb
from diffcheck.exact import ExactModel
from diffcheck.process import VP, DiscreteVP, discretize
from diffcheck.testing import strategies as dst
from diffcheck.variance import (
    WithVariance,
    clipped_log_beta_tilde,
    fixed_log_variance,
    learned_range,
    log_beta,
    optimal_v,
    split_output,
    steps_tensor,
)


def _grid(p, T):
    return discretize(p, torch.arange(T + 1, dtype=torch.float64) / T)


# -- Gaussian pieces -------------------------------------------------------------------------


def test_normal_kl_and_prior_kl_match_full_covariance_kls(gen):
    m0, m1 = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64)
    lv0, lv1 = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64)
    got = vlb.normal_kl(m0, lv0, m1, lv1).sum(-1)
    want = toy.kl_gaussian(m0, torch.diag_embed(lv0.exp()), m1, torch.diag_embed(lv1.exp()))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    sched = _grid(DiscreteVP.linear(), 1000)
    x0 = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    aN, sN = sched.alpha[-1], sched.sigma[-1]
    want = toy.kl_gaussian(aN * x0, sN**2 * torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(vlb.prior_kl(sched, x0), want, rtol=1e-10, atol=1e-16)


def test_gaussian_nll_is_minus_log_normal(gen):
    x, mu = torch.randn(2, 6, 2, generator=gen, dtype=torch.float64)
    lv = torch.randn(6, 1, generator=gen, dtype=torch.float64)
    want = -torch.stack([toy.log_normal(x[i], mu[i], lv[i].exp() * torch.eye(2, dtype=torch.float64)) for i in range(6)])
    torch.testing.assert_close(vlb.gaussian_nll(x, mu, lv), want, rtol=1e-13, atol=1e-13)


@settings(max_examples=25)
@given(betas=dst.betas(min_steps=2, max_steps=60), seed=hst.integers(0, 2**31 - 1))
def test_decomposition_holds_pathwise(betas, seed):
    # sum_i log q(x_i | x_{i-1}) = log q(x_N | x_0) + sum_{i >= 2} log q(x_{i-1} | x_i, x_0) on every path (Bayes' rule)
    sched = _grid(DiscreteVP(betas), betas.numel())
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(8, 2, generator=g, dtype=torch.float64)
    xs, forward, scale = [x0], torch.zeros(8, dtype=torch.float64), 0.0
    eye = torch.eye(2, dtype=torch.float64)
    for i in range(1, sched.num_steps + 1):
        xs.append(sched.transition_alpha[i - 1] * xs[-1] + sched.transition_var[i - 1].sqrt() * torch.randn(8, 2, generator=g, dtype=torch.float64))
        term = toy.log_normal(xs[i], sched.transition_alpha[i - 1] * xs[i - 1], sched.transition_var[i - 1] * eye)
        forward, scale = forward + term, scale + float(term.abs().max())
    N = sched.num_steps
    backward = toy.log_normal(xs[N], sched.alpha[N] * x0, sched.sigma[N] ** 2 * eye)
    for i in range(2, N + 1):
        mean, log_var = vlb.posterior(sched, x0, xs[i], i)
        term = toy.log_normal(xs[i - 1], mean, log_var[0].exp() * eye)
        backward, scale = backward + term, scale + float(term.abs().max())
    assert float((forward - backward).abs().max()) <= 1e-11 * scale


@pytest.mark.parametrize("T", [3, 10, 100])
def test_bound_with_exact_gaussian_reverse_steps_is_entropy_plus_prior_mismatch(T, gen):
    # Gaussian data: the exact reverse transitions are Gaussian (full covariance), so the bound equals
    # E[-log q(x_0)] + KL(q(x_N) || N(0, I)) exactly, for every T; each restriction of the covariance costs more
    mean = torch.tensor([0.3, -0.2], dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
    m = toy.single_gaussian(mean, cov[None])
    sched = _grid(VP(), T)
    H = 0.5 * float(torch.logdet(2 * math.pi * math.e * cov))
    aN, sN = float(sched.alpha[-1]), float(sched.sigma[-1])
    eye = torch.eye(2, dtype=torch.float64)
    mismatch = float(toy.kl_gaussian(aN * mean, aN**2 * cov + sN**2 * eye, torch.zeros(2, dtype=torch.float64), eye))
    totals = {}
    for kind in ("full", "diagonal", "isotropic"):
        b = elbo.optimal_bound(m, sched, 3, gen, kind=kind)
        assert float(b.se.max()) <= 1e-12  # given x_t, nothing is random for Gaussian data
        totals[kind] = b.total
    assert abs(totals["full"] - (H + mismatch)) <= 1e-10
    assert totals["isotropic"] >= totals["diagonal"] >= totals["full"] - 1e-12


def test_fixed_variances_are_exact_for_standard_and_point_data(gen):
    # Ho et al. 2020, Sec. 3.2: sigma_t^2 = beta_t is optimal for x_0 ~ N(0, I), beta_tilde_t for x_0 at a point
    sched = _grid(DiscreteVP.linear(), 1000)
    S = elbo.optimal_covariance(toy.single_gaussian([0.0, 0.0], 1.0), sched, 2, gen)[:, 0, 0]
    torch.testing.assert_close(S, sched.beta, rtol=1e-10, atol=0)
    S = elbo.optimal_covariance(toy.single_gaussian([0.5, -1.0], 1e-16), sched, 2, gen)[1:, 0, 0]
    torch.testing.assert_close(S, sched.beta_tilde[1:], rtol=1e-8, atol=0)


# -- the model path ----------------------------------------------------------------------------


def test_vlb_terms_of_the_exact_model_match_the_closed_forms(gen):
    m = toy.anisotropic()
    sched = _grid(VP(), 6)
    S = elbo.optimal_covariance(m, sched, 4000, gen, kind="diagonal")
    var = S.diagonal(dim1=-2, dim2=-1)  # (N, D): per-coordinate variances
    terms = vlb.vlb_terms(ExactModel(m, sched.process, "x0"), sched, m.sample(6000, gen), gen, variance=var)
    assert terms.shape == (6000, 7)
    ref = elbo.optimal_bound(m, sched, 6000, gen, covariances=S)
    z = (terms.mean(0) - ref.terms) / (terms.std(0).pow(2) / 6000 + ref.se.pow(2)).sqrt().clamp_min(1e-300)
    assert float(z[:-1].abs().max()) <= 4.0  # 6 z-tests at a false-alarm rate below 4e-4
    # L_T: the per-sample prior KL averages to the exact expectation
    se_T = float(terms[:, -1].std()) / math.sqrt(6000)
    assert abs(float(terms[:, -1].mean()) - elbo.prior_term(m, sched)) <= 4 * se_T


def test_vlb_terms_sum_the_single_terms_and_show_progress(gen, capsys):
    m = toy.two_modes()
    sched = _grid(VP(), 4)
    model = ExactModel(m, sched.process, "eps")
    x0 = m.sample(5, gen)
    terms = vlb.vlb_terms(model, sched, x0, torch.Generator().manual_seed(3), progress=True)
    g = torch.Generator().manual_seed(3)
    singles = [vlb.vlb_term(model, sched, x0, i, g) for i in range(1, 5)]
    torch.testing.assert_close(terms[:, :4], torch.stack(singles, -1), rtol=0, atol=0)
    assert "vlb" in capsys.readouterr().err


def test_decoder_rows_use_the_decoder(gen):
    m = toy.anisotropic()
    sched = _grid(VP(), 10)
    model = ExactModel(m, sched.process, "eps")
    x0 = m.sample(4, gen)
    eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    got = vlb.vlb_term(model, sched, x0, torch.tensor([1, 2, 1, 3]), eps=eps)
    x1 = sched.alpha[1] * x0 + sched.sigma[1] * eps
    lv = fixed_log_variance(sched, "small")[0]
    dec = vlb.gaussian_nll(x0, model.x0(x1, sched.t[1]), lv)
    torch.testing.assert_close(got[[0, 2]], dec[[0, 2]], rtol=1e-13, atol=0)
    assert bool(torch.isfinite(got).all())


def test_vlb_term_validates(gen):
    m = toy.two_modes()
    sched = _grid(VP(), 5)
    model = ExactModel(m, sched.process, "eps")
    x0 = m.sample(3, gen)
    not_data = discretize(VP(), torch.tensor([0.1, 0.5, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="start at the data"):
        vlb.vlb_term(model, not_data, x0, 1)
    with pytest.raises(ValueError, match="variance must have shape"):
        vlb.vlb_term(model, sched, x0, 2, variance=torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="positive"):
        vlb.vlb_term(model, sched, x0, 2, variance=-torch.ones(5, dtype=torch.float64))
    with pytest.raises(ValueError, match="variance must be one of"):
        vlb.vlb_term(model, sched, x0, 2, variance="medium")
    with pytest.raises(ValueError, match="step"):
        vlb.vlb_term(model, sched, x0, 6)
    with pytest.raises(TypeError, match="prediction"):
        vlb.vlb_term(lambda x, t: x, sched, x0, 2)
    with pytest.raises(TypeError, match="forward_full"):
        vlb.vlb_term(model, sched, x0, 2, variance="learned")
    with pytest.raises(ValueError, match="decoder"):
        vlb.vlb_term(model, sched, x0, 2, decoder="logistic")
    with pytest.raises(ValueError, match="NaN"):
        vlb.vlb_term(model, sched, torch.full((2, 2), float("nan"), dtype=torch.float64), 2)


# -- the discretized decoder --------------------------------------------------------------------


_VALUES = torch.arange(256, dtype=torch.float64) * 2 / 255 - 1


@settings(max_examples=60)
@given(mean=hst.floats(-3.0, 3.0), log_scale=hst.floats(-12.0, 3.0))
def test_discretized_bins_sum_to_one(mean, log_scale):
    ll = vlb.discretized_log_likelihood(_VALUES, torch.full((256,), mean, dtype=torch.float64), torch.full((256,), log_scale, dtype=torch.float64))
    assert bool(torch.isfinite(ll).all())
    assert abs(float(ll.exp().sum()) - 1.0) <= 1e-12


def test_discretized_bins_equal_normal_probabilities():
    mean, scale = 0.13, 0.05
    ll = vlb.discretized_log_likelihood(_VALUES, torch.full((256,), mean, dtype=torch.float64), torch.full((256,), math.log(scale), dtype=torch.float64))
    v = _VALUES.numpy()
    # mirrored where the bin lies right of the mean, so that scipy's value is accurate too
    below = stats.norm.cdf(v + 1 / 255, mean, scale) - stats.norm.cdf(v - 1 / 255, mean, scale)
    above = stats.norm.sf(v - 1 / 255, mean, scale) - stats.norm.sf(v + 1 / 255, mean, scale)
    want = np.where(v - 1 / 255 > mean, above, below)
    want[0] = stats.norm.cdf(v[0] + 1 / 255, mean, scale)
    want[-1] = stats.norm.sf(v[-1] - 1 / 255, mean, scale)
    keep = want > 1e-200
    got = ll.exp().numpy()
    assert (abs(got[keep] - want[keep]) <= 1e-12 * want[keep] + 1e-300).all()


def test_discretized_tails_are_finite_with_finite_gradients():
    mean = torch.tensor([40.0, -40.0, 0.0], dtype=torch.float64, requires_grad=True)
    log_scale = torch.tensor([-6.0, -6.0, -12.0], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([1.0, 1.0, 2 / 255 - 1], dtype=torch.float64)
    ll = vlb.discretized_log_likelihood(x, mean, log_scale)
    assert bool(torch.isfinite(ll).all())
    assert abs(float(ll[0].detach())) < 1e-300  # the open top bin holds all the mass
    assert float(ll[1].detach()) < -1e6
    ll.sum().backward()
    assert bool(torch.isfinite(mean.grad).all()) and bool(torch.isfinite(log_scale.grad).all())


def test_tanh_convention_differs_from_the_exact_cdf():
    # the official code's tanh approximation of Phi moves bin probabilities by up to about 4e-4
    means = torch.linspace(-1, 1, 41, dtype=torch.float64)[:, None].expand(41, 256)
    ls = torch.full((41, 256), math.log(0.3), dtype=torch.float64)
    x = _VALUES.expand(41, 256)
    diff = (vlb.discretized_log_likelihood(x, means, ls, cdf="tanh").exp() - vlb.discretized_log_likelihood(x, means, ls).exp()).abs()
    assert 1e-5 < float(diff.max()) < 1e-3


@pytest.mark.parametrize("x, match", [(torch.tensor([1.5]), "outside"), (torch.tensor([0.5]), "2k/255")])
def test_discretized_decoder_rejects_non_8bit_data(x, match):
    with pytest.raises(ValueError, match=match):
        vlb.discretized_log_likelihood(x.double(), torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))
    with pytest.raises(ValueError, match="cdf"):
        vlb.discretized_log_likelihood(_VALUES, _VALUES, _VALUES, cdf="logistic")


def test_bits_per_dim():
    x = torch.zeros(2, 3, 4, 4)
    torch.testing.assert_close(vlb.bits_per_dim(torch.tensor([48 * math.log(2.0), 0.0]), x), torch.tensor([1.0, 0.0]))


# -- variances ----------------------------------------------------------------------------------


def test_fixed_and_learned_variances():
    sched = _grid(DiscreteVP.cosine(), 1000)
    small, large = fixed_log_variance(sched, "small"), fixed_log_variance(sched, "large")
    assert float(small[0]) == float(small[1]) == math.log(float(sched.beta_tilde[1]))  # step 1 clipped to step 2
    assert float(large[0]) == float(small[0])
    torch.testing.assert_close(large[1:], torch.log(sched.beta[1:]), rtol=0, atol=0)
    steps = torch.arange(1, 1001)
    ones = torch.ones(1000, 1, dtype=torch.float64)
    torch.testing.assert_close(learned_range(ones, sched, steps)[:, 0], log_beta(sched), rtol=0, atol=1e-15)
    torch.testing.assert_close(learned_range(-ones, sched, steps)[:, 0], clipped_log_beta_tilde(sched), rtol=0, atol=1e-15)
    # v* inverts Nichol & Dhariwal 2021, Eq. 15, and no clamp is applied outside [-1, 1]
    var = torch.exp(learned_range(2.5 * ones, sched, steps)[:, 0])
    torch.testing.assert_close(2 * optimal_v(var, sched, steps) - 1, torch.full((1000,), 2.5, dtype=torch.float64), rtol=0, atol=1e-6)
    single = discretize(DiscreteVP.linear(100, rescale=True), torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert float(clipped_log_beta_tilde(single)[0]) == math.log(float(single.beta[0]))
    with pytest.raises(ValueError, match="kind"):
        fixed_log_variance(sched, "medium")
    with pytest.raises(ValueError, match="positive"):
        optimal_v(torch.zeros(3), sched, [1, 2, 3])


def test_learned_variance_model_convention(gen):
    m = toy.anisotropic()
    sched = _grid(VP(), 10)
    exact = ExactModel(m, sched.process, "eps")
    model = WithVariance(exact, lambda x, t: torch.zeros_like(x))
    x = m.sample(3, gen)
    mean, v = split_output(model, x, 0.5)
    torch.testing.assert_close(mean, exact(x, 0.5))
    assert bool((v == 0).all()) and model.prediction == "eps" and model(x, 0.5).shape == x.shape
    with pytest.raises(TypeError):
        WithVariance(lambda x, t: x, lambda x, t: x)
    with pytest.raises(TypeError, match="forward_full"):
        split_output(exact, x, 0.5)
    with pytest.raises(ValueError, match="step"):
        steps_tensor(torch.tensor([0, 1, 2]), sched, x)
    with pytest.raises(ValueError, match="shape"):
        steps_tensor(torch.tensor([1, 2]), sched, x)
