"""Samplers: every parameterization gives the same law, checks fail on wrong samplers, properties, bad input."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as hst

import toy
from diffcheck import process as P
from diffcheck import samplers as S
from diffcheck.checks import ddim as ddim_checks
from diffcheck.checks import orders as order_checks
from diffcheck.checks import samplers as checks
from diffcheck.exact import ExactModel
from diffcheck.likelihood import log_likelihood
from diffcheck.param import function_model
from diffcheck.samplers.loop import walk
from diffcheck.testing.gaussian_law import NotAffineError, affine_law
from diffcheck.testing.strategies import continuous_processes, grids

MU = torch.tensor([0.5, -1.0], dtype=torch.float64)
COV = torch.tensor([[0.8, 0.3], [0.3, 0.4]], dtype=torch.float64)
GAUSS = toy.single_gaussian(MU, COV)
NARROW = toy.single_gaussian(MU, COV * 0.015**2)


def _law(run, mixture, process, grid, prediction):
    model = ExactModel(mixture, process, prediction)
    start = model.law(grid[0])
    return affine_law(lambda x, nz: run(model, process, x, grid, nz), start.mean(), start.covariance())


RUNS = {
    "ddpm_ancestral": lambda m, p, x, g, nz: S.ddpm_ancestral(m, p, x, g, generator=nz),
    "ddpm_ancestral_beta": lambda m, p, x, g, nz: S.ddpm_ancestral(m, p, x, g, generator=nz, variance="beta"),
    "ddim": lambda m, p, x, g, nz: S.ddim(m, p, x, g),
    "ddim_eta": lambda m, p, x, g, nz: S.ddim(m, p, x, g, eta=0.6, generator=nz),
    "euler_maruyama": lambda m, p, x, g, nz: S.euler_maruyama(m, p, x, g, generator=nz),
    "reverse_diffusion": lambda m, p, x, g, nz: S.reverse_diffusion(m, p, x, g, generator=nz),
    "euler_ode": lambda m, p, x, g, nz: S.euler_ode(m, p, x, g),
    "heun_ode": lambda m, p, x, g, nz: S.heun_ode(m, p, x, g),
}
PROCESSES = {"VP": P.VP(), "VE": P.VE(sigma_max=20.0), "subVP": P.SubVP(), "cosine": P.CosineVP(), "DDPM-cosine": P.DiscreteVP.cosine()}


@pytest.mark.parametrize("run", sorted(RUNS))
@pytest.mark.parametrize("pname", sorted(PROCESSES))
def test_every_parameterization_gives_the_same_law(run, pname):
    """Exact models are consistent, so the sampler's exact output law must not depend on what the model predicts."""
    p = PROCESSES[pname]
    grid = torch.linspace(0.98, 1e-2, 21, dtype=torch.float64)
    laws = {pred: _law(RUNS[run], NARROW if pname == "VE" else GAUSS, p, grid, pred) for pred in ("eps", "x0", "v", "score")}
    ref_m, ref_c = laws["eps"]
    for pred, (m, c) in laws.items():
        assert torch.allclose(m, ref_m, rtol=1e-8, atol=1e-10), pred
        assert torch.allclose(c, ref_c, rtol=1e-8, atol=1e-12), pred


def test_ddpm_last_step_to_data_draws_no_noise():
    p = P.DiscreteVP.linear()
    grid = P.iddpm_grid(p, [10])
    mean, cov = _law(RUNS["ddpm_ancestral_beta"], GAUSS, p, grid[-2:], "eps")
    # one step from t_1 to 0 with sigma_t^2 = beta: DDPM draws no noise, so the law is the image of x_1's law
    model = ExactModel(GAUSS, p, "x0")
    start = model.law(grid[-2])
    a = float(p.alpha(grid[-2]))
    gain = COV @ torch.linalg.inv(a * a * COV + (1 - a * a) * torch.eye(2, dtype=torch.float64)) * a
    assert torch.allclose(cov, gain @ start.covariance() @ gain.T, atol=1e-12)


