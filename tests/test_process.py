"""Forward processes, discrete views and grids: identities, properties and bad input."""

import math

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as hst

import toy
from diffcheck import process as P
from diffcheck.exact import ExactModel
from diffcheck.param import PREDICTIONS, Converted, convert, function_model, predict
from diffcheck.reverse import ReverseSDE
from diffcheck.testing.strategies import betas, continuous_processes, discrete_processes, grids, processes, times

# -- closed forms ---------------------------------------------------------------------------


def test_vp_defaults_match_score_sde():
    p = P.VP()
    assert (p.beta_min, p.beta_max, p.t_eps, p.prior_std) == (0.1, 20.0, 1e-3, 1.0)
    # B(1) = 0.1 + 19.9 / 2
    assert float(p.alpha(1.0)) == pytest.approx(math.exp(-0.5 * 10.05), rel=1e-14)


def test_ve_kernels():
    exact, official = P.VE(), P.VE(kernel="official")
    assert float(exact.sigma(0.0)) == 0.0 and float(official.sigma(0.0)) == pytest.approx(0.01)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert torch.allclose(official.sigma(t) ** 2 - exact.sigma(t) ** 2, torch.full_like(t, 1e-4), rtol=1e-9)
    assert exact.prior_std == pytest.approx(math.sqrt(50**2 - 0.01**2)) and official.prior_std == 50.0
    assert exact.t_eps == 1e-5


def test_subvp_sigma_is_vp_variance():
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    assert torch.allclose(P.SubVP().sigma(t), P.VP().sigma(t) ** 2, rtol=1e-13, atol=1e-300)


def test_discrete_vp_matches_its_table_on_the_grid():
    p = P.DiscreteVP.linear()
    steps = torch.arange(0, 1001)
    assert torch.allclose(p.alpha(p.times(steps)) ** 2, p.alphas_cumprod, rtol=1e-13)


def test_schedule_is_ddpm_for_vp_tables():
    p = P.DiscreteVP.linear()
    s = P.discretize(p, torch.arange(1001, dtype=torch.float64) / 1000)
    b = p.betas
    ab = p.alphas_cumprod
    assert torch.allclose(s.beta, b, rtol=1e-10)
    assert torch.allclose(s.transition_var, b, rtol=1e-10)
    assert torch.allclose(s.beta_tilde[1:], b[1:] * (1 - ab[1:-1]) / (1 - ab[2:]), rtol=1e-10)
    assert torch.allclose(s.posterior_mean_coef1, b * ab[:-1].sqrt() / (1 - ab[1:]), rtol=1e-10)
    assert torch.allclose(s.posterior_mean_coef2, (1 - b).sqrt() * (1 - ab[:-1]) / (1 - ab[1:]), rtol=1e-10, atol=1e-300)
    assert s.grid[0] == 1.0 and s.grid[-1] == 0.0


def test_ddim_steps_follow_the_reference_rules():
    assert P.ddim_steps(1000, 10, "uniform").tolist() == [1, 101, 201, 301, 401, 501, 601, 701, 801, 901]
    q = P.ddim_steps(1000, 10, "quadratic")
    # int(linspace(0, sqrt(800), 10)^2) + 1
    ref = [int(v) + 1 for v in [(math.sqrt(800) * i / 9) ** 2 for i in range(10)]]
    assert q.tolist() == ref


def test_iddpm_steps_both_ends_and_ddim_stride():
    s = P.iddpm_steps(1000, [250])
    assert s.numel() == 250 and int(s[0]) == 1 and int(s[-1]) == 1000
    assert P.iddpm_steps(1000, "ddim50").tolist() == list(range(1, 1000, 20))
    with pytest.raises(ValueError, match="section_counts"):
        P.iddpm_steps(1000, "ddim600")
    with pytest.raises(ValueError, match="cannot hold"):
        P.iddpm_steps(10, [20])


