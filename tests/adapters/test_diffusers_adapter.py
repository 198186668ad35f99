"""The diffusers adapter: exact time maps, and schedulers that run diffcheck's algorithms agree with diffcheck's samplers."""

import sys

import pytest
import torch

pytest.importorskip("diffusers")
# diffusers converts tensors with np.array(...), which numpy 2 reports as deprecated
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

import toy  # noqa: E402
from diffcheck import samplers as S  # noqa: E402
from diffcheck.adapters import diffusers as A  # noqa: E402
from diffcheck.exact import ExactModel  # noqa: E402
from diffcheck.process import LinearVE  # noqa: E402
from diffcheck.samplers import SamplingError  # noqa: E402
from diffcheck.testing.gaussian_law import affine_law  # noqa: E402

GAUSS = toy.single_gaussian((1.0, -0.5), ((1.0, 0.6), (0.6, 0.5)))
T = 1000
# float64 tables and states over N <= 30 steps of O(1) values: round-off is a few hundred ulps at most
FLOAT64_TOL = 1e-12
# float32 sigmas or states (Euler, Euler ancestral, Heun's sigmas, DPM-Solver): each rounding is 2^-24 ~ 6e-8
# relative; <= 100 roundings of states of size <= 3 stay below 2e-5
FLOAT32_TOL = 2e-5