# -- the sampler checks fail on wrong samplers -----------------------------------------------------------


def _wrong_variance_step(model, process, x, t, s, noise, *, last=False, **kw):
    x, mean = S.ancestral_step(model, process, x, t, s, noise, last=last)
    return mean + 1.5 * (x - mean), mean  # variance 2.25x too large


def _off_by_one(model, process, x, t, s, noise, *, last=False, **kw):
    # the classic bug: the model evaluated at the next (less noisy) time of the grid
    return S.ancestral_step(function_model(lambda y, tt: model(y, s), model.prediction), process, x, t, s, noise, last=last)


@pytest.mark.parametrize("step", [_wrong_variance_step, _off_by_one])
def test_exact_law_check_fails_on_wrong_samplers(step):
    p = P.DiscreteVP.linear()
    case = checks.Case("broken ddpm", p, P.iddpm_grid(p, [100]),
                       lambda m, pr, x, g, gen: walk(step, m, pr, x, g, generator=gen))
    rec = checks.samplers_exact_law(cases=[case])
    assert not rec.passed, rec


def test_exact_law_check_fails_when_starting_from_the_wrong_time():
    # "leading" spacing: x_T drawn at the first grid time but the sampler starts one step later
    p = P.DiscreteVP.linear()
    grid = P.iddpm_grid(p, [50])
    case = checks.Case("starts late", p, grid, lambda m, pr, x, g, gen: S.ddpm_ancestral(m, pr, x, g[1:], generator=gen))
    assert not checks.samplers_exact_law(cases=[case]).passed


def _heun_wrong_time(model, process, x, t, s, noise=None, *, last=False, **kw):
    # second stage evaluated at t instead of s: a first-order method in disguise
    h = float(s) - float(t)
    v = S.probability_flow(model, process, x, t)
    x1 = x + h * v
    return x + 0.5 * h * (v + S.probability_flow(model, process, x1, t)), None


def test_orders_check_fails_on_a_first_order_method_declared_second_order():
    bad = lambda m, p, x, g, nz: walk(_heun_wrong_time, m, p, x, g, stochastic=False)
    rec = order_checks.orders(cases=[("heun_ode", bad, P.VP(), "v", 1.0, 1e-3)])
    assert not rec.passed
    assert rec.measured["heun_ode"] < 1.5  # first order in the limit, far from the declared 2


def test_likelihood_fails_with_wrong_divergence_sign(monkeypatch):
    import diffcheck.likelihood as lik

    real = lik.divergence
    monkeypatch.setattr(lik, "divergence", lambda v, x, probe=None: tuple(o if i else -o for i, o in enumerate(real(v, x, probe=probe))))
    m = toy.anisotropic()
    model = ExactModel(m, P.VP(), "score")
    x = m.sample(4, torch.Generator().manual_seed(0))
    L = log_likelihood(model, P.VP(), x, rtol=1e-6, atol=1e-6, prior_log_prob=lambda z: model.log_prob(z, 1.0))
    assert float((L.log_prob - model.log_prob(x, 1e-5)).abs().max()) > 0.1


def test_batch_independence_check_sees_a_shared_generator():
    shared = torch.Generator().manual_seed(0)
    p = P.VP()
    case = checks.Case("shared noise", p, P.uniform_grid(20, 1.0, 1e-3),
                       lambda m, pr, x, g, gen: S.euler_maruyama(m, pr, x, g, generator=shared.manual_seed(0)))
    import diffcheck.checks.samplers as mod

    real = mod._cases
    mod._cases = lambda: [case]
    try:
        assert not mod.batch_independence().passed
    finally:
        mod._cases = real


# -- properties over random processes and grids -----------------------------------------------------------