def test_vp_ddpm_map_round_trip():
    b = P.vp_to_ddpm_betas(0.1, 20.0, 1000)
    assert P.ddpm_to_vp(b) == pytest.approx((0.1, 20.0), rel=1e-12)
    # DDPM's own linear table is the VP SDE with beta_min = 0.1, beta_max = 20
    assert P.ddpm_to_vp(P.linear_betas(1000)) == pytest.approx((0.1, 20.0), rel=1e-12)
    s = P.ve_to_smld_sigmas(0.01, 50.0, 100)
    assert P.smld_to_ve(s) == pytest.approx((0.01, 50.0), rel=1e-12)
    assert torch.allclose(s, P.VE(kernel="official").sigma(torch.linspace(0, 1, 100, dtype=torch.float64)), rtol=1e-12)


def test_karras_sigmas_endpoints_and_grid():
    s = P.karras_sigmas(18, 0.002, 80.0, 7.0)
    assert float(s[0]) == pytest.approx(80.0) and float(s[-1]) == pytest.approx(0.002)
    g = P.karras_grid(P.VE(sigma_max=100.0), 18, 0.002, 80.0)
    assert torch.allclose(P.VE(sigma_max=100.0).edm_sigma(g[:-1]), s, rtol=1e-10)
    assert float(g[-1]) == 0.0


def test_geometric_sigmas_and_ncsnv2_levels():
    s = P.geometric_sigmas(1.0, 0.01, 10)
    assert float(s[0]) == 1.0 and float(s[-1]) == pytest.approx(0.01)
    assert torch.allclose(s[:-1] / s[1:], torch.full((9,), 100 ** (1 / 9), dtype=torch.float64))
    gamma = (50 / 0.01) ** (1 / 231)
    assert P.ncsnv2_num_levels(50.0, 0.01, gamma * (1 + 1e-12)) == 232


def test_karras_defaults_are_the_papers():
    """Karras et al. 2022, Table 1: sigma_min = 0.002, sigma_max = 80, rho = 7; by Karras et al. 2022, Eq. 5 the middle of three levels
    is ((80^(1/7) + 0.002^(1/7)) / 2)^7."""
    mid = ((80.0 ** (1 / 7) + 0.002 ** (1 / 7)) / 2) ** 7
    assert P.karras_sigmas(3).tolist() == pytest.approx([80.0, mid, 0.002], rel=1e-12)
    ve = P.VE(sigma_max=100.0)
    assert torch.allclose(ve.edm_sigma(P.karras_grid(ve, 3)[:-1]), torch.tensor([80.0, mid, 0.002], dtype=torch.float64),
                          rtol=1e-10)


def test_a_one_level_ladder_is_sigma_max_alone_and_a_reversed_range_is_refused():
    assert P.geometric_sigmas(0.5, 0.5, 1).tolist() == [0.5]
    assert P.geometric_sigmas(0.5, 0.1, 1).tolist() == [0.5]
    for L in (1, 2):
        with pytest.raises(ValueError, match="sigma_min must be"):
            P.geometric_sigmas(0.5, 0.6, L)
    with pytest.raises(ValueError, match="sigma_min must be < sigma_max"):
        P.geometric_sigmas(0.5, 0.5, 2)


def test_the_smallest_smld_ladder_has_two_levels():
    """ve_to_smld_sigmas with N = 2 is [sigma_min, sigma_max] (Song et al. 2021, App. B); one level is refused."""
    s = P.ve_to_smld_sigmas(0.01, 50.0, 2)
    assert s.tolist() == pytest.approx([0.01, 50.0], rel=1e-14)
    assert P.smld_to_ve(s) == pytest.approx((0.01, 50.0), rel=1e-14)
    with pytest.raises(ValueError, match="N must be >= 2"):
        P.ve_to_smld_sigmas(0.01, 50.0, 1)


def test_a_ddpm_table_off_the_line_by_a_millionth_of_its_largest_beta_is_refused():
    """ddpm_to_vp's linearity tolerance is rtol (1e-9) times the largest beta, at every scale of the table: one beta
    moved off the line by 1e-6 beta_N is refused, the table itself (off by rounding only) is accepted."""
    b = P.vp_to_ddpm_betas(0.1, 20.0, 1000)
    off = b.clone()
    off[500] += 1e-6 * float(b[-1])
    for k in (1.0, 1e-3, 30.0):
        assert P.ddpm_to_vp(b * k) == pytest.approx((0.1 * k, 20.0 * k), rel=1e-12)
        with pytest.raises(ValueError, match="betas must be linear"):
            P.ddpm_to_vp(off * k)
        assert P.ddpm_to_vp(off * k, rtol=1e-5) == pytest.approx((0.1 * k, 20.0 * k), rel=1e-12)