SCHEDULES = {
    "linear": {},
    "scaled_linear": {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
    "squaredcos_cap_v2": {"beta_schedule": "squaredcos_cap_v2"},
    "zero_snr": {"rescale_betas_zero_snr": True},
}


def _x(n=16, seed=0):
    return torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _setup(cfg, steps):
    sched = A.build(cfg)
    proc = A.process_for(sched)
    A.set_timesteps(sched, steps)
    return sched, proc, A.walk_grid(sched, proc)


# -- the time map ---------------------------------------------------------------------------------------
TABLE_CASES = [(sch, schedule) for sch in ("DDIMScheduler", "DDPMScheduler", "PNDMScheduler", "EulerDiscreteScheduler", "DPMSolverMultistepScheduler")
               for schedule in sorted(SCHEDULES) if not (sch == "PNDMScheduler" and schedule == "zero_snr")]  # PNDM has no such option


@pytest.mark.parametrize("scheduler, schedule", TABLE_CASES)
def test_alpha_bar_at_mapped_time_equals_the_schedulers(scheduler, schedule):
    kw = SCHEDULES[schedule]
    sched = A.build(A.SchedulerConfig.make(scheduler, **kw))
    if scheduler in ("EulerDiscreteScheduler", "DPMSolverMultistepScheduler") and "rescale_betas_zero_snr" in kw:
        # these set alpha_bar_T = 2^-24 after rescaling, above alpha_bar_{T-1}: no forward process has that table
        assert float(sched.alphas_cumprod[-1]) == 2.0**-24 > float(sched.alphas_cumprod[-2])
        with pytest.raises(ValueError, match="not decreasing"):
            A.process_for(sched)
        return
    proc = A.process_for(sched)
    t = torch.tensor([A.timestep_time(proc, k) for k in range(T)], dtype=torch.float64)
    ours = proc.alpha(t) ** 2
    assert float((ours - sched.alphas_cumprod).abs().max()) <= FLOAT64_TOL
    # the off-by-one map (index k at t = k / T) is far outside that tolerance
    wrong = proc.alpha(t - 1.0 / T) ** 2
    assert float((wrong - sched.alphas_cumprod).abs().max()) > 1e-6
    # diffusers' own float32 table is the same schedule to float32 resolution: T products of relative error 2^-24
    raw = A.build(A.SchedulerConfig.make(scheduler, float64=False, **kw))
    assert raw.alphas_cumprod.dtype == torch.float32
    pos = ours > 0
    rel = ((raw.alphas_cumprod.double() - ours).abs()[pos] / ours[pos]).max()
    assert float(rel) <= T * 2.0**-24


def test_zero_terminal_snr_process_ends_in_pure_noise():
    sched = A.build(A.SchedulerConfig.make("DDIMScheduler", rescale_betas_zero_snr=True))
    proc = A.process_for(sched)
    assert isinstance(proc, A.ZeroTerminalVP)
    one = torch.tensor(1.0, dtype=torch.float64)
    assert float(proc.alpha(one)) == 0.0 and float(proc.sigma(one)) == 1.0


@pytest.mark.parametrize("spacing", ["linspace", "trailing", "leading"])
def test_sigma_space_time_map_hits_the_training_indices(spacing):
    """Euler's sigmas at integer timesteps map back to t = (tau + 1) / T, up to the float32 rounding of sigma."""
    sched, proc, _ = _setup(A.SchedulerConfig.make("EulerDiscreteScheduler", timestep_spacing=spacing), 20)
    for tau, sigma in zip(sched.timesteps.tolist(), sched.sigmas.tolist()):
        if float(tau).is_integer():
            # a relative error of 2^-24 in sigma moves t by at most 2^-24 / |d log sigma / dt| < 1e-4 / T here
            assert abs(A.sigma_time(proc, sigma) * T - (tau + 1)) < 1e-4


# -- configurations that run diffcheck's algorithms -------------------------------------------------------
@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("options", [
    {"timestep_spacing": "trailing"},
    {"timestep_spacing": "leading"},
    {"timestep_spacing": "leading", "steps_offset": 1, "set_alpha_to_one": False},
    {"timestep_spacing": "trailing", "beta_schedule": "squaredcos_cap_v2"},
], ids=["trailing", "leading", "leading-offset-alpha0", "cosine"])
def test_ddim_equals_diffcheck_ddim(options, prediction):
    cfg = A.SchedulerConfig.make("DDIMScheduler", prediction_type=prediction, **options)
    sched, proc, grid = _setup(cfg, 20)
    x = _x()
    out = A.sample(cfg, GAUSS, x, 20).samples
    ref = S.ddim(ExactModel(GAUSS, proc, cfg.prediction), proc, x, grid)
    assert float((out - ref).abs().max()) <= FLOAT64_TOL


def test_ddim_zero_snr_v_equals_diffcheck_and_eps_breaks():
    cfg = A.SchedulerConfig.make("DDIMScheduler", timestep_spacing="trailing", rescale_betas_zero_snr=True, prediction_type="v_prediction")
    sched, proc, grid = _setup(cfg, 20)
    x = _x()
    out = A.sample(cfg, GAUSS, x, 20).samples
    assert float((out - S.ddim(ExactModel(GAUSS, proc, "v"), proc, x, grid)).abs().max()) <= FLOAT64_TOL
    # x_0 = (x - sigma eps) / alpha has no value at alpha = 0
    with pytest.raises(SamplingError, match="non-finite"):
        A.sample(A.SchedulerConfig.make("DDIMScheduler", timestep_spacing="trailing", rescale_betas_zero_snr=True), GAUSS, x, 20)


def test_ddim_linspace_steps_off_its_own_grid():
    """t - T // N is not the next kept index for 'linspace': the outputs differ from DDIM on the kept grid by far more than round-off."""
    cfg = A.SchedulerConfig.make("DDIMScheduler", timestep_spacing="linspace")
    sched, proc, grid = _setup(cfg, 10)
    ts = sched.timesteps.tolist()
    assert any(a - T // 10 != b for a, b in zip(ts[:-1], ts[1:]))
    x = _x()
    out = A.sample(cfg, GAUSS, x, 10).samples
    ref = S.ddim(ExactModel(GAUSS, proc, "eps"), proc, x, grid)
    assert float((out - ref).abs().max()) > 1e-3


def test_ddim_eta1_equals_diffcheck_in_law():
    cfg = A.SchedulerConfig.make("DDIMScheduler", timestep_spacing="trailing", step_options={"eta": 1.0})
    sched, proc, grid = _setup(cfg, 20)
    x = _x()
    out = A.sample(cfg, GAUSS, x, 20, noise=torch.Generator().manual_seed(3)).samples
    ref = S.ddim(ExactModel(GAUSS, proc, "eps"), proc, x, grid, eta=1.0, generator=torch.Generator().manual_seed(3))
    assert float((out - ref).abs().max()) <= FLOAT64_TOL


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
def test_ddpm_equals_ancestral_with_the_same_noise(variance, prediction):
    cfg = A.SchedulerConfig.make("DDPMScheduler", timestep_spacing="leading", variance_type=variance, prediction_type=prediction)
    sched, proc, grid = _setup(cfg, 20)
    x = _x()
    run = A.sample(cfg, GAUSS, x, 20, noise=torch.Generator().manual_seed(7))
    ref = S.ddpm_ancestral(ExactModel(GAUSS, proc, cfg.prediction), proc, x, grid, generator=torch.Generator().manual_seed(7),
                           variance="beta_tilde" if variance == "fixed_small" else "beta")
    assert run.draws == 19  # no draw on the step from timestep 0 into the data
    assert float((run.samples - ref).abs().max()) <= FLOAT64_TOL


def test_ddpm_trailing_adds_noise_on_the_step_into_the_data():
    """With trailing spacing the last timestep is > 0, so DDPM draws noise into sigma = 0: variance 1 - alpha_bar (fixed_large)."""
    x = _x(4)
    out = {}
    for variance in ("fixed_small", "fixed_large"):
        cfg = A.SchedulerConfig.make("DDPMScheduler", timestep_spacing="trailing", variance_type=variance)
        sched, proc, grid = _setup(cfg, 20)
        # noise that is zero except at the last draw, where it is 1: the output moves by the last step's std
        calls = []

        def last_only(like, calls=calls):
            calls.append(1)
            return torch.ones_like(like) if len(calls) == 20 else torch.zeros_like(like)

        base = A.sample(cfg, GAUSS, x, 20, noise=lambda like: torch.zeros_like(like)).samples
        bumped = A.sample(cfg, GAUSS, x, 20, noise=last_only).samples
        out[variance] = float((bumped - base).abs().max())
        last = int(sched.timesteps[-1])
        assert last == T // 20 - 1
    assert abs(out["fixed_large"] - float((1.0 - sched.alphas_cumprod[last]).sqrt())) <= FLOAT64_TOL
    # beta_tilde = 0 there, floored at 1e-20 in variance: std 1e-10, added to O(1) values (their ulp is ~4e-16)
    assert abs(out["fixed_small"] - 1e-10) <= 1e-15


@pytest.mark.parametrize("spacing", ["linspace", "trailing", "leading"])
@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_euler_family_equals_ddim_in_x_over_alpha(spacing, prediction):
    """Euler on x / alpha in sigma is DDIM (Song et al. 2020, Prop. 1); Euler ancestral is DDIM with eta = 1."""
    N = 20
    x = _x()
    for scheduler, eta in (("EulerDiscreteScheduler", 0.0), ("EulerAncestralDiscreteScheduler", 1.0)):
        cfg = A.SchedulerConfig.make(scheduler, timestep_spacing=spacing, prediction_type=prediction)
        sched, proc, grid = _setup(cfg, N)
        x_T = x * float(sched.init_noise_sigma)
        out = A.sample(cfg, GAUSS, x_T, N, noise=torch.Generator().manual_seed(2)).samples
        a0 = float(proc.alpha(grid[0]))
        ref = S.ddim(ExactModel(GAUSS, proc, cfg.prediction), proc, x_T * a0, grid, eta=eta, generator=torch.Generator().manual_seed(2))
        assert float((out - ref).abs().max()) <= FLOAT32_TOL, scheduler


@pytest.mark.parametrize("options", [{}, {"prediction_type": "v_prediction"}, {"use_karras_sigmas": True, "prediction_type": "v_prediction"}])
def test_heun_equals_heun_in_sigma(options):
    cfg = A.SchedulerConfig.make("HeunDiscreteScheduler", **options)
    sched, proc, grid = _setup(cfg, 15)
    sig = torch.tensor(A.consecutive_unique([float(s) for s in sched.sigmas]), dtype=torch.float64)
    x_T = _x() * float(sched.init_noise_sigma)
    out = A.sample(cfg, GAUSS, x_T, 15).samples
    lve = LinearVE(float(sig[0]))
    ref = S.heun_ode(ExactModel(GAUSS, lve, "eps"), lve, x_T, sig / sig[0])
    assert float((out - ref).abs().max()) <= FLOAT32_TOL


@pytest.mark.parametrize("algorithm, eta", [("dpmsolver++", 0.0), ("sde-dpmsolver++", 1.0)])
def test_first_order_dpm_solver_is_ddim(algorithm, eta):
    cfg = A.SchedulerConfig.make("DPMSolverMultistepScheduler", solver_order=1, algorithm_type=algorithm)
    sched, proc, grid = _setup(cfg, 20)
    x = _x()
    out = A.sample(cfg, GAUSS, x, 20, noise=torch.Generator().manual_seed(9)).samples
    ref = S.ddim(ExactModel(GAUSS, proc, "eps"), proc, x, grid, eta=eta, generator=torch.Generator().manual_seed(9))
    assert float((out - ref).abs().max()) <= FLOAT32_TOL


def test_score_sde_ve_predictor_is_reverse_diffusion_up_to_its_sigma_gap():
    """The model is given the continuous sigma, the predictor steps on the discrete ladder: they differ by ~1e-4 relative."""
    cfg = A.SchedulerConfig.make("ScoreSdeVeScheduler", correct_steps=0)
    sched, proc, grid = _setup(cfg, 100)
    idx = (sched.timesteps * 99).long()
    gap = float((sched.sigmas.double() / sched.discrete_sigmas.double()[idx] - 1.0).abs().max())
    assert 1e-5 < gap < 1e-3
    x_T = _x() * float(sched.init_noise_sigma)
    out = A.sample(cfg, GAUSS, x_T, 100, noise=torch.Generator().manual_seed(4)).samples
    ref = S.reverse_diffusion(ExactModel(GAUSS, proc, "score"), proc, x_T, grid, generator=torch.Generator().manual_seed(4))
    diff = float((out - ref).abs().max())
    assert 1e-8 < diff < 50 * gap  # the outputs (O(1)) move by a few times the relative sigma gap, not more


# -- learned range: the exact variance makes DDPM exact in law -----------------------------------------------
def test_learned_range_with_exact_variance_is_exact_in_law(monkeypatch):
    iso = toy.single_gaussian((1.0, -0.5), 0.25)
    cfg = A.SchedulerConfig.make("DDPMScheduler", variance_type="learned_range", timestep_spacing="trailing")
    sched, proc, grid = _setup(cfg, 10)
    start = proc.marginal(iso, grid[0])
    run = lambda x, nz: A.sample(cfg, iso, x, 10, noise=nz).samples
    mean, cov = affine_law(run, start.mean(), start.covariance())
    assert float((mean - iso.mean()).abs().max()) <= 1e-10
    assert float((cov - iso.covariance()).abs().max()) <= 1e-10
    # the same variance output computed for the un-respaced step (s = t - 1/T) is not exact: the check can fail
    exact = A.learned_range_output
    monkeypatch.setattr(A.run, "learned_range_output", lambda m, x, t, s: exact(m, x, t, max(t - 1.0 / T, 0.0)))
    mean, cov = affine_law(run, start.mean(), start.covariance())
    assert float((cov - iso.covariance()).abs().max()) > 1e-3


# -- noise routing and input errors ---------------------------------------------------------------------------
def test_noise_is_routed_and_required():
    cfg = A.SchedulerConfig.make("EulerAncestralDiscreteScheduler")
    x = _x(3)
    run = A.sample(cfg, GAUSS, x, 8, noise=torch.Generator().manual_seed(0))
    assert run.draws == 8 and len(run.calls) == 8
    with pytest.raises(ValueError, match="noise is required"):
        A.sample(cfg, GAUSS, x, 8)
    # the scheduler's module is left as it was
    module = sys.modules[type(A.build(cfg)).__module__]
    from diffusers.utils.torch_utils import randn_tensor

    assert module.randn_tensor is randn_tensor


def test_missing_diffusers_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(ImportError, match=r"pip install 'diffcheck\[diffusers\]'"):
        A.require_diffusers()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="scheduler"):
        A.SchedulerConfig.make("NoSuchScheduler")
    with pytest.raises(ValueError, match="options"):
        A.SchedulerConfig.make("DDIMScheduler", not_an_option=1)
    with pytest.raises(ValueError, match="step_options"):
        A.SchedulerConfig.make("DDIMScheduler", step_options={"not_an_argument": 1})
    cfg = A.SchedulerConfig.make("DDIMScheduler")
    with pytest.raises(ValueError, match="x"):
        A.sample(cfg, GAUSS, torch.zeros(2, dtype=torch.float64), 5)
    with pytest.raises(ValueError, match="steps"):
        A.sample(cfg, GAUSS, _x(2), 0)
    with pytest.raises(ValueError, match="time_from"):
        A.sample(cfg, GAUSS, _x(2), 5, time_from="sigma")
    with pytest.raises(ValueError, match="time_from"):
        A.sample(cfg, GAUSS, _x(2), 5, time_from="seconds")
    with pytest.raises(ValueError, match="index_shift"):
        A.sample(A.SchedulerConfig.make("ScoreSdeVeScheduler"), GAUSS, _x(2), 5, noise=torch.Generator(), index_shift=1)
    with pytest.raises(TypeError, match="config"):
        A.build("DDIMScheduler")