@settings(max_examples=25)
@given(continuous_processes(), grids(min_size=3, max_size=25, lo=0.02, hi=0.99))
def test_deterministic_samplers_reproducible_and_finite(p, g):
    model = ExactModel(GAUSS, p, "eps")
    x = model.law(g[0]).sample(16, torch.Generator().manual_seed(0))
    for fn in (S.ddim, S.euler_ode, S.heun_ode):
        a, b = fn(model, p, x, g), fn(model, p, x, g)
        assert torch.equal(a, b) and torch.isfinite(a).all()


@settings(max_examples=25)
@given(continuous_processes(), grids(min_size=2, max_size=25, lo=0.02, hi=0.99), hst.integers(0, 10**6))
def test_eta_one_is_ddpm_on_random_grids(p, g, seed):
    model = ExactModel(GAUSS, p, "v")
    x = model.law(g[0]).sample(8, torch.Generator().manual_seed(seed))
    a = S.ddim(model, p, x, g, eta=1.0, generator=torch.Generator().manual_seed(seed + 1))
    b = S.ddpm_ancestral(model, p, x, g, generator=torch.Generator().manual_seed(seed + 1))
    assert torch.allclose(a, b, rtol=1e-9, atol=1e-9)


@settings(max_examples=25)
@given(continuous_processes(), grids(min_size=2, max_size=15, lo=0.02, hi=0.99), hst.floats(0.0, 1.0))
def test_lemma1_on_random_grids(p, g, eta):
    x0 = torch.tensor([[0.3, -0.7]], dtype=torch.float64)
    oracle = ddim_checks._X0Oracle(x0)
    a_T, s_T = float(p.alpha(g[0])), float(p.sigma(g[0]))
    mean, cov = affine_law(lambda x, nz: S.ddim(oracle, p, x, g, eta=eta, generator=nz), a_T * x0[0], s_T**2 * torch.eye(2, dtype=torch.float64))
    a, s = float(p.alpha(g[-1])), float(p.sigma(g[-1]))
    assert torch.allclose(mean, a * x0[0], atol=1e-10)
    assert torch.allclose(cov, s * s * torch.eye(2, dtype=torch.float64), atol=1e-10 * (1 + s_T**2))


@settings(max_examples=30)
@given(hst.integers(2, 1000), hst.data())
def test_respaced_ancestral_variances_in_unit_interval(T, data):
    p = P.DiscreteVP.cosine(T)
    k = data.draw(hst.integers(1, min(T, 40)))
    steps = sorted(set(data.draw(hst.lists(hst.integers(1, T), min_size=k, max_size=k))))
    grid = P.respaced_grid(p, steps)
    for i in range(len(grid) - 1):
        c = S.coefficients(p, grid[i], grid[i + 1])
        assert 0.0 < c.beta < 1.0
        assert 0.0 <= c.beta_tilde < 1.0


def test_ddim_inversion_round_trip_shrinks():
    p = P.VP()
    model = ExactModel(toy.anisotropic(), p, "eps")
    x0 = model.law(1e-3).sample(32, torch.Generator().manual_seed(0))
    errs = []
    for k in (20, 40, 80):
        g = P.uniform_grid(k, 1.0, 1e-3)
        errs.append(float((S.ddim(model, p, S.ddim_invert(model, p, x0, g), g) - x0).abs().max()))
    assert errs[0] > errs[1] > errs[2]


def test_adaptive_ode_reports_nfe_and_matches_heun():
    p = P.VP()
    model = ExactModel(toy.anisotropic(), p, "score")
    x = model.law(1.0).sample(32, torch.Generator().manual_seed(0))
    res = S.adaptive_ode(model, p, x, P.uniform_grid(4, 1.0, 1e-3), rtol=1e-9, atol=1e-9, full=True)
    assert res.nfe > 50 and len(res.trajectory) == 5
    fine = S.heun_ode(model, p, x, P.uniform_grid(2000, 1.0, 1e-3))
    assert float((res.samples - fine).abs().max()) < 1e-4