def test_the_ddpm_grid_is_every_step_then_the_data():
    """Ho et al. 2020, Algorithm 2: t = T, ..., 1, then x_0; as times step / T."""
    T = 10
    p = P.DiscreteVP.linear(T)
    assert P.ddpm_grid(p).tolist() == [k / T for k in range(T, -1, -1)]


def test_ncsnv2_sigma_max_is_largest_distance():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]], dtype=torch.float64)
    assert P.ncsnv2_sigma_max(x) == pytest.approx(5.0)
    assert P.ncsnv2_sigma_max(x, chunk=1) == pytest.approx(5.0)


def test_reverse_sde_and_probability_flow_drifts():
    p = P.VP()
    m = toy.anisotropic()
    ex = ExactModel(m, p, "score")
    x = torch.randn(5, 2, dtype=torch.float64)
    t = 0.3
    sde, ode = ReverseSDE(p, ex.score), ReverseSDE(p, ex.score, probability_flow=True)
    g2 = float(p.g2(t))
    assert torch.allclose(sde.drift(x, t), p.drift(x, t) - g2 * ex.score(x, t))
    assert torch.allclose(ode.drift(x, t), p.drift(x, t) - 0.5 * g2 * ex.score(x, t))
    assert float(ode.diffusion(t)) == 0.0 and float(sde.diffusion(t)) == pytest.approx(math.sqrt(g2))


# -- properties ------------------------------------------------------------------------------


@given(discrete_processes())
def test_tables_beta_in_unit_interval_alpha_bar_decreasing(p):
    assert bool(((p.betas > 0) & (p.betas < 1)).all())
    ab = p.alphas_cumprod
    assert bool((ab[1:] < ab[:-1]).all())


@given(processes())
def test_log_snr_strictly_decreasing(p):
    t = torch.linspace(0.0, 1.0, 257, dtype=torch.float64)
    lam = p.log_snr(t)
    assert bool((lam[1:] < lam[:-1]).all())


@given(processes(), grids(min_size=2, max_size=30))
def test_beta_tilde_below_transition_variance(p, g):
    s = P.discretize(p, g.flip(0))
    assert bool((s.beta_tilde <= s.transition_var * (1 + 1e-12)).all())
    assert bool((s.beta_tilde >= 0).all())


def _respacing_keeps_alpha_bar(p, steps):
    s = P.discretize(p, torch.tensor([0] + steps, dtype=torch.float64) / p.T)
    ab = p.alphas_cumprod[torch.tensor(steps)]
    assert torch.allclose(s.alpha_bar[1:], ab, rtol=1e-12)
    ratio = s.alpha_bar[1:] / s.alpha_bar[:-1]
    assert bool(((s.beta > 0) & (s.beta <= 1)).all())
    # beta = 1 - ratio is 1 exactly when the ratio is below float64's resolution (2^-53), and below 1 otherwise
    assert torch.equal(s.beta == 1, ratio < 2.0**-53)
    # log alpha_bar is the authority: the kept steps' log(1 - beta) add up to it wherever beta < 1
    kept = s.beta < 1
    if bool(kept.all()):
        assert torch.allclose(torch.cumprod(1 - s.beta, 0), ab, rtol=1e-10)
    logs = 2.0 * torch.log(s.alpha)
    assert torch.allclose(torch.log1p(-s.beta[kept]), (logs[1:] - logs[:-1])[kept], rtol=1e-10, atol=1e-12)


@given(discrete_processes(), hst.data())
def test_respacing_preserves_alpha_bar_on_kept_steps(p, data):
    k = data.draw(hst.integers(1, min(p.T, 50)))
    steps = sorted(set(data.draw(hst.lists(hst.integers(1, p.T), min_size=k, max_size=k))))
    _respacing_keeps_alpha_bar(p, steps)


