"""What every sampler promises beyond its law: model outputs checked, evaluations counted, defaults that define the
algorithm, the branches (clip_x0, eta at its bound, exact inversion) against closed forms, unstable steps refused."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import toy
from diffcheck import process as P
from diffcheck import samplers as S
from diffcheck.exact import ExactModel
from diffcheck.guidance import ExactClassifier, classifier_guided_ancestral, classifier_guided_ancestral_step
from diffcheck.param import function_model
from diffcheck.samplers.loop import coefficients
from diffcheck.testing.gaussian_law import affine_law

MU = torch.tensor([0.5, -1.0], dtype=torch.float64)
COV = torch.tensor([[0.8, 0.3], [0.3, 0.4]], dtype=torch.float64)
GAUSS = toy.single_gaussian(MU, COV)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# every step-based sampler, as run(model, process, x, grid, generator, **kw)
RUNS = {
    "ddpm_ancestral": lambda m, p, x, g, gen, **kw: S.ddpm_ancestral(m, p, x, g, generator=gen, **kw),
    "ddim": lambda m, p, x, g, gen, **kw: S.ddim(m, p, x, g, **kw),
    "ddim_eta": lambda m, p, x, g, gen, **kw: S.ddim(m, p, x, g, eta=0.5, generator=gen, **kw),
    "ddim_invert": lambda m, p, x, g, gen, **kw: S.ddim_invert(m, p, x, g, **kw),
    "euler_maruyama": lambda m, p, x, g, gen, **kw: S.euler_maruyama(m, p, x, g, generator=gen, **kw),
    "reverse_diffusion": lambda m, p, x, g, gen, **kw: S.reverse_diffusion(m, p, x, g, generator=gen, **kw),
    "predictor_corrector": lambda m, p, x, g, gen, **kw: S.predictor_corrector(m, p, x, g, generator=gen, **kw),
    "euler_ode": lambda m, p, x, g, gen, **kw: S.euler_ode(m, p, x, g, **kw),
    "heun_ode": lambda m, p, x, g, gen, **kw: S.heun_ode(m, p, x, g, **kw),
    "adaptive_ode": lambda m, p, x, g, gen, **kw: S.adaptive_ode(m, p, x, g, **kw),
    "annealed_langevin": lambda m, p, x, g, gen, **kw: S.annealed_langevin(m, p, x, g, eps=1e-3, steps_per_level=2,
                                                                           generator=gen, **kw),
    "langevin": lambda m, p, x, g, gen, **kw: S.langevin(m, p, x, float(g[0]), step_size=1e-3, n_steps=2, generator=gen, **kw),
}
GRID = P.uniform_grid(4, 0.9, 0.1)


# -- 1. model outputs of the wrong shape ---------------------------------------------------------------------------


@pytest.mark.parametrize("run", sorted(RUNS))
@pytest.mark.parametrize("prediction", ["eps", "x0", "v", "score"])
@pytest.mark.parametrize("extra", ["(B, 1)", "(B, D + 1)"])
def test_a_model_output_of_the_wrong_shape_is_refused(run, prediction, extra):
    """A (B, 1) output would broadcast against x (B, D) and give samples far off; every path checks the shape."""
    p = P.VP()
    exact = ExactModel(GAUSS, p, prediction)
    if extra == "(B, 1)":
        bad = function_model(lambda x, t: exact(x, t)[:, :1], prediction)
    else:
        bad = function_model(lambda x, t: torch.cat([exact(x, t), exact(x, t)[:, :1]], 1), prediction)
    x = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"shape"):
        RUNS[run](bad, p, x, GRID, _gen())


@pytest.mark.parametrize("run", sorted(set(RUNS) - {"adaptive_ode"}))
def test_a_model_returning_nan_stops_with_a_sampling_error(run):
    p = P.VP()
    bad = function_model(lambda x, t: torch.full_like(x, float("nan")), "eps")
    with pytest.raises(S.SamplingError):
        RUNS[run](bad, p, torch.zeros(3, 2, dtype=torch.float64), GRID, _gen())


@pytest.mark.parametrize("run", sorted(RUNS))
def test_a_sampler_returns_plain_samples_unless_asked_for_the_trajectory(run):
    p = P.VP()
    m = ExactModel(GAUSS, p, "eps")
    x = m.law(0.9).sample(3, _gen(1))
    out = RUNS[run](m, p, x, GRID, _gen())
    assert type(out) is torch.Tensor and out.shape == x.shape


@pytest.mark.parametrize("run", sorted(RUNS))
@pytest.mark.parametrize("bad", ["int64 tensor", "list"])
def test_samples_that_are_not_a_floating_tensor_are_refused_naming_x(run, bad):
    """The sampler refuses them itself, whatever the model accepts (this model takes any input)."""
    p = P.VP()
    x = torch.zeros(3, 2, dtype=torch.int64) if bad == "int64 tensor" else [[0.0, 0.0]] * 3
    lenient = function_model(lambda x, t: torch.zeros(3, 2, dtype=torch.float64), "eps")
    with pytest.raises(TypeError, match="x must be a floating tensor"):
        RUNS[run](lenient, p, x, GRID, _gen())


def test_the_walk_checks_every_state_by_default():
    """``walk`` is the loop user-written steps run in (inpainting by replacement, RaMViD): a non-finite state stops it
    with a SamplingError naming the step, unless check_finite=False."""
    p = P.VP()

    def blows_up(model, process, x, t, s, noise, *, last, coef):
        y = x / 0.0 if float(s) < 0.4 else x  # the step 0.5 -> 0.3, the third of GRID's four
        return y, y

    x = torch.ones(3, 2, dtype=torch.float64)
    model = ExactModel(GAUSS, p, "eps")
    with pytest.raises(S.SamplingError, match=r"^mine: non-finite state after step 3 of 4 \(t = 0.5 -> 0.3\)"):
        S.walk(blows_up, model, p, x, GRID, stochastic=False, name="mine")
    assert bool(torch.isinf(S.walk(blows_up, model, p, x, GRID, stochastic=False, check_finite=False)).all())


# -- 9. evaluation counts ------------------------------------------------------------------------------------------


class _Counter:
    """A model wrapper that counts its own evaluations (independent of the samplers' counter)."""

    def __init__(self, model):
        self.model, self.prediction, self.n = model, model.prediction, 0

    def __call__(self, x, t, **kw):
        self.n += 1
        return self.model(x, t, **kw)


@pytest.mark.parametrize("run", sorted(RUNS))
def test_every_nfe_figure_is_the_number_of_model_evaluations(run):
    p = P.VP()
    counter = _Counter(ExactModel(GAUSS, p, "eps"))
    x = ExactModel(GAUSS, p).law(0.9).sample(4, _gen(1))
    res = RUNS[run](counter, p, x, GRID, _gen(), full=True)
    assert res.nfe == counter.n > 0


def test_the_nfe_figures_of_the_step_samplers_follow_their_algorithms():
    """One evaluation per step (DDPM, DDIM, its inversion, Euler), two per Heun step but one on a final step to
    sigma = 0, 1 + n_corrector per predictor-corrector step, steps_per_level per Langevin level."""
    p = P.VP()
    m = ExactModel(GAUSS, p, "eps")
    x = m.law(0.9).sample(4, _gen(1))
    n = len(GRID) - 1
    assert S.ddim_invert(m, p, x, GRID, full=True).nfe == n
    assert S.ddim(m, p, x, GRID, full=True).nfe == n
    assert S.euler_maruyama(m, p, x, GRID, generator=_gen(), full=True).nfe == n
    assert S.heun_ode(m, p, x, GRID, full=True).nfe == 2 * n
    to_data = P.uniform_grid(4, 0.9, 0.0)
    assert S.heun_ode(ExactModel(GAUSS, p, "x0"), p, x, to_data, full=True).nfe == 2 * n - 1
    assert S.predictor_corrector(m, p, x, GRID, generator=_gen(), n_corrector=3, full=True).nfe == 4 * n
    assert S.annealed_langevin(m, p, x, GRID, eps=1e-3, steps_per_level=3, generator=_gen(), full=True).nfe == 3 * (n + 1)


# -- 9. DDIM: default eta, exact inversion, the eta bound (8) --------------------------------------------------------


def test_ddim_step_without_eta_is_the_deterministic_eta_zero_step():
    """eta = 0 is what makes it DDIM (Song et al. 2020, Eq. 12): x_s = alpha_s x0 + sigma_s eps, no noise drawn."""
    p = P.VP()
    m = ExactModel(GAUSS, p, "eps")
    x = m.law(0.7).sample(5, _gen(2))
    t, s = torch.tensor(0.7, dtype=torch.float64), torch.tensor(0.4, dtype=torch.float64)
    out, mean = S.ddim_step(m, p, x, t, s, None)
    x0 = ExactModel(GAUSS, p, "x0")(x, t)
    eps = ExactModel(GAUSS, p, "eps")(x, t)
    expect = float(p.alpha(s)) * x0 + float(p.sigma(s)) * eps
    assert torch.equal(out, mean) and torch.allclose(out, expect, rtol=1e-12, atol=1e-12)
    assert torch.equal(S.ddim(m, p, x, P.uniform_grid(5, 0.7, 0.1)), S.ddim(m, p, x, P.uniform_grid(5, 0.7, 0.1), eta=0.0))


@pytest.mark.parametrize("pname", ["VP", "VE", "cosine"])
def test_ddim_inversion_is_exact_for_a_point_mass_and_reaches_the_grid_start(pname):
    """With an x_0 model of a point mass x0, DDIM's ODE is linear: x_T = alpha_T x0 + sigma_T (x_s - alpha_s x0) / sigma_s."""
    p = {"VP": P.VP(), "VE": P.VE(), "cosine": P.CosineVP()}[pname]
    point = torch.tensor([1.5, -0.5], dtype=torch.float64)
    model = function_model(lambda x, t: point.expand_as(x).clone(), "x0")
    grid = P.uniform_grid(7, 0.8, 0.05)
    x_s = point + 0.3 * torch.randn(6, 2, generator=_gen(3), dtype=torch.float64)
    a = lambda t: float(p.alpha(t))  # noqa: E731
    sg = lambda t: float(p.sigma(t))  # noqa: E731
    expect = a(0.8) * point + sg(0.8) * (x_s - a(0.05) * point) / sg(0.05)
    res = S.ddim_invert(model, p, x_s, grid, full=True)
    assert torch.allclose(res.samples, expect, rtol=1e-12, atol=1e-12)
    assert len(res.trajectory) == len(grid) and res.nfe == len(grid) - 1
    short = a(float(grid[1])) * point + sg(float(grid[1])) * (x_s - a(0.05) * point) / sg(0.05)
    assert not torch.allclose(res.samples, short, atol=1e-3)  # one step short of x_T would be far off


def test_ddim_eta_bound_is_the_largest_valid_eta():
    """sigma_eta^2 = eta^2 beta_tilde <= sigma_s^2 on every step; beta_tilde / sigma_s^2 = 1 - SNR_t / SNR_s, so the
    largest valid eta is min over steps of (1 - SNR_t / SNR_s)^(-1/2). At it the binding step's mean is alpha_s x0."""
    p = P.VP()
    grid = P.uniform_grid(6, 0.9, 0.1)
    snr = lambda t: float(p.alpha(t) ** 2 / p.sigma(t) ** 2)  # noqa: E731
    g = grid.tolist()
    bounds = [(1.0 - snr(g[i]) / snr(g[i + 1])) ** -0.5 for i in range(len(g) - 1)]
    eta_max = min(bounds)
    m = ExactModel(GAUSS, p, "eps")
    x = m.law(0.9).sample(4, _gen(4))
    S.ddim(m, p, x, grid, eta=eta_max * (1 - 1e-9), generator=_gen())
    with pytest.raises(ValueError, match="eta=.* is too large"):
        S.ddim(m, p, x, grid, eta=eta_max * (1 + 1e-6), generator=_gen())
    i = bounds.index(eta_max)
    t, s = torch.tensor(g[i], dtype=torch.float64), torch.tensor(g[i + 1], dtype=torch.float64)
    _, mean = S.ddim_step(m, p, x, t, s, lambda like: torch.zeros_like(like), eta=eta_max * (1 - 1e-12))
    x0 = ExactModel(GAUSS, p, "x0")(x, t)
    assert torch.allclose(mean, float(p.alpha(s)) * x0, rtol=1e-5, atol=1e-5)


# -- 9. the ancestral step's clip_x0 branch ---------------------------------------------------------------------------


@pytest.mark.parametrize("pname", ["VP", "ddpm-linear"])
def test_a_clip_box_that_never_binds_changes_nothing(pname):
    p = P.VP() if pname == "VP" else P.DiscreteVP.linear()
    m = ExactModel(GAUSS, p, "eps")
    grid = P.uniform_grid(20, 1.0, 1e-3)
    x = m.law(1.0).sample(50, _gen(5))
    free = S.ddpm_ancestral(m, p, x, grid, generator=_gen(6))
    boxed = S.ddpm_ancestral(m, p, x, grid, generator=_gen(6), clip_x0=(-1e6, 1e6))
    assert torch.allclose(free, boxed, rtol=1e-9, atol=1e-9)


def test_with_a_binding_box_the_step_mean_is_the_posterior_mean_at_the_clipped_x0():
    """Ho et al. 2020, Eq. 7: mu = alpha_s (1 - SNR_t/SNR_s) x0 + (alpha_t/alpha_s)(sigma_s^2/sigma_t^2) x_t, x0 clipped
    to a box that binds some coordinates and not others."""
    p = P.VP()
    m = ExactModel(GAUSS, p, "eps")
    t, s = torch.tensor(0.6, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64)
    x = m.law(0.6).sample(40, _gen(7))
    box = (-0.7, 0.4)
    _, mean = S.ancestral_step(m, p, x, t, s, lambda like: torch.zeros_like(like), clip_x0=box)
    raw = ExactModel(GAUSS, p, "x0")(x, t)
    x0 = raw.clamp(*box)
    inside = (raw > box[0]) & (raw < box[1])
    assert bool(inside.any()) and bool((~inside).any())  # the box binds some coordinates, not all
    at, as_, st_, ss = (float(v) for v in (p.alpha(t), p.alpha(s), p.sigma(t), p.sigma(s)))
    c0 = as_ * (1.0 - (at / st_) ** 2 / (as_ / ss) ** 2)
    ct = (at / as_) * ss**2 / st_**2
    assert torch.allclose(mean, c0 * x0 + ct * x, rtol=1e-12, atol=1e-12)


# -- 9. defaults that define an algorithm ----------------------------------------------------------------------------


def test_the_default_variance_of_ddpm_is_beta_tilde():
    p = P.VP()
    m = ExactModel(GAUSS, p, "eps")
    x = m.law(1.0).sample(20, _gen(8))
    grid = P.uniform_grid(10)
    default = S.ddpm_ancestral(m, p, x, grid, generator=_gen(9))
    assert torch.equal(default, S.ddpm_ancestral(m, p, x, grid, generator=_gen(9), variance="beta_tilde"))
    assert not torch.allclose(default, S.ddpm_ancestral(m, p, x, grid, generator=_gen(9), variance="beta"))


def test_the_predictor_corrector_defaults_are_the_papers():
    """snr r = 0.16 (Song et al. 2021, App. G, VE on CIFAR-10), one corrector step, reverse diffusion + Langevin, and the
    batch-independent "sigma" step rule."""
    p = P.VE()
    m = ExactModel(GAUSS, p, "score")
    x = m.law(1.0).sample(20, _gen(10))
    grid = P.uniform_grid(10, 1.0, 1e-3)
    default = S.predictor_corrector(m, p, x, grid, generator=_gen(11))
    explicit = S.predictor_corrector(m, p, x, grid, generator=_gen(11), snr=0.16, n_corrector=1, norm="sigma",
                                     predictor=S.reverse_diffusion_step, corrector=S.langevin_corrector_step)
    assert torch.equal(default, explicit)
    for other in (dict(snr=0.15), dict(n_corrector=2), dict(norm="per_sample")):
        assert not torch.allclose(default, S.predictor_corrector(m, p, x, grid, generator=_gen(11), **other))


@pytest.mark.parametrize("pname", ["VP", "VE"])
def test_the_langevin_corrector_step_alone_has_the_papers_snr(pname):
    """Called alone, the corrector step's r is Song et al. 2021's 0.16 (App. G) and its "sigma" rule's step is
    e = 2 a (r sigma_t)^2, a = alpha_t^2 / alpha_s^2 (Algorithms 4-5): x' = x + e score + sqrt(2 e) z."""
    p = P.VP() if pname == "VP" else P.VE()
    m = ExactModel(GAUSS, p, "score")
    t, s = torch.tensor(0.6, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64)
    x = m.law(0.6).sample(7, _gen(18))
    z = torch.randn(7, 2, generator=_gen(19), dtype=torch.float64)
    out, mean = S.langevin_corrector_step(m, p, x, t, s, lambda like: z)
    e = 2.0 * float(p.alpha(t) / p.alpha(s)) ** 2 * (0.16 * float(p.sigma(t))) ** 2
    assert torch.allclose(mean, x + e * m(x, t), rtol=1e-13, atol=1e-13)
    assert torch.allclose(out, mean + math.sqrt(2.0 * e) * z, rtol=1e-13, atol=1e-13)


def test_the_explicit_step_guard_bounds_the_stiff_mode_only_where_there_is_noise():
    """The guard bounds |1 - h (f + w g^2 / sigma^2)|, the gain of the linear mode near a point mass, by 100; at
    sigma = 0 (no noise, as at t = 0 of VE's exact kernel) the mode does not exist and it has nothing to refuse."""
    from diffcheck.samplers.base import check_explicit_step

    assert check_explicit_step("step", 0.5, 0.25, -1.0, 2.0, 0.0, 1.0) is None
    assert check_explicit_step("step", 0.5, 0.25, 0.0, 1.0, 0.1, 1.0) is None  # gain |1 - 0.25 * 100| = 24
    with pytest.raises(S.SamplingError, match=r"step: the explicit step t = 0.5 -> 0.25 multiplies .* by 249"):
        check_explicit_step("step", 0.5, 0.25, 0.0, 1.0, 0.1, 10.0)  # gain |1 - 0.25 * 10 / 0.01| = 249


def test_the_adaptive_solver_defaults():
    p = P.VP()
    m = ExactModel(GAUSS, p, "eps")
    x = m.law(1.0).sample(5, _gen(12))
    g = P.uniform_grid(1, 1.0, 1e-3)
    default = S.adaptive_ode(m, p, x, g, full=True)
    explicit = S.adaptive_ode(m, p, x, g, rtol=1e-5, atol=1e-5, method="RK45", full=True)
    assert torch.equal(default.samples, explicit.samples) and default.nfe == explicit.nfe
    assert S.adaptive_ode(m, p, x, g, rtol=1e-3, atol=1e-3, full=True).nfe < default.nfe


def test_a_step_function_alone_is_the_samplers_step():
    """Called without the walk's coefficient table, each public step computes its own and gives the same step."""
    p = P.VP()
    m = ExactModel(GAUSS, p, "eps")
    x = m.law(0.8).sample(6, _gen(13))
    grid = torch.tensor([0.8, 0.6], dtype=torch.float64)
    t, s = grid[0], grid[1]
    for step, run in ((S.euler_maruyama_step, lambda nz: S.euler_maruyama(m, p, x, grid, generator=nz, denoise=False)),
                      (S.reverse_diffusion_step, lambda nz: S.reverse_diffusion(m, p, x, grid, generator=nz, denoise=False)),
                      (S.ancestral_step, lambda nz: S.ddpm_ancestral(m, p, x, grid, generator=nz))):
        alone, _ = step(m, p, x, t, s, S.make_noise(_gen(14)))
        assert torch.allclose(alone, run(_gen(14)), rtol=1e-13, atol=1e-13), step.__name__
    for step, run in ((S.euler_step, S.euler_ode), (S.heun_step, S.heun_ode)):
        alone, _ = step(m, p, x, t, s)
        assert torch.allclose(alone, run(m, p, x, grid), rtol=1e-13, atol=1e-13), step.__name__


def test_declared_theory_is_frozen_and_consistent():
    """A sampler's declared theory cannot be changed by a caller, and a sampler that is another one in a limit declares
    that one's order: classifier guidance at scale 0 is DDPM's chain, the predictor-corrector without corrector steps is
    its reverse-diffusion predictor."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        S.info(S.ddim).order = 2.0  # type: ignore[misc]
    assert S.info(classifier_guided_ancestral).weak_order == S.info(S.ddpm_ancestral).weak_order
    assert S.info(S.predictor_corrector).weak_order == S.info(S.reverse_diffusion).weak_order
    p = P.VP()
    m = ExactModel(GAUSS, p, "eps")
    x = m.law(1.0).sample(10, _gen(15))
    grid = P.uniform_grid(8)
    assert torch.allclose(S.predictor_corrector(m, p, x, grid, generator=_gen(16), n_corrector=0),
                          S.reverse_diffusion(m, p, x, grid, generator=_gen(16)), atol=1e-14)


# -- Langevin: the exact law of the chain on a Gaussian target --------------------------------------------------------


@pytest.mark.parametrize("convention", ["half", "full"])
def test_langevin_chain_has_its_closed_form_law_on_a_gaussian(convention):
    """On N(m, C): x' = x + a (-C^-1 (x - m)) + b z is AR(1); after n steps mean m + M^n (mu0 - m) and covariance
    M^n C0 M^nT + b^2 sum_k M^k M^kT, with M = I - a C^-1 ("half": a = eps/2, b^2 = eps; "full": a = eps, b^2 = 2 eps)."""
    p = P.VE()
    model = ExactModel(GAUSS, p, "score")
    eps, n = 0.05, 7
    a, b2 = (eps / 2, eps) if convention == "half" else (eps, 2 * eps)
    mu0 = torch.tensor([2.0, 1.0], dtype=torch.float64)
    c0 = torch.eye(2, dtype=torch.float64) * 0.3
    mean, cov = affine_law(lambda x, nz: S.langevin(model, p, x, 0.0, step_size=eps, n_steps=n, generator=nz,
                                                    convention=convention), mu0, c0)
    M = torch.eye(2, dtype=torch.float64) - a * torch.linalg.inv(COV)
    Mn = torch.linalg.matrix_power(M, n)
    expect_cov = Mn @ c0 @ Mn.T + b2 * sum(torch.linalg.matrix_power(M, k) @ torch.linalg.matrix_power(M, k).T for k in range(n))
    assert torch.allclose(mean, MU + Mn @ (mu0 - MU), atol=1e-12)
    assert torch.allclose(cov, expect_cov, atol=1e-12)


# -- 5. variance choices and guidance arguments ------------------------------------------------------------------------


def test_an_unknown_variance_is_refused_by_every_ancestral_entry_point():
    p = P.VP()
    m = ExactModel(toy.two_modes(), p, "eps")
    clf = ExactClassifier(toy.two_modes(), p)
    x = torch.zeros(2, 2, dtype=torch.float64)
    t, s = torch.tensor(0.5, dtype=torch.float64), torch.tensor(0.4, dtype=torch.float64)
    noise = S.make_noise(_gen())
    y = torch.zeros(2, dtype=torch.int64)
    for call in (lambda: S.ancestral_step(m, p, x, t, s, noise, variance="foo"),
                 lambda: S.ancestral_moments(m, p, x, t, s, variance="foo"),
                 lambda: classifier_guided_ancestral_step(m, p, x, t, s, noise, classifier=clf, y=y, variance="foo"),
                 lambda: classifier_guided_ancestral(m, clf, p, x, GRID, y, generator=_gen(), variance="foo")):
        with pytest.raises(ValueError, match="variance must be one of"):
            call()


# -- 2. unstable explicit steps ----------------------------------------------------------------------------------------


def test_an_explicit_step_through_the_cosine_singularity_is_refused_and_the_cosine_grid_start_is_stable():
    p = P.CosineVP()
    m = ExactModel(toy.two_modes(), p, "eps")
    x = m.law(1.0).sample(8, _gen(17))
    em = lambda g: S.euler_maruyama(m, p, x, g, generator=_gen())  # noqa: E731
    with pytest.raises(S.SamplingError, match=r"euler_maruyama: the explicit step t = 1 -> 0.99"):
        em(P.uniform_grid(100, 1.0, 1e-3))
    assert bool(torch.isfinite(em(P.uniform_grid(100, p.t_max, 1e-3))).all())
    # the probability flow's prior part cancels for VP (f + g^2 / 2 = 0): its explicit steps stay stable from t = 1
    for run in (lambda g: S.euler_ode(m, p, x, g), lambda g: S.heun_ode(m, p, x, g)):
        assert float(run(P.uniform_grid(100, 1.0, 1e-3)).abs().max()) < 20.0
    # the same guard on a process where the reverse SDE's first step is merely coarse: accepted
    S.euler_maruyama(ExactModel(GAUSS, P.VE(), "eps"), P.VE(), x, P.uniform_grid(2, 1.0, 1e-3), generator=_gen())
    # t_max: a T = 1000 step there has DDPM's beta = g^2 dt = -log(1 - 0.999) (Nichol & Dhariwal 2021, Sec. 3.2)
    assert math.isclose(float(p.g2(p.t_max)) / 1000.0, -math.log(1.0 - 0.999), rel_tol=1e-9)


def test_float32_cosine_coefficients_are_the_float64_ones_rounded():
    """In float32 the angle at t = 1 rounds past pi/2 (cos < 0, NaN alpha, f > 0, g^2 < 0); computed in float64 and
    rounded once, every coefficient is finite with the right sign on all of [0, 1]."""
    p = P.CosineVP()
    t64 = torch.linspace(0.0, 1.0, 1001, dtype=torch.float64)
    t32 = t64.float()
    for name in ("alpha", "sigma", "f", "g2", "log_alpha"):
        v32, v64 = getattr(p, name)(t32), getattr(p, name)(t32.double())
        assert v32.dtype == torch.float32 and bool(torch.isfinite(v32).all()), name
        assert torch.equal(v32, v64.float()), name
    assert bool((p.alpha(t32) > 0).all()) and bool((p.g2(t32) > 0).all()) and bool((p.f(t32) < 0).all())


# -- 6. VE far from the defaults ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma_min,sigma_max", [(1e-300, 50.0), (1e-300, 1e6), (1e-5, 1e6), (0.5, 0.9)])
@pytest.mark.parametrize("kernel", ["exact", "official"])
def test_ve_coefficients_stay_finite_and_match_their_log_space_closed_forms(sigma_min, sigma_max, kernel):
    """log g^2 = log(2 L) + 2 (log sigma_min + L t) and, exact kernel, sigma^2 = sigma_min^2 (r^(2t) - 1), L = log r,
    r = sigma_max / sigma_min (Song et al. 2021, Eq. 9 and App. B)."""
    p = P.VE(sigma_min, sigma_max, kernel=kernel)
    t = torch.linspace(0.0, 1.0, 101, dtype=torch.float64)
    L = math.log(sigma_max / sigma_min)
    for name in ("alpha", "sigma", "g2", "f", "noise_level"):
        assert bool(torch.isfinite(getattr(p, name)(t)).all()), name
    assert bool(torch.isfinite(p.log_snr(t[1:])).all())
    for ti, g2 in zip(t.tolist(), p.g2(t).tolist()):
        log_g2 = math.log(2 * L) + 2 * (math.log(sigma_min) + L * ti)
        assert (g2 < 1e-300 and log_g2 < -690) or math.isclose(math.log(g2), log_g2, rel_tol=1e-12, abs_tol=1e-12)
    for ti, ls in zip(t[1:].tolist(), p.log_sigma(t[1:]).tolist()):
        x = 2 * L * ti
        expect = math.log(sigma_min) + L * ti + (0.5 * math.log(-math.expm1(-x)) if kernel == "exact" else 0.0)
        assert math.isclose(ls, expect, rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(float(p.sigma(1.0)), math.sqrt(sigma_max**2 - sigma_min**2) if kernel == "exact" else sigma_max,
                        rel_tol=1e-12)


def test_the_interval_of_a_step_is_checked_per_step():
    c = coefficients(P.CosineVP(), torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.99, dtype=torch.float64))
    assert c.g2_t > 1e16  # the singular end, in float64


def test_the_adaptive_solver_returns_the_state_at_the_grids_end():
    """With a trajectory requested, the result is still the solution at the last grid time (the states are those at
    every grid time), and it equals the plain call's output; the probability flow of a Gaussian carries x_T to the
    data law's affine image, so the end state must differ from the intermediate ones."""
    p = P.VP()
    m = ExactModel(GAUSS, p, "eps")
    x = m.law(1.0).sample(5, _gen(13))
    g = P.uniform_grid(4, 1.0, 1e-3)
    res = S.adaptive_ode(m, p, x, g, full=True)
    assert len(res.trajectory) == len(g) and torch.equal(res.samples, res.trajectory[-1])
    assert torch.equal(res.samples, S.adaptive_ode(m, p, x, g))
    assert not torch.allclose(res.trajectory[1], res.trajectory[-1])