def test_affine_law_refuses_a_nonaffine_sampler():
    # adaptive step sizes depend on the state: the output is not an affine map of the start
    p = P.VE(sigma_max=20.0)
    model = ExactModel(toy.two_modes(), p, "score")
    g = P.uniform_grid(1, 1.0, 1e-2)
    with pytest.raises(NotAffineError):
        affine_law(lambda x, nz: S.adaptive_ode(model, p, x, g, rtol=1e-3, atol=1e-3), torch.tensor([0.0, 0.0]), 400 * torch.eye(2))


def test_metadata_declared_for_every_sampler():
    for name in S.__all__:
        fn = getattr(S, name)
        if callable(fn) and hasattr(fn, "info"):
            meta = S.info(fn)
            assert meta.kind in ("ode", "sde", "chain", "mcmc") and meta.paper
    assert S.info(S.heun_ode).order == 2.0 and S.info(S.euler_maruyama).weak_order == 1.0
    with pytest.raises(TypeError, match="not a registered sampler"):
        S.info(print)


# -- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("grid, match", [([0.2, 0.5], "strictly decreasing"), ([1.5, 0.5], r"lie in \[0, 1\]"), ([0.5], "at least 2")])
def test_invalid_grids_are_rejected(grid, match):
    p = P.VP()
    model = ExactModel(GAUSS, p)
    x = torch.zeros(3, 2, dtype=torch.float64)
    for fn in (lambda: S.ddim(model, p, x, grid), lambda: S.ddpm_ancestral(model, p, x, grid, generator=torch.Generator()),
               lambda: S.euler_ode(model, p, x, grid)):
        with pytest.raises(ValueError, match=match):
            fn()


def test_nonfinite_state_names_the_step():
    p = P.VP()
    exact = ExactModel(GAUSS, p, "eps")
    broken = function_model(lambda x, t: exact(x, t) * (float("nan") if float(t) < 0.5 else 1.0), "eps")
    grid = P.uniform_grid(10, 1.0, 0.05)
    with pytest.raises(S.SamplingError, match=r"step 7 of 10 \(t = 0.43"):
        S.ddim(broken, p, torch.zeros(4, 2, dtype=torch.float64), grid)


def test_other_bad_arguments():
    p = P.VP()
    model = ExactModel(GAUSS, p)
    x = torch.zeros(3, 2, dtype=torch.float64)
    g = P.uniform_grid(5)
    with pytest.raises(ValueError, match="generator is required"):
        S.ddpm_ancestral(model, p, x, g, generator=None)
    with pytest.raises(ValueError, match="variance must be one of"):
        S.ddpm_ancestral(model, p, x, g, generator=torch.Generator(), variance="learned_range")
    with pytest.raises(TypeError, match="variance='learned' needs a learned-variance model"):
        S.ddpm_ancestral(model, p, x, g, generator=torch.Generator(), variance="learned")
    with pytest.raises(ValueError, match="eta must be >= 0"):
        S.ddim(model, p, x, g, eta=-1.0)
    with pytest.raises(ValueError, match="eta=5 is too large"):
        S.ddim(model, p, x, g, eta=5.0, generator=torch.Generator())
    with pytest.raises(ValueError, match="x contains NaN"):
        S.ddim(model, p, torch.full((2, 2), float("nan"), dtype=torch.float64), g)
    with pytest.raises(ValueError, match="x must have a batch dimension"):
        S.ddim(model, p, torch.zeros(2, dtype=torch.float64), g)
    with pytest.raises(ValueError, match="norm must be one of"):
        S.predictor_corrector(model, p, x, g, generator=torch.Generator(), norm="mean")
    with pytest.raises(ValueError, match="2 generators were given for a batch of 3"):
        S.euler_maruyama(model, p, x, g, generator=[torch.Generator(), torch.Generator()])
    with pytest.raises(ValueError, match="undefined where sigma"):
        S.probability_flow(ExactModel(GAUSS, p, "eps"), p, x, 0.0)
    with pytest.raises(ValueError, match="technique 4 needs a geometric ladder"):
        S.ncsnv2(model, P.VE(), x, torch.tensor([0.9, 0.5, 0.45], dtype=torch.float64), generator=torch.Generator())