def test_respacing_beta_is_one_where_the_kept_ratio_underflows():
    """T = 54, beta = 0.5: one respaced step from 0 to 54 has alpha_bar ratio 2^-54, so beta = 1 - 2^-54 rounds to 1."""
    p = P.DiscreteVP(torch.full((54,), 0.5, dtype=torch.float64))
    s = P.discretize(p, torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert math.isclose(float(s.alpha_bar[1]), 2.0**-54, rel_tol=1e-12) and float(s.beta[0]) == 1.0
    _respacing_keeps_alpha_bar(p, [54])
    _respacing_keeps_alpha_bar(p, [1, 53, 54])


@given(processes(), times(0.0, 1.0))
def test_time_log_snr_round_trip(p, t):
    lam = p.log_snr(t)
    assume(math.isfinite(float(lam)))
    assert float(p.t_of_log_snr(lam)) == pytest.approx(t, abs=1e-8)


@given(continuous_processes(), times(1e-4, 1.0))
def test_edm_sigma_round_trip(p, t):
    s = p.edm_sigma(t)
    assert float(p.t_of_edm_sigma(s)) == pytest.approx(t, abs=1e-8)


@given(processes(), times(0.0, 1.0))
def test_alpha_sigma_ranges(p, t):
    a, s = float(p.alpha(t)), float(p.sigma(t))
    assert 0.0 <= a <= 1.0 + 1e-15 and s >= 0.0
    assert math.isfinite(float(p.g2(t))) and float(p.g2(t)) >= 0.0


@given(
    hst.sampled_from(PREDICTIONS),
    hst.sampled_from(PREDICTIONS),
    hst.floats(1e-3, 1.0),
    hst.floats(1e-3, 50.0),
    hst.integers(0, 1000),
)
def test_conversions_round_trip(src, dst, a, s, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    v = torch.randn(6, 3, generator=g, dtype=torch.float64)
    back = convert(convert(v, x, a, s, src, dst), x, a, s, dst, src)
    scale = 1 + v.abs().max() + x.abs().max() * (1 / a + 1 / s)
    assert float((back - v).abs().max()) <= 1e-10 * float(scale) * (1 + s * s + 1 / (a * a))


def test_per_sample_time_in_conversions_and_exact_model():
    p = P.VP()
    m = toy.anisotropic()
    ex = ExactModel(m, p, "x0")
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    x = p.marginal(m, t).sample(generator=torch.Generator().manual_seed(0))
    per = ex(x, t)
    one = torch.stack([ex(x[i : i + 1], float(t[i]))[0] for i in range(3)])
    assert torch.allclose(per, one, atol=1e-14)
    v = predict(ex, p, x, t, "v")
    assert torch.allclose(v, ex.with_prediction("v")(x, t), atol=1e-12)
    assert torch.allclose(Converted(ex, p, "score")(x, t), ex.score(x, t), atol=1e-10)


def test_exact_model_handles_image_shaped_points():
    m = toy.single_gaussian(torch.zeros(12, dtype=torch.float64), torch.eye(12, dtype=torch.float64))
    ex = ExactModel(m, P.VP(), "eps")
    x = torch.randn(4, 3, 2, 2, dtype=torch.float64)
    out = ex(x, 0.5)
    assert out.shape == x.shape
    # N(0, I) data stays N(0, I) under VP: eps = sigma x
    assert torch.allclose(out, float(P.VP().sigma(0.5)) * x, atol=1e-12)


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: P.VP(beta_min=0.0), "beta_min must be > 0"),
        (lambda: P.VP(beta_min=2.0, beta_max=1.0), "beta_max must be >= beta_min"),
        (lambda: P.VE(sigma_min=1.0, sigma_max=1.0), "sigma_min must be < sigma_max"),
        (lambda: P.VE(kernel="approx"), "kernel must be one of"),
        (lambda: P.DiscreteVP([0.1, 1.0]), r"betas must lie in \(0, 1\)"),
        (lambda: P.DiscreteVP([0.1, 0.0]), r"betas must lie in \(0, 1\)"),
        (lambda: P.DiscreteVP([0.1, float("nan")]), "betas contains NaN"),
        (lambda: P.linear_betas(1000, 0.5, 1.5), "beta_end must be < 1"),
        (lambda: P.cosine_betas(1000, max_beta=1.0), "max_beta must be < 1"),
        (lambda: P.discretize(P.VP(), [0.5, 0.2]), "times must be strictly increasing"),
        (lambda: P.discretize(P.VP(), [0.5]), "times must hold at least 2"),
        (lambda: P.discretize(P.VP(), [0.5, 1.5]), r"times must lie in \[0, 1\]"),
        (lambda: P.ddim_steps(1000, 2000), "S must be <= 1000"),
        (lambda: P.ddim_steps(1000, 10, "cubic"), "kind must be one of"),
        (lambda: P.ncsnv2_gamma(2), "no gamma gives overlap"),
        (lambda: P.karras_sigmas(10, 1.0, 0.5), "sigma_min must be < sigma_max"),
        (lambda: P.check_grid([0.2, 0.5]), "grid must be strictly decreasing"),
        (lambda: P.check_grid([1.0]), "grid must hold at least 2"),
        (lambda: P.check_grid([1.2, 0.5]), r"grid must lie in \[0, 1\]"),
        (lambda: P.respaced_grid(P.VP(), [1, 2]), "process must be a DiscreteVP"),
        (lambda: P.ddpm_to_vp(P.cosine_betas(100)), "betas must be linear"),
    ],
)
def test_bad_process_arguments_are_named(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), [0.2, 1.1]])
def test_times_outside_domain_are_rejected(bad):
    with pytest.raises(ValueError, match=r"^t "):
        P.VP().alpha(bad)


