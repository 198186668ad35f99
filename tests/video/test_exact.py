"""The exact conditional denoiser, log q(x^a | z_t) and the exact sampler laws, against independent routes."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as hst

import toy
from diffcheck import process as P
from diffcheck import samplers as S
from diffcheck.exact import ExactModel
from diffcheck.testing import strategies as dst
from diffcheck.testing.gaussian_law import NotAffineError
from diffcheck.video import (ExactConditional, affine_moments, conditional_draws, conditional_kl, conditional_law, exact_conditional_sample,
                             log_known_given_noisy)

MIX = toy.ar1_video(6, 2, rho=[0.9, 0.6], offsets=[[1.5, -1.0], [-1.5, 1.0]], weights=[0.6, 0.4])
AR1 = toy.ar1_video(6, 2, rho=0.9)
DDPM = P.DiscreteVP.linear()


@pytest.mark.parametrize("prediction", ["score", "eps", "x0", "v"])
@pytest.mark.parametrize("process", [DDPM, P.VP(), P.VE(sigma_max=20.0)], ids=["ddpm", "vp", "ve"])
def test_conditional_model_is_the_exact_model_of_toys_conditional_mixture(prediction, process, gen):
    known = MIX.frame_coords([0, 5])
    x_a = MIX.sample(1, gen)[0, known]
    ours = ExactConditional(MIX, process, known, prediction)
    ref = ExactModel(MIX.condition(known, x_a), process, prediction)  # toy's conditioning: an independent route
    z = torch.randn(64, 8, generator=gen, dtype=torch.float64)
    for t in (0.02, 0.3, 0.8):
        a, b = ours(z, t, cond=x_a), ref(z, t)
        assert (a - b).abs().max() <= 1e-12 * (1 + b.abs().max())
    t = torch.rand(64, generator=gen, dtype=torch.float64) * 0.9 + 0.05  # per-sample times, per-row x^a
    rows = x_a.expand(64, -1)
    assert torch.allclose(ours(z, t, cond=rows), ref(z, t), rtol=0, atol=1e-12 * (1 + float(ref(z, t).abs().max())))


def test_no_known_coordinates_is_the_unconditional_exact_model(gen):
    ours, ref = ExactConditional(MIX, DDPM, ()), ExactModel(MIX, DDPM, "eps")
    z = torch.randn(32, 6, 2, generator=gen, dtype=torch.float64)  # any shape whose flattened size fits
    assert ours(z, 0.4).shape == z.shape
    assert torch.allclose(ours(z, 0.4), ref(z, 0.4), atol=1e-13)


def test_per_row_conditioning_values_each_give_their_own_conditional(gen):
    known = AR1.frame_coords([0, 1])
    model = ExactConditional(AR1, DDPM, known, "x0")
    x_a = AR1.sample(3, gen)[:, known]
    z = torch.randn(3, 8, generator=gen, dtype=torch.float64)
    got = model(z, 0.5, cond=x_a)
    for i in range(3):
        want = ExactModel(AR1.condition(known, x_a[i]), DDPM, "x0")(z[i : i + 1], 0.5)
        assert torch.allclose(got[i : i + 1], want, atol=1e-13)


def test_log_q_of_known_given_noisy_by_quadrature_in_one_dimension():
    """q(x^a | z) = q(z | x^a) q(x^a) / q(z); for a 2-D mixture every factor is a 1-D integral or a density."""
    m = toy.GaussianMixture([0.3, 0.7], [[1.0, -1.0], [-0.5, 0.8]], [[[1.0, 0.6], [0.6, 0.8]], [[0.5, -0.2], [-0.2, 0.7]]])
    t = torch.tensor(0.35, dtype=torch.float64)
    a, s = DDPM.alpha(t), DDPM.sigma(t)
    z = torch.tensor([[0.3, -0.4], [1.2, 0.9]], dtype=torch.float64)
    x_a = torch.tensor([[0.5], [-0.7]], dtype=torch.float64)
    got = log_known_given_noisy(m, DDPM, z, t, [0], x_a)
    grid = torch.linspace(-12, 12, 40001, dtype=torch.float64)
    h = float(grid[1] - grid[0])
    for i in range(2):
        pts = torch.stack([x_a[i, 0].expand_as(grid), grid], 1)  # x = (x^a, x^b) over x^b
        lik = torch.exp(-((z[i] - a * pts) ** 2).sum(1) / (2 * s * s)) / (2 * math.pi * s * s)
        joint = (torch.exp(m.log_prob(pts)) * lik).sum() * h  # q(x^a, z) = int q(x^a, x^b) q(z | x) dx^b
        want = torch.log(joint) - m.noised(a, s).log_prob(z[i : i + 1])[0]
        assert abs(float(got[i] - want)) < 1e-8


@settings(max_examples=15, deadline=None)
@given(m=dst.mixtures(dim=hst.integers(3, 5), components=hst.integers(1, 3)), t=dst.times(0.02, 0.95), k=hst.integers(1, 2))
def test_guidance_identity_holds_for_random_mixtures(m, t, k):
    """E[x^b | z, x^a] = E[x^b | z] + (sigma^2 / alpha) grad_{z^b} log q(x^a | z) (Ho et al. 2022, Sec. 3.1)."""
    gen = torch.Generator().manual_seed(0)
    known = torch.arange(k)
    tt = torch.tensor(t, dtype=torch.float64)
    a, s = DDPM.alpha(tt), DDPM.sigma(tt)
    x0 = m.sample(16, gen)
    z = a * x0 + s * torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    ec = ExactConditional(m, DDPM, known, "x0")
    lhs = ec(z[:, ec.free], tt, cond=x0[:, known])
    zr = z.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(log_known_given_noisy(m, DDPM, zr, tt, known, x0[:, known]).sum(), zr)
    rhs = ExactModel(m, DDPM, "x0").x0(z, tt)[:, ec.free] + (s * s / a) * g[:, ec.free]
    assert float((lhs - rhs).abs().max()) <= 1e-8 * (1 + float(lhs.abs().max())) * (1 + float(s * s / a))


def test_conditional_draws_have_the_conditional_moments(gen):
    known = AR1.frame_coords([0, 1])
    x_a = torch.tensor([0.8, -0.3, 1.1, 0.2], dtype=torch.float64).expand(20000, -1)
    draws = conditional_draws(AR1, known, x_a, gen)
    mean, cov, free = toy.condition_gaussian(AR1.means[0], AR1.covs[0], known, x_a[0])
    assert torch.equal(draws[:, known], x_a)
    from diffcheck.testing import stats as st
    assert st.mean_test(draws[:, free], mean, cov, alpha=1e-3).passed
    assert st.covariance_test(draws[:, free], cov, mean, alpha=1e-3).passed


def test_exact_conditional_sample_runs_the_sampler_on_the_free_coordinates(gen):
    known = MIX.frame_coords([0, 5])
    x_a = MIX.sample(8, gen)[:, known]
    x_T = DDPM.prior_sample((8, 6, 2), gen)
    grid = P.ddim_grid(DDPM, 10)
    out = exact_conditional_sample(MIX, DDPM, known, x_a, x_T, grid, sampler=S.ddim)
    assert out.shape == (8, 6, 2) and torch.equal(out.reshape(8, -1)[:, known], x_a)
    ec = ExactConditional(MIX, DDPM, known)
    want = S.ddim(ec, DDPM, x_T.reshape(8, -1)[:, ec.free], grid, cond=x_a)
    assert torch.equal(out.reshape(8, -1)[:, ec.free], want)
    with pytest.raises(ValueError, match="x_a"):
        exact_conditional_sample(MIX, DDPM, known, x_a[:, :3], x_T, grid, sampler=S.ddim)


# -- exact sampler laws -------------------------------------------------------------------------------------------


def _exact_draw_run(m, known, scale=1.0, shift=0.0):
    """An exact conditional draw written as an affine map of (x^a, noise): x^b = m(x^a) + L z (scaled, shifted)."""
    free = toy.gaussian.complement(known, m.dim)
    s = m.covs[0]
    gain = s[free][:, known] @ torch.linalg.inv(s[known][:, known])
    chol = torch.linalg.cholesky(s[free][:, free] - gain @ s[known][:, free])

    def run(x_T, x_a, noise):
        out = torch.empty_like(x_T)
        z = noise(torch.empty(x_T.shape[0], free.numel(), dtype=x_T.dtype))
        out[:, free] = m.means[0][free] + (x_a - m.means[0][known]) @ gain.T + shift + scale * z @ chol.T
        out[:, known] = x_a
        return out

    return run


def test_conditional_kl_is_zero_for_exact_draws_and_closed_form_for_a_scaled_spread():
    known = AR1.frame_coords([0, 1])
    assert abs(conditional_kl(_exact_draw_run(AR1, known), AR1, DDPM, known)) < 1e-12
    # spread scaled by c: KL(N(m, c^2 C) || N(m, C)) = b/2 (c^2 - 1 - log c^2), whatever x^a
    c, b = 1.1, 8
    want = 0.5 * b * (c * c - 1 - math.log(c * c))
    assert abs(conditional_kl(_exact_draw_run(AR1, known, scale=c), AR1, DDPM, known) - want) < 1e-12
    # a shift d of every free value: KL = d^T C^-1 d / 2
    d = 0.2
    _, cov, _ = toy.condition_gaussian(AR1.means[0], AR1.covs[0], known, torch.zeros(4, dtype=torch.float64))
    want = 0.5 * d * d * float(torch.ones(b, dtype=torch.float64) @ torch.linalg.solve(cov, torch.ones(b, dtype=torch.float64)))
    assert abs(conditional_kl(_exact_draw_run(AR1, known, shift=d), AR1, DDPM, known) - want) < 1e-12


def test_conditional_law_of_the_exact_sampler_converges_to_the_data_law():
    """The exact conditional sampler's law approaches N(mu, S) as DDPM's steps grow.

    A first-order sampler has moment errors O(h), so its KL is O(h^2): 4x less per doubling in the limit; measured
    ratios are 2.98 (50 -> 100) and 3.23 (100 -> 200), and must exceed 2.5.
    """
    known = AR1.frame_coords([0, 1])
    ec = ExactConditional(AR1, DDPM, known)

    def run_for(steps):
        grid = P.iddpm_grid(DDPM, [steps])

        def run(x_T, x_a, noise):
            out = torch.empty_like(x_T)
            out[:, ec.free] = S.ddpm_ancestral(ec, DDPM, x_T[:, ec.free], grid, generator=noise, cond=x_a)
            out[:, known] = x_a
            return out

        return run

    kls = [conditional_kl(run_for(n), AR1, DDPM, known) for n in (50, 100, 200)]
    assert kls[0] > 2.5 * kls[1] and kls[1] > 2.5 * kls[2] > 0


def test_affine_moments_rejects_a_sampler_that_is_not_affine():
    known = MIX.frame_coords([0, 1])
    ec = ExactConditional(MIX, DDPM, known)
    grid = P.iddpm_grid(DDPM, [10])

    def run(x, noise):
        return S.ddpm_ancestral(ec, DDPM, x, grid, generator=noise, cond=torch.zeros(x.shape[0], 4, dtype=x.dtype))

    with pytest.raises(NotAffineError):
        affine_moments(run, torch.zeros(8, dtype=torch.float64), torch.eye(8, dtype=torch.float64))


def test_conditional_law_refuses_mixtures_and_checks_the_known_values():
    known = AR1.frame_coords([0, 1])
    with pytest.raises(ValueError, match="single Gaussian"):
        conditional_law(_exact_draw_run(AR1, known), MIX, DDPM, known)

    def forgets(x_T, x_a, noise):
        out = _exact_draw_run(AR1, known)(x_T, x_a, noise)
        out[:, known] = 0.0
        return out

    with pytest.raises(ValueError, match="known values"):
        conditional_kl(forgets, AR1, DDPM, known)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="known"):
        ExactConditional(AR1, DDPM, [0, 0])
    with pytest.raises(ValueError, match="known"):
        ExactConditional(AR1, DDPM, list(range(12)))
    with pytest.raises(TypeError, match="mixture"):
        ExactConditional("ar1", DDPM, [0])
    with pytest.raises(ValueError, match="prediction"):
        ExactConditional(AR1, DDPM, [0], "score2")
    model = ExactConditional(AR1, DDPM, [0, 1])
    z = torch.zeros(4, 10, dtype=torch.float64)
    with pytest.raises(ValueError, match="cond"):
        model(z, 0.5)
    with pytest.raises(ValueError, match="cond"):
        model(z, 0.5, cond=torch.zeros(4, 3))
    with pytest.raises(ValueError, match="cond"):
        model(z, 0.5, cond=torch.tensor([float("nan"), 0.0]))
    with pytest.raises(ValueError, match="free coordinates"):
        model(torch.zeros(4, 9, dtype=torch.float64), 0.5, cond=torch.zeros(2))
    with pytest.raises(ValueError, match="t must"):
        model(z, torch.zeros(3), cond=torch.zeros(2))
    with pytest.raises(ValueError, match="x_a"):
        log_known_given_noisy(AR1, DDPM, torch.zeros(4, 12, dtype=torch.float64), 0.5, [0, 1], torch.zeros(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="t must be a scalar"):
        log_known_given_noisy(AR1, DDPM, torch.zeros(4, 12, dtype=torch.float64), torch.zeros(4), [0, 1], torch.zeros(4, 2, dtype=torch.float64))