def test_per_sample_noise_is_batch_independent():
    p = P.VP()
    model = ExactModel(toy.anisotropic(), p, "eps")
    x = model.law(1.0).sample(5, torch.Generator().manual_seed(3))
    g = P.uniform_grid(30, 1.0, 1e-3)
    together = S.euler_maruyama(model, p, x, g, generator=S.PerSampleNoise([10, 11, 12, 13, 14]))
    alone = S.euler_maruyama(model, p, x[2:3], g, generator=S.PerSampleNoise([12]))
    assert torch.allclose(together[2:3], alone, atol=1e-13)


def test_langevin_conventions_are_the_same_dynamics_at_double_step():
    p = P.VE()
    model = ExactModel(toy.two_modes(), p, "score")
    x = torch.zeros(4, 2, dtype=torch.float64)
    half = S.langevin(model, p, x, 0.0, step_size=0.2, n_steps=10, generator=torch.Generator().manual_seed(0), convention="half")
    full = S.langevin(model, p, x, 0.0, step_size=0.1, n_steps=10, generator=torch.Generator().manual_seed(0), convention="full")
    assert torch.allclose(half, full, atol=1e-14)


@settings(max_examples=15)
@given(continuous_processes(), hst.integers(8, 30))
def test_ddim_inversion_bound_shrinks_with_steps(p, k):
    model = ExactModel(toy.anisotropic(), p, "eps")
    x0 = model.law(0.05).sample(16, torch.Generator().manual_seed(k))

    def err(n):
        g = P.uniform_grid(n, 0.9, 0.05)
        return float((S.ddim(model, p, S.ddim_invert(model, p, x0, g), g) - x0).abs().max())

    assert err(4 * k) < err(k)


def test_clipping_x0_to_unit_interval_is_wrong_for_data_outside_it(gen):
    """The [-1, 1] clip that several libraries apply by default destroys data at +-5 (a known trap)."""
    p = P.DiscreteVP.linear()
    m = toy.two_modes()
    model = ExactModel(m, p, "eps")
    grid = P.iddpm_grid(p, [100])
    x = model.law(grid[0]).sample(1000, gen)
    clipped = S.ddpm_ancestral(model, p, x, grid, generator=gen, clip_x0=(-1.0, 1.0))
    free = S.ddpm_ancestral(model, p, x, grid, generator=gen)
    assert float(clipped.abs().max()) <= 1.0 + 0.05  # everything squeezed into the clip box
    assert abs(float(free.abs().mean()) - 5.0) < 0.5


@pytest.mark.parametrize("pname", ["VP", "VE"])
def test_float32_sampling_stays_finite_and_close_to_float64(pname, gen):
    """Tiny and huge sigma (VE: 0.01 to 50) must not produce NaN through fp32 cancellation."""
    p = P.VP() if pname == "VP" else P.VE()
    m = toy.narrow()
    grid = P.uniform_grid(200, 1.0, p.t_eps)
    x64 = ExactModel(m, p, "eps").law(1.0).sample(256, gen)
    for fn in (lambda mod, x: S.ddim(mod, p, x, grid), lambda mod, x: S.heun_ode(mod, p, x, grid)):
        out64 = fn(ExactModel(m, p, "eps"), x64)
        out32 = fn(ExactModel(m.to(torch.float32), p, "eps"), x64.float())
        assert out32.dtype == torch.float32 and torch.isfinite(out32).all()
        assert float((out32.double() - out64).abs().max()) < 1e-2 * (1 + float(out64.abs().max()))