def test_log_snr_outside_range_is_rejected():
    with pytest.raises(ValueError, match="log_snr must lie in this process's range"):
        P.VP().t_of_log_snr(-50.0)


def test_convert_rejects_division_by_zero_and_shape_mismatch():
    x = torch.ones(2, 2)
    with pytest.raises(ValueError, match="divides by sigma"):
        convert(torch.ones(2, 2), x, 1.0, 0.0, "eps", "score")
    with pytest.raises(ValueError, match="shape"):
        convert(torch.ones(2, 3), x, 1.0, 0.5, "eps", "score")
    with pytest.raises(ValueError, match="src must be one of"):
        convert(x, x, 1.0, 0.5, "noise", "score")
    with pytest.raises(TypeError, match="prediction"):
        predict(lambda x, t: x, P.VP(), x, 0.5, "eps")
    with pytest.raises(ValueError, match="prediction must be one of"):
        function_model(lambda x, t: x, "epsilon")


@pytest.mark.parametrize("dst", ["eps", "score", "v"])
@pytest.mark.parametrize("sigma", [0.0, torch.zeros(3, dtype=torch.float64)], ids=["float", "tensor"])
def test_an_x0_prediction_at_sigma_zero_has_no_noise_to_convert_to(dst, sigma):
    """eps = (x - alpha x0) / sigma (Ho et al. 2020, Eq. 4 solved for eps) is undefined at sigma = 0: refused, naming sigma."""
    from diffcheck.param import convert

    x = torch.ones(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="sigma"):
        convert(torch.zeros(3, 2, dtype=torch.float64), x, 1.0, sigma, "x0", dst)


@pytest.mark.parametrize("dst", ["eps", "score", "v"])
def test_beside_an_accelerator_tensor_a_number_sigma_of_zero_is_still_refused(dst):
    """Beside a tensor off the host, a number alpha or sigma stays a Python float (no copy, no synchronisation), and
    that path refuses sigma = 0 too: eps = (x - alpha x0) / sigma (Ho et al. 2020, Eq. 4 solved for eps) is undefined.

    The meta device stands in for an accelerator: it is not the host, and its tensors carry shapes without data."""
    from diffcheck.param import convert
    from diffcheck.tensor import per_sample

    x = torch.ones(3, 2, dtype=torch.float64, device="meta")
    assert isinstance(per_sample(0.0, x), float)
    with pytest.raises(ValueError, match="sigma"):
        convert(torch.zeros_like(x), x, 1.0, 0.0, "x0", dst)
    assert convert(torch.zeros_like(x), x, 1.0, 0.5, "x0", dst).shape == x.shape
