"""k-diffusion's convention: denoisers, ladders and laws against closed forms; its samplers against the exact answer."""

import math

import pytest
import torch

import toy
from diffcheck.adapters import kdiffusion as kd
from diffcheck.exact import ExactModel
from diffcheck.process import VP, DiscreteVP, SubVP, VE
from diffcheck.testing import DiffcheckAssertionError, assert_samples_match
from diffcheck.testing.gaussian_law import affine_law
from diffcheck.testing.resolution import gaussian_kl, law_resolution


@pytest.fixture(scope="module")
def K():
    pytest.importorskip("torchsde")
    pytest.importorskip("torchdiffeq")
    if not kd.available():
        pytest.skip(f"k-diffusion is not installed: {kd.INSTALL_HINT}")
    return kd.sampling()


@pytest.mark.parametrize("process", [VP(), SubVP(), VE(), DiscreteVP.linear()], ids=repr)
@pytest.mark.parametrize("prediction", ["eps", "x0", "v", "score"])
def test_model_denoiser_is_the_exact_denoiser_of_any_process(process, prediction):
    mix = toy.anisotropic()
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3.0
    sigma = torch.linspace(0.05, 20.0, 16, dtype=torch.float64)
    lo, hi = float(process.edm_sigma(torch.tensor(0.0))), float(process.edm_sigma(torch.tensor(1.0)))
    sigma = sigma.clamp(max(lo, 1e-3) * 1.01, hi * 0.99)
    got = kd.model_denoiser(ExactModel(mix, process, prediction), process)(x, sigma)
    want = kd.exact_denoiser(mix)(x, sigma)
    assert torch.allclose(got, want, rtol=1e-7, atol=1e-8)


def test_denoiser_keeps_a_python_sigma_in_float64():
    # sigma = 0.1 + 1e-12 is not representable in float32; the denoiser must see it, not its float32 rounding
    mix = toy.single_gaussian((0.0,), [[1.0]])
    x = torch.ones(1, 1, dtype=torch.float64)
    s = 0.1 + 1e-12
    want = 1.0 / (1.0 + s * s)  # E[x_0 | x_0 + s eps = 1] for x_0 ~ N(0, 1)
    assert abs(float(kd.exact_denoiser(mix)(x, s)) - want) < 1e-15


def test_denoiser_rejects_bad_sigma():
    den = kd.exact_denoiser(toy.two_modes())
    with pytest.raises(ValueError, match="non-negative"):
        den(torch.zeros(2, 2, dtype=torch.float64), -1.0)
    with pytest.raises(ValueError, match="range"):
        kd.model_denoiser(ExactModel(toy.two_modes(), VP(), "eps"), VP())(torch.zeros(2, 2, dtype=torch.float64), 1e6)


def test_ladders_equal_kdiffusions_and_map_to_grids(K):
    # theirs are float32: 1e-5 relative, except the VP ladder's exp(x) - 1 at x ~ 1e-4, where float32 cancellation
    # costs 2^-24 e^x / x ~ 6e-4 of sigma^2 (ours uses expm1)
    for ours, theirs, rtol in [(kd.karras(10, 0.01, 50.0), K.get_sigmas_karras(10, 0.01, 50.0), 1e-5),
                               (kd.exponential(10, 0.01, 50.0), K.get_sigmas_exponential(10, 0.01, 50.0), 1e-5),
                               (kd.polyexponential(10, 0.01, 50.0, 2.0), K.get_sigmas_polyexponential(10, 0.01, 50.0, 2.0), 1e-5),
                               (kd.vp(10), K.get_sigmas_vp(10), 1e-3)]:
        assert torch.allclose(ours, theirs.to(torch.float64), rtol=rtol, atol=0)
    grid = kd.to_grid(kd.vp_process(), kd.vp(11))  # the VP ladder is the VP process at uniform times
    assert torch.allclose(grid[:-1], torch.linspace(1.0, 1e-3, 11, dtype=torch.float64), atol=1e-10)
    assert grid[-1] == 0.0
    s = kd.karras(8, 0.01, 50.0)
    assert torch.allclose(kd.from_grid(VE(0.005, 60.0), kd.to_grid(VE(0.005, 60.0), s)), s, rtol=1e-9)
    with pytest.raises(ValueError, match="strictly decreasing"):
        kd.check_sigmas([3.0, 1.0, 1.0, 0.0])


def test_gaussian_flow_solves_the_ode():
    mean, cov = torch.tensor([1.0, -0.5], dtype=torch.float64), torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
    mix = toy.single_gaussian(mean, cov)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 5
    den = kd.exact_denoiser(mix)
    s, eps = 3.0, 1e-6  # dx/dsigma = (x - D(x, sigma)) / sigma by a central difference
    deriv = (kd.gaussian_flow(mean, cov, x, s, s + eps) - kd.gaussian_flow(mean, cov, x, s, s - eps)) / (2 * eps)
    assert torch.allclose(deriv, (x - den(x, s)) / s, rtol=1e-6)
    assert torch.allclose(kd.gaussian_flow(mean, cov, x, s, s), x)


def test_brownian_noise_has_brownian_covariances():
    # calls (2 -> 1) and (2 -> 1.5) share the increment over [1.5, 2]: correlation sqrt(0.5 / 1)
    n = 20000
    bn = kd.BrownianNoise(lambda like: torch.randn(like.shape, generator=g, dtype=like.dtype), torch.zeros(n, 1, dtype=torch.float64))
    g = torch.Generator().manual_seed(3)
    a, b = bn(2.0, 1.0), bn(2.0, 1.5)
    r = float(torch.corrcoef(torch.stack([a[:, 0], b[:, 0]]))[0, 1])
    assert abs(r - math.sqrt(0.5)) < 4.0 / math.sqrt(n)
    assert abs(float(a.var()) - 1.0) < 5.0 * math.sqrt(2.0 / n)


@pytest.mark.parametrize("name, nominal, steps", [("euler", 1.0, (16, 32, 64)), ("heun", 2.0, (16, 32, 64)),
                                                  ("dpmpp_2m", 2.0, (16, 32, 64)), ("euler_ancestral", 1.0, (32, 64, 128))])
def test_orders_of_kdiffusion_samplers(K, name, nominal, steps):
    from diffcheck.adapters.kdiffusion import measure as M

    res = M.order(kd.by_name(name), steps)
    assert res["order"] >= nominal - 0.3, res


def test_euler_and_euler_ancestral_agree_with_diffchecks_samplers(K):
    from diffcheck.adapters.kdiffusion import measure as M

    for name in ("euler", "euler_ancestral", "heun"):
        assert M.agreement(kd.by_name(name), 12)["passed"]


def test_exact_law_check_fails_a_wrong_sampler(K):
    # the Euler ancestral sampler with its noise doubled is beyond the resolution; the sampler itself is within it at 256 steps
    mix = toy.single_gaussian((1.0, -0.5), [[1.0, 0.6], [0.6, 0.5]])
    den, sig = kd.exact_denoiser(mix), kd.karras(256, 0.002, 80.0)
    start = kd.law(mix, 80.0)
    kls = []
    for scale in (1.0, 2.0):
        run = lambda x, nz: kd.run(kd.by_name("euler_ancestral"), den, x, sig, lambda like: scale * nz(like))
        m, c = affine_law(run, start.mean(), start.covariance())
        kls.append(gaussian_kl(m, c, mix.mean(), mix.covariance()))
    assert kls[1] > law_resolution(2, 10_000) and kls[0] < kls[1] / 10


def _euler(model, x, sigmas, scale_input=False):
    """The README's k-diffusion-style Euler; ``scale_input`` feeds the denoiser x / sqrt(sigma^2 + 1), a preconditioning
    that a k-diffusion denoiser already applies inside (a real porting bug: c_in applied twice)."""
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        x_in = x / (s**2 + 1) ** 0.5 if scale_input else x
        x = x + (s_next - s) * (x - model(x_in, s)) / s
    return x


def test_a_kdiffusion_style_sampler_in_a_few_lines(dc_kdiffusion):
    # the README's example: the fixture's defaults (64 Karras steps, 500 samples) in a few seconds
    case = dc_kdiffusion("anisotropic")
    assert_samples_match(_euler(case.denoiser, case.x, case.sigmas), case.law)


def test_the_few_line_test_fails_a_wrong_sampler(dc_kdiffusion):
    case = dc_kdiffusion("anisotropic")
    with pytest.raises(DiffcheckAssertionError, match="do not match the exact law"):
        assert_samples_match(_euler(case.denoiser, case.x, case.sigmas, scale_input=True), case.law)


def test_the_few_line_tests_defaults_resolve_euler_from_a_wrong_sampler():
    # why those defaults: on the Gaussian with the anisotropic preset's mean and covariance, Euler's exact output
    # law at 64 steps is within a quarter of the resolution of a level-1e-3 test on 500 samples, the wrong sampler
    # ten times beyond it (exact laws: no Monte Carlo)
    an = toy.anisotropic()
    mix = toy.single_gaussian(an.mean(), an.covariance())
    case = kd.case(mix)
    start = kd.law(mix, float(case.sigmas[0]))
    res = law_resolution(2, case.x.shape[0])
    kls = []
    for wrong in (False, True):
        m, c = affine_law(lambda x, nz: _euler(case.denoiser, x, case.sigmas, wrong), start.mean(), start.covariance())
        kls.append(gaussian_kl(m, c, mix.mean(), mix.covariance()))
    assert kls[0] < res / 4 and kls[1] > 10 * res, (kls, res)


def test_loading_says_how_to_install(monkeypatch):
    from diffcheck.adapters.kdiffusion import load

    monkeypatch.setattr(load.importlib.util, "find_spec", lambda name: None)
    monkeypatch.delitem(__import__("sys").modules, "k_diffusion.sampling", raising=False)
    monkeypatch.delitem(__import__("sys").modules, f"{load._PRIVATE}.sampling", raising=False)
    with pytest.raises(ImportError, match="pip install"):
        load.sampling()


def test_quick_report_and_likelihood(K):
    report = kd.verify_kdiffusion(["euler", "dpm_adaptive"], quick=True, progress=False, presets=("anisotropic",),
                                  n_two_sample=300, likelihood=True)
    text = kd.format_report(report)
    assert "euler" in text and "dpm_adaptive" in text
    assert report["samplers"][0]["agreement"]["passed"]
    assert report["log_likelihood"]["passed"]
