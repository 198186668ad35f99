"""How close diffusers' schedulers come to the exact answer, beside diffcheck's samplers on the same grids.

For each configuration and step count the output law is measured without Monte Carlo on
a single-Gaussian target (every step is affine there; ``affine_law``): its distance from
the exact data law (started from the exact marginal at the scheduler's first time, and
from the scheduler's own prior as a pipeline starts), and from the exact law at the time
its last step lands on. The same numbers are measured for a diffcheck sampler on the same
grid, and the distance between the two output laws says whether they agree. Orders come
from log-log fits, against the number of steps, of the solver error: the law of the state
the last step starts from against the exact law at its noise level. Two-sample tests on
mixture presets check the non-Gaussian case, for the scheduler and the diffcheck sampler. Probes of known traps add findings: each states what
the exact answer is, what was measured and the size of the difference.

The distance of a law N(m, C) from N(m*, C*) is |m - m*| / sqrt(tr C*) + |C - C*|_F / tr C*,
invariant to the scale of the data.
"""

from __future__ import annotations

import argparse
import datetime
import math
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from tqdm import tqdm

import toy
from toy.mixture import GaussianMixture

from .. import samplers as S
from ..exact import ExactModel
from ..io import write_json
from ..process.continuous import LinearVE
from ..samplers.base import SamplingError
from ..testing import stats as st
from ..testing.gaussian_law import NotAffineError, affine_law
from . import diffusers as A

__all__ = [
    "DEFAULT_STEPS",
    "QUICK_STEPS",
    "Comparator",
    "Case",
    "cases",
    "quick_cases",
    "law_distance",
    "measure",
    "verify_diffusers",
    "format_report",
]

DEFAULT_STEPS = (10, 20, 50, 100, 200)
QUICK_STEPS = (5, 10, 20)
TARGET_MEAN = (1.0, -0.5)
TARGET_COV = ((1.0, 0.6), (0.6, 0.5))
FLOAT64_AFFINE_RTOL = 1e-8
FLOAT32_AFFINE_RTOL = 2e-5
FLOAT64_AGREEMENT = 1e-9  # float64 tables and states: differences are round-off over <= 200 steps
FLOAT32_AGREEMENT = 2e-5  # float32 sigmas or states: 2^-24 relative per rounding, over <= 200 steps
ORDER_SLACK = 0.3
ORDER_FLOOR = {"float64": 1e-10, "float32": 3e-6}  # errors below this are round-off, left out of order fits


def law_distance(mean: torch.Tensor, cov: torch.Tensor, ref_mean: torch.Tensor, ref_cov: torch.Tensor) -> float:
    """|m - m*| / sqrt(tr C*) + |C - C*|_F / tr C*: a scale-free distance between Gaussian laws."""
    tr = float(torch.trace(ref_cov))
    return float((mean - ref_mean).norm()) / math.sqrt(tr) + float((cov - ref_cov).norm()) / tr


# -- comparators: diffcheck's samplers on the grid a scheduler walks ----------------------------------
@dataclass(frozen=True)
class Comparator:
    """A diffcheck sampler run on a scheduler's grid; ``space`` says which process it runs on.

    ``space="process"``: the scheduler's own process (the DDPM table or VE); inputs in
    sigma-space (x / alpha) are scaled in and out. ``space="sigma"``: ``LinearVE`` on the
    scheduler's sigmas, i.e. the ODE in x / alpha with sigma as time (Karras et al. 2022).
    """

    name: str
    description: str
    run: Callable[..., torch.Tensor]
    space: str = "process"
    prediction: str | None = None  # None: the scheduler's own


def _ddim(eta: float) -> Comparator:
    return Comparator(f"ddim(eta={eta:g})", f"diffcheck.samplers.ddim with eta = {eta:g} on the scheduler's grid",
                      lambda m, p, x, g, nz: S.ddim(m, p, x, g, eta=eta, generator=nz))


def _ddpm(variance: str) -> Comparator:
    return Comparator(f"ddpm_ancestral({variance})", f"diffcheck.samplers.ddpm_ancestral, variance {variance}, on the scheduler's grid",
                      lambda m, p, x, g, nz: S.ddpm_ancestral(m, p, x, g, generator=nz, variance=variance))


HEUN_SIGMA = Comparator("heun_ode(sigma)", "diffcheck.samplers.heun_ode on LinearVE with the scheduler's sigmas as times",
                        lambda m, p, x, g, nz: S.heun_ode(m, p, x, g), space="sigma", prediction="eps")
REVERSE_DIFFUSION = Comparator("reverse_diffusion", "diffcheck.samplers.reverse_diffusion on VE (exact kernel) over the scheduler's ladder",
                               lambda m, p, x, g, nz: S.reverse_diffusion(m, p, x, g, generator=nz))


def _pc(snr: float) -> Comparator:
    return Comparator(f"predictor_corrector(snr={snr:g}, norm=batch)",
                      "diffcheck.samplers.predictor_corrector (reverse diffusion + Langevin, batch-averaged norms) over the ladder",
                      lambda m, p, x, g, nz: S.predictor_corrector(m, p, x, g, generator=nz, snr=snr, norm="batch"))


@dataclass(frozen=True)
class Case:
    """A configuration to measure: the scheduler, its diffcheck comparator and what is expected of it.

    ``expect_match``: the two run the same algorithm on the same grid, so their output laws
    must agree to round-off. ``order``: the convergence order expected of the scheduler
    (global order for ODE solvers, weak order for chains). ``arithmetic``: "float32" for
    schedulers that hold sigmas or states in float32 whatever the input dtype.
    ``affine``: False where the step depends on the state non-linearly (batch-averaged
    norms), so only Monte Carlo applies.
    """

    name: str
    config: A.SchedulerConfig
    comparator: Comparator
    expect_match: bool
    order: float
    arithmetic: str = "float64"
    affine: bool = True
    steps_scale: int = 1  # scheduler steps = steps_scale * each entry of the report's steps
    note: str = ""


def _c(scheduler: str, step_options: dict | None = None, **options: Any) -> A.SchedulerConfig:
    return A.SchedulerConfig.make(scheduler, step_options=step_options, **options)


def cases() -> list[Case]:
    """The configurations of the full report (T = 1000 linear betas unless named)."""
    ddim0, ddim1 = _ddim(0.0), _ddim(1.0)
    return [
        Case("ddim-trailing-eps", _c("DDIMScheduler", timestep_spacing="trailing"), ddim0, True, 1.0),
        Case("ddim-trailing-v", _c("DDIMScheduler", timestep_spacing="trailing", prediction_type="v_prediction"), ddim0, True, 1.0),
        Case("ddim-trailing-x0", _c("DDIMScheduler", timestep_spacing="trailing", prediction_type="sample"), ddim0, True, 1.0),
        Case("ddim-trailing-eta1", _c("DDIMScheduler", {"eta": 1.0}, timestep_spacing="trailing"), ddim1, True, 1.0),
        Case("ddim-leading-sd", _c("DDIMScheduler", timestep_spacing="leading", steps_offset=1, set_alpha_to_one=False,
                                   beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012), ddim0, True, 1.0,
             note="Stable Diffusion's configuration: scaled_linear betas, leading spacing, steps_offset 1, final alpha_bar_0"),
        Case("ddim-linspace-eps", _c("DDIMScheduler", timestep_spacing="linspace"), ddim0, True, 1.0),
        Case("ddim-cosine-trailing", _c("DDIMScheduler", timestep_spacing="trailing", beta_schedule="squaredcos_cap_v2"), ddim0, True, 1.0),
        Case("ddim-zero-snr-v", _c("DDIMScheduler", timestep_spacing="trailing", prediction_type="v_prediction",
                                   rescale_betas_zero_snr=True), ddim0, True, 1.0),
        Case("ddpm-leading-small", _c("DDPMScheduler", timestep_spacing="leading"), _ddpm("beta_tilde"), True, 1.0),
        Case("ddpm-trailing-small-v", _c("DDPMScheduler", timestep_spacing="trailing", prediction_type="v_prediction"),
             _ddpm("beta_tilde"), True, 1.0),
        Case("ddpm-trailing-large", _c("DDPMScheduler", timestep_spacing="trailing", variance_type="fixed_large"),
             _ddpm("beta"), True, 1.0),
        Case("euler-linspace-eps", _c("EulerDiscreteScheduler"), ddim0, True, 1.0, "float32",
             note="Euler in sigma on x / alpha is DDIM (Song et al. 2020, Prop. 1)"),
        Case("euler-trailing-v", _c("EulerDiscreteScheduler", timestep_spacing="trailing", prediction_type="v_prediction"),
             ddim0, True, 1.0, "float32"),
        Case("euler-karras-eps", _c("EulerDiscreteScheduler", use_karras_sigmas=True), ddim0, True, 1.0, "float32"),
        Case("euler-ancestral-linspace-eps", _c("EulerAncestralDiscreteScheduler"), ddim1, True, 1.0, "float32",
             note="Euler ancestral's sigma_up, sigma_down step is DDIM with eta = 1 in x / alpha"),
        Case("euler-ancestral-trailing-v", _c("EulerAncestralDiscreteScheduler", timestep_spacing="trailing",
                                              prediction_type="v_prediction"), ddim1, True, 1.0, "float32"),
        Case("heun-linspace-eps", _c("HeunDiscreteScheduler"), HEUN_SIGMA, True, 2.0, "float32"),
        Case("heun-linspace-v", _c("HeunDiscreteScheduler", prediction_type="v_prediction"), HEUN_SIGMA, True, 2.0, "float32"),
        Case("heun-karras-v", _c("HeunDiscreteScheduler", use_karras_sigmas=True, prediction_type="v_prediction"),
             HEUN_SIGMA, True, 2.0, "float32"),
        Case("dpmpp-2m-eps", _c("DPMSolverMultistepScheduler"), ddim0, False, 2.0, "float32"),
        Case("dpmpp-2m-v", _c("DPMSolverMultistepScheduler", prediction_type="v_prediction"), ddim0, False, 2.0, "float32"),
        Case("dpmpp-2m-karras-eps", _c("DPMSolverMultistepScheduler", use_karras_sigmas=True), ddim0, False, 2.0, "float32"),
        Case("dpmpp-3m-eps", _c("DPMSolverMultistepScheduler", solver_order=3), ddim0, False, 3.0, "float32"),
        Case("dpmpp-1-eps", _c("DPMSolverMultistepScheduler", solver_order=1), ddim0, True, 1.0, "float32",
             note="DPM-Solver-1 is DDIM (Lu et al. 2022)"),
        Case("sde-dpmpp-2m-eps", _c("DPMSolverMultistepScheduler", algorithm_type="sde-dpmsolver++"), ddim1, False, 1.0, "float32"),
        Case("sde-dpmpp-1-eps", _c("DPMSolverMultistepScheduler", algorithm_type="sde-dpmsolver++", solver_order=1),
             ddim1, True, 1.0, "float32", note="SDE-DPM-Solver++-1 is DDIM with eta = 1"),
        Case("pndm-leading-prk", _c("PNDMScheduler"), ddim0, False, 1.0,
             note="diffusers' defaults: leading spacing, PRK warm-up, final alpha_bar_0; no global order is derived for "
                  "diffusers' PNDM, so only convergence (order >= 1) is expected"),
        Case("pndm-trailing-plms", _c("PNDMScheduler", timestep_spacing="trailing", skip_prk_steps=True, set_alpha_to_one=True),
             ddim0, False, 1.0),
        Case("pndm-trailing-plms-v", _c("PNDMScheduler", timestep_spacing="trailing", skip_prk_steps=True, set_alpha_to_one=True,
                                        prediction_type="v_prediction"), ddim0, False, 1.0),
        Case("score-sde-ve-predictor", _c("ScoreSdeVeScheduler", correct_steps=0), REVERSE_DIFFUSION, True, 1.0,
             steps_scale=5, note="the ladder runs from sigma_max = 1348 to 0.01: 5 scheduler steps per report step"),
        Case("score-sde-ve-pc", _c("ScoreSdeVeScheduler"), _pc(0.15), True, 1.0, affine=False, steps_scale=5),
    ]


QUICK = ("ddim-trailing-v", "ddim-linspace-eps", "ddpm-trailing-large", "euler-trailing-v", "euler-ancestral-linspace-eps",
         "heun-linspace-v", "dpmpp-2m-eps", "pndm-trailing-plms")


def quick_cases() -> list[Case]:
    """A representative subset for the tests: every DDPM-table scheduler family once, two traps included.

    score-SDE-VE needs hundreds of steps on its ladder and is left to the full report.
    """
    return [c for c in cases() if c.name in QUICK]


# -- one configuration at one step count ------------------------------------------------------------
@dataclass
class Setup:
    """The scheduler after ``set_timesteps``, its process, grid, and the laws a run starts from and ends at."""

    scheduler: Any
    process: Any
    kind: str
    grid: torch.Tensor
    start: Any  # exact law of the first state, in the scheduler's sample space
    prior_std: float
    end: Any  # exact law at the grid's last time, in the scheduler's sample space
    sigmas: list[float] | None


def setup(case: Case, mixture: GaussianMixture, steps: int) -> Setup:
    """Build the scheduler of ``case`` for ``steps`` and the exact laws at the ends of its walk."""
    sched = A.build(case.config)
    process = A.process_for(sched)
    A.set_timesteps(sched, steps)
    kind = A.kind(sched)
    grid = A.walk_grid(sched, process)
    sigmas = None
    if kind == "sigma":
        sigmas = A._consecutive_unique([float(s) for s in sched.sigmas])
        start, end = mixture.noised(1.0, sigmas[0]), mixture.noised(1.0, sigmas[-1])
    elif kind == "ve":
        start, end = mixture.noised(1.0, float(sched.sigmas[0])), mixture.noised(1.0, 0.0)
    else:
        start = process.marginal(mixture, grid[0])
        end = process.marginal(mixture, grid[-1])
    return Setup(sched, process, kind, grid, start, float(sched.init_noise_sigma), end, sigmas)


def run_scheduler(case: Case, mixture: GaussianMixture, x: torch.Tensor, steps: int, noise: Any, index_shift: int = 0,
                  time_from: str = "timestep") -> A.Run:
    """The scheduler's output from ``x`` with the exact model."""
    return A.sample(case.config, mixture, x, steps, noise=noise, index_shift=index_shift, time_from=time_from)


def run_comparator(case: Case, su: Setup, mixture: GaussianMixture, x: torch.Tensor, noise: Any, keep: int | None = None) -> torch.Tensor:
    """The comparator's output from ``x`` (in the scheduler's sample space), in the same space.

    ``keep`` walks only the first ``keep`` times of the grid (the state a last step starts from).
    """
    comp = case.comparator
    pred = comp.prediction or case.config.prediction
    grid = su.grid if keep is None else su.grid[:keep]
    if comp.space == "sigma":
        sig = torch.tensor(su.sigmas if keep is None else su.sigmas[:keep], dtype=torch.float64)
        proc = LinearVE(float(sig[0]))
        return comp.run(ExactModel(mixture, proc, pred), proc, x, sig / sig[0], noise)
    a0 = A.sample_space_alpha(su.scheduler, su.process, float(grid[0])) if su.kind == "sigma" else 1.0
    a1 = A.sample_space_alpha(su.scheduler, su.process, float(grid[-1])) if su.kind == "sigma" else 1.0
    return comp.run(ExactModel(mixture, su.process, pred), su.process, x * a0, grid, noise) / a1


def _state_law(su: Setup, mixture: GaussianMixture, call: A.Call):
    """The exact law, in the scheduler's sample space, of the state a model call was made at."""
    if su.kind == "index":
        return su.process.marginal(mixture, call.state_time)
    a = float(su.process.alpha(torch.tensor(call.state_time, dtype=torch.float64)))
    s = float(su.process.sigma(torch.tensor(call.state_time, dtype=torch.float64)))
    return mixture.noised(1.0, s / a)


def measure(case: Case, steps: int, *, index_shift: int = 0, target: GaussianMixture | None = None) -> dict:
    """Noise-free errors of the scheduler and its comparator at ``steps`` on a Gaussian target (JSON-safe).

    ``error``: the output law's distance from the data law, started from the exact marginal at
    the first time; ``error_prior``: the same started from the scheduler's prior N(0,
    init_noise_sigma^2 I); ``error_end``: distance from the exact law where the last step lands;
    ``error_solver``: the state the last step starts from against the exact law at its noise
    level (the discretisation error of all steps but the last, whose order is fitted).
    """
    m = target or toy.single_gaussian(TARGET_MEAN, TARGET_COV)
    n_steps = steps * case.steps_scale
    su = setup(case, m, n_steps)
    rtol = FLOAT64_AFFINE_RTOL if case.arithmetic == "float64" else FLOAT32_AFFINE_RTOL
    data_mean, data_cov = m.mean(), m.covariance()
    end_mean, end_cov = su.end.mean(), su.end.covariance()
    s_mean, s_cov = su.start.mean(), su.start.covariance()
    p_mean = torch.zeros_like(s_mean)
    p_cov = su.prior_std**2 * torch.eye(s_mean.numel(), dtype=torch.float64)
    calls: list[A.Call] = []

    def dif(x, nz):
        r = run_scheduler(case, m, x, n_steps, nz, index_shift)
        calls[:] = r.calls
        return r.samples

    def dif_last(x, nz):
        return run_scheduler(case, m, x, n_steps, nz, index_shift).before_last

    row: dict[str, Any] = {"steps": n_steps, "first_time": float(su.grid[0]), "last_time": float(su.grid[-1])}
    try:
        mean, cov = affine_law(dif, s_mean, s_cov, rtol=rtol)
    except (SamplingError, NotAffineError) as err:  # non-finite samples; a step that is not affine on a Gaussian target
        row.update(failed=f"{type(err).__name__}: {err}")
        return row
    pmean, pcov = affine_law(dif, p_mean, p_cov, verify=False)
    lmean, lcov = affine_law(dif_last, s_mean, s_cov, verify=False)
    state = _state_law(su, m, calls[-1])
    row.update(nfe=len(calls), error=law_distance(mean, cov, data_mean, data_cov),
               error_end=law_distance(mean, cov, end_mean, end_cov),
               error_prior=law_distance(pmean, pcov, data_mean, data_cov),
               error_solver=law_distance(lmean, lcov, state.mean(), state.covariance()),
               last_state_time=calls[-1].state_time)
    cmean, ccov = affine_law(lambda x, nz: run_comparator(case, su, m, x, nz), s_mean, s_cov, rtol=FLOAT64_AFFINE_RTOL)
    cpmean, cpcov = affine_law(lambda x, nz: run_comparator(case, su, m, x, nz), p_mean, p_cov, verify=False)
    comp = {"error": law_distance(cmean, ccov, data_mean, data_cov), "error_end": law_distance(cmean, ccov, end_mean, end_cov),
            "error_prior": law_distance(cpmean, cpcov, data_mean, data_cov), "error_solver": None}
    keep = int((su.grid >= calls[-1].state_time - 1e-12).sum())
    if keep >= 2 and abs(float(su.grid[keep - 1]) - calls[-1].state_time) < 1e-9:
        kmean, kcov = affine_law(lambda x, nz: run_comparator(case, su, m, x, nz, keep), s_mean, s_cov, verify=False)
        comp["error_solver"] = law_distance(kmean, kcov, state.mean(), state.covariance())
    row["diffcheck"] = comp
    row["agreement"] = law_distance(mean, cov, cmean, ccov)
    return row


def measure_monte_carlo(case: Case, steps: int, n: int, seed: int, target: GaussianMixture | None = None) -> dict:
    """Errors estimated from ``n`` samples where the scheduler is not affine, with the Monte Carlo floor of the estimate."""
    m = target or toy.single_gaussian(TARGET_MEAN, TARGET_COV)
    n_steps = steps * case.steps_scale
    su = setup(case, m, n_steps)
    gen = torch.Generator().manual_seed(seed)
    x = su.start.sample(n, gen)
    y = run_scheduler(case, m, x, n_steps, torch.Generator().manual_seed(seed + 1)).samples
    z = run_comparator(case, su, m, x, torch.Generator().manual_seed(seed + 1))
    data_mean, data_cov = m.mean(), m.covariance()
    tr = float(torch.trace(data_cov))
    # expected distance of an n-sample estimate from the truth: E|m_hat - m| ~ sqrt(tr C / n),
    # E|C_hat - C|_F ~ sqrt(sum_ij (C_ii C_jj + C_ij^2) / n)
    diag = torch.diagonal(data_cov)
    floor = math.sqrt(tr / n) / math.sqrt(tr) + math.sqrt(float((diag[:, None] * diag[None, :] + data_cov**2).sum()) / n) / tr
    return {"steps": n_steps, "n": n, "error": law_distance(y.mean(0), torch.cov(y.T), data_mean, data_cov),
            "diffcheck": {"error": law_distance(z.mean(0), torch.cov(z.T), data_mean, data_cov)},
            "monte_carlo_floor": floor, "agreement": law_distance(y.mean(0), torch.cov(y.T), z.mean(0), torch.cov(z.T))}


def two_sample(case: Case, preset: str, steps: int, n: int, alpha: float, seed: int, index_shift: int = 0) -> dict:
    """Two-sample tests of the scheduler's and the comparator's samples (from the exact marginal at the first time)
    against an independent sample of the exact mixture (4 n points), each at false-alarm rate ``alpha``."""
    m = getattr(toy, preset)()
    n_steps = steps * case.steps_scale
    su = setup(case, m, n_steps)
    x = su.start.sample(n, torch.Generator().manual_seed(seed))
    ref = m.sample(4 * n, torch.Generator().manual_seed(seed + 2))
    out = {"preset": preset, "steps": n_steps, "n": n, "reference_n": 4 * n, "alpha": alpha}
    try:
        y = run_scheduler(case, m, x, n_steps, torch.Generator().manual_seed(seed + 1), index_shift).samples
    except SamplingError as err:
        return dict(out, passed=False, failed=str(err))
    res = st.two_sample_test(y, ref, alpha=alpha, generator=torch.Generator().manual_seed(seed + 3), features=m.log_prob)
    z = run_comparator(case, su, m, x, torch.Generator().manual_seed(seed + 1))
    dc = st.two_sample_test(z, ref, alpha=alpha, generator=torch.Generator().manual_seed(seed + 3), features=m.log_prob)
    return dict(out, passed=bool(res.passed), p_value=res.p_value, statistic=res.statistic,
                diffcheck={"passed": bool(dc.passed), "p_value": dc.p_value, "statistic": dc.statistic})


def _fit(steps: Sequence[int], errors: Sequence[float | None], floor: float) -> dict | None:
    """Order fit over the points above round-off (None when fewer than 2 remain)."""
    pts = [(s, e) for s, e in zip(steps, errors) if e is not None and e > floor]
    if len(pts) < 2:
        return None
    fit = st.fit_order([p[0] for p in pts], [p[1] for p in pts])
    return {"order": fit.order, "stderr": fit.stderr, "points": len(pts)}


def _verdict(case: Case, rows: list[dict], orders: dict) -> tuple[str, list[str]]:
    """"ok", "discrepancy" (no agreement where expected, or no convergence) or "failed" (non-finite samples)."""
    failed = [r["failed"] for r in rows if "failed" in r]
    if failed:
        return "failed", failed[:1]
    notes, verdict = [], "ok"
    tol = FLOAT64_AGREEMENT if case.arithmetic == "float64" else FLOAT32_AGREEMENT
    worst = max(r["agreement"] for r in rows)
    if case.expect_match and worst > tol:
        verdict = "discrepancy"
        notes.append(f"runs the algorithm of {case.comparator.name} on the same grid, yet the output laws differ by up to {worst:.3g} (round-off tolerance {tol:g})")
    conv = _fit([r["steps"] for r in rows], [r["error_end"] for r in rows], ORDER_FLOOR[case.arithmetic])
    if conv is not None and conv["order"] < 0.5:
        verdict = "discrepancy"
        notes.append(f"does not converge to the exact law where its last step lands (fitted order {conv['order']:.2f})")
    fit = orders.get("diffusers")
    if fit is not None and fit["order"] < case.order - ORDER_SLACK:
        notes.append(f"solver error falls at order {fit['order']:.2f} over these steps, nominal {case.order:g}")
    return verdict, notes


def measure_case(case: Case, steps: Sequence[int], *, mc_n: int = 4000, seed: int = 0, index_shift: int = 0) -> dict:
    """All step counts of one configuration, its fitted orders and its verdict (JSON-safe)."""
    t0 = time.perf_counter()
    orders: dict[str, Any] = {}
    if case.affine:
        rows = [measure(case, s, index_shift=index_shift) for s in steps]
        if all("failed" not in r for r in rows):
            n_steps = [r["steps"] for r in rows]
            orders["diffusers"] = _fit(n_steps, [r["error_solver"] for r in rows], ORDER_FLOOR[case.arithmetic])
            orders["diffcheck"] = _fit(n_steps, [r["diffcheck"]["error_solver"] for r in rows], ORDER_FLOOR["float64"])
        verdict, notes = _verdict(case, rows, orders)
    else:
        rows = [measure_monte_carlo(case, s, mc_n, seed + 17 * i) for i, s in enumerate(steps)]
        floor = 3.0 * max(r["monte_carlo_floor"] for r in rows)
        n_steps = [r["steps"] for r in rows]
        orders["diffusers"] = _fit(n_steps, [r["error"] for r in rows], floor)
        orders["diffcheck"] = _fit(n_steps, [r["diffcheck"]["error"] for r in rows], floor)
        verdict = "monte-carlo"
        notes = [f"not affine in its start and noise (batch-averaged corrector norms): Monte Carlo estimates from {mc_n} samples, "
                 f"whose own error is about {floor / 3:.3g}; points below three times that are left out of order fits"]
    return {
        "name": case.name,
        "scheduler": case.config.to_json(),
        "process": repr(A.process_for(A.build(case.config))),
        "prediction": case.config.prediction,
        "comparator": {"name": case.comparator.name, "description": case.comparator.description},
        "expect_match": case.expect_match,
        "nominal_order": case.order,
        "arithmetic": case.arithmetic,
        "note": case.note,
        "rows": rows,
        "orders": orders,
        "verdict": verdict,
        "notes": notes,
        "seconds": round(time.perf_counter() - t0, 3),
    }


# -- probes of known traps ------------------------------------------------------------------------------
NARROW_STD = 0.015


def _narrow() -> GaussianMixture:
    return toy.single_gaussian((1.0, 0.0), NARROW_STD**2)


def _finding(fid: str, title: str, discrepancy: bool, expected: Any, measured: Any, size: Any, detail: str,
             configurations: Sequence[str] = ()) -> dict:
    return {"id": fid, "title": title, "discrepancy": bool(discrepancy), "expected": expected, "measured": measured,
            "size": size, "detail": detail, "configurations": list(configurations)}


def _case(name: str, config: A.SchedulerConfig, comparator: Comparator = None, expect_match: bool = False,
          order: float = 1.0, arithmetic: str = "float64") -> Case:
    return Case(name, config, comparator or _ddim(0.0), expect_match, order, arithmetic)


_SCHEDULES = {"linear": {}, "scaled_linear": {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}}


def probe_leading(steps: Sequence[int], schedules: Sequence[str] = ("linear", "scaled_linear")) -> dict:
    """'leading' spacing never evaluates the last training index, so it starts where x_T is not the prior's."""
    out, worst = [], 0.0
    for label in schedules:
        kw = dict(_SCHEDULES[label], **({"steps_offset": 1} if label == "scaled_linear" else {}))
        for n in steps:
            lead = measure(_case("lead", _c("DDIMScheduler", timestep_spacing="leading", **kw)), n)
            trail = measure(_case("trail", _c("DDIMScheduler", timestep_spacing="trailing", **{k: v for k, v in kw.items() if k != "steps_offset"})), n)
            sched = A.build(_c("DDIMScheduler", timestep_spacing="leading", **kw))
            A.set_timesteps(sched, n)
            first = int(sched.timesteps[0])
            ab = sched.alphas_cumprod
            out.append({"schedule": label, "steps": n, "first_timestep": first, "last_training_index": len(ab) - 1,
                        "alpha_bar_first": float(ab[first]), "alpha_bar_T": float(ab[-1]),
                        "leading_error": lead["error"], "leading_error_prior": lead["error_prior"],
                        "trailing_error": trail["error"], "trailing_error_prior": trail["error_prior"]})
            worst = max(worst, lead["error_prior"] - lead["error"])
    return _finding(
        "leading-spacing", "'leading' spacing starts below the last training index, from a marginal that is not the prior",
        any(r["first_timestep"] < r["last_training_index"] for r in out),
        "x_T ~ N(0, I) is (close to) the marginal at the first timestep",
        out, {"largest_extra_error_from_prior": worst},
        "error: output law from the exact marginal at the first timestep; error_prior: from N(0, I) as a pipeline starts. "
        "The difference is the cost of starting from a law that is not the marginal there.",
        ["DDIMScheduler(timestep_spacing=leading)"])


def probe_terminal_snr(steps: int) -> dict:
    """Non-zero terminal SNR: the prior is not the marginal at the last index; zero-SNR rescaling fixes that for v and x0 only."""
    out = []
    for label, kw in (("linear", {}), ("scaled_linear", {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}),
                      ("squaredcos_cap_v2", {"beta_schedule": "squaredcos_cap_v2"})):
        r = measure(_case("t", _c("DDIMScheduler", timestep_spacing="trailing", **kw)), steps)
        z = measure(_case("z", _c("DDIMScheduler", timestep_spacing="trailing", rescale_betas_zero_snr=True,
                                  prediction_type="v_prediction", **kw)), steps)
        sched = A.build(_c("DDIMScheduler", **kw))
        out.append({"schedule": label, "alpha_bar_T": float(sched.alphas_cumprod[-1]), "error": r["error"], "error_prior": r["error_prior"],
                    "zero_snr_v_error": z["error"], "zero_snr_v_error_prior": z["error_prior"]})
    eps = measure(_case("ze", _c("DDIMScheduler", timestep_spacing="trailing", rescale_betas_zero_snr=True)), steps)
    return _finding(
        "terminal-snr", "Non-zero terminal SNR: N(0, I) is not the law at the last index; with zero SNR, epsilon-prediction breaks",
        True, "error_prior = error (the prior is the exact marginal at t = 1)",
        {"schedules": out, "zero_snr_epsilon": eps.get("failed", "finite")},
        {"scaled_linear_extra_error": out[1]["error_prior"] - out[1]["error"]},
        f"DDIM, trailing spacing, {steps} steps. With rescale_betas_zero_snr, alpha_bar_T = 0 and x_T ~ N(0, I) is exact, "
        "but an epsilon model cannot give x_0 = (x - sigma eps) / alpha at alpha = 0.",
        ["DDIMScheduler(timestep_spacing=trailing)", "DDIMScheduler(rescale_betas_zero_snr=True)"])


def probe_final_alpha(steps: Sequence[int]) -> dict:
    """set_alpha_to_one=False (DDIM, PNDM's default) ends at alpha_bar_0, not at the data: visible on a narrow target."""
    out = []
    m = _narrow()
    for name, cfg in (("DDIM set_alpha_to_one=True", _c("DDIMScheduler", timestep_spacing="trailing", set_alpha_to_one=True)),
                      ("DDIM set_alpha_to_one=False", _c("DDIMScheduler", timestep_spacing="trailing", set_alpha_to_one=False)),
                      ("PNDM defaults", _c("PNDMScheduler"))):
        for n in steps:
            r = measure(_case(name, cfg), n, target=m)
            out.append({"configuration": name, "steps": n, "last_time": r["last_time"], "error": r["error"], "error_end": r["error_end"]})
    # the best any sampler ending at alpha_bar_0 can do: the exact marginal there, against the data law
    sched = A.build(_c("DDIMScheduler"))
    proc = A.process_for(sched)
    at = proc.marginal(m, 1.0 / len(sched.alphas_cumprod))
    floor = law_distance(at.mean(), at.covariance(), m.mean(), m.covariance())
    return _finding(
        "final-alpha-bar-0", "set_alpha_to_one=False (and PNDM's default) ends at alpha_bar_0: noise of std sqrt(1 - alpha_bar_0) stays",
        floor > 1e-3, "the output law tends to the data law as steps grow",
        out, {"best_possible_error_at_alpha_bar_0": floor, "alpha_bar_0": float(sched.alphas_cumprod[0])},
        f"Narrow Gaussian target (std {NARROW_STD}). A sampler that ends at alpha_bar_0 can at best output the exact marginal "
        "there, whose distance from the data law is the floor above; 'error_end' measures against that marginal. On this "
        "target the discretisation error of DDIM at these step counts is of the same size, so the leftover noise can "
        "even lower 'error'.", ["DDIMScheduler(set_alpha_to_one=False)", "PNDMScheduler()"])


def probe_zero_snr_patch() -> dict:
    """Euler-type schedulers replace alpha_bar_T = 0 by 2^-24 after rescaling, above alpha_bar_{T-1}."""
    out = []
    for name in ("EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler"):
        sched = A.build(_c(name, rescale_betas_zero_snr=True, float64=False))
        ab = sched.alphas_cumprod.double()
        sig = ((1 - ab) / ab).sqrt()
        row = {"scheduler": name, "alpha_bar_T_minus_1": float(ab[-2]), "alpha_bar_T": float(ab[-1]),
               "sigma_T_minus_1": float(sig[-2]), "sigma_T": float(sig[-1])}
        if name != "DPMSolverMultistepScheduler":
            full = A.build(_c(name, rescale_betas_zero_snr=True, timestep_spacing="trailing", float64=False))
            A.set_timesteps(full, len(ab))
            s = full.sigmas.double()
            row["sigma_increases_in_a_full_walk"] = int((s[1:] > s[:-1]).sum())
        out.append(row)
    return _finding(
        "zero-snr-2^-24", "With rescale_betas_zero_snr, Euler-type schedulers set alpha_bar_T = 2^-24, above alpha_bar_{T-1}",
        any(r["alpha_bar_T"] > r["alpha_bar_T_minus_1"] for r in out), "alpha_bar decreasing in t (sigma increasing)",
        out, {"sigma_T": out[0]["sigma_T"], "sigma_T_minus_1": out[0]["sigma_T_minus_1"]},
        "The patch keeps sigma_T finite, but the table is no longer that of a forward process: the last noise level is "
        "lower than the one before it, so a walk over every index first raises sigma. diffcheck refuses to build a "
        "process from such a table; these configurations are not measured.")


def probe_ddim_previous(steps: Sequence[int], extra: Sequence[int] = (30, 64)) -> dict:
    """DDIM steps to t - T // N, which is not the next kept index for 'linspace' or when N does not divide T (``extra``, trailing)."""
    out = []
    for spacing, n in [("linspace", s) for s in steps] + [("trailing", e) for e in extra]:
        cfg = _c("DDIMScheduler", timestep_spacing=spacing)
        sched = A.build(cfg)
        A.set_timesteps(sched, n)
        ts = [int(v) for v in sched.timesteps]
        stride = len(sched.alphas_cumprod) // n
        gaps = [abs((a - stride) - b) for a, b in zip(ts[:-1], ts[1:])]
        r = measure(_case("d", cfg, _ddim(0.0), True), n)
        out.append({"spacing": spacing, "steps": n, "largest_index_gap": max(gaps), "steps_off_grid": sum(g > 0 for g in gaps),
                    "error": r["error"], "diffcheck_error": r["diffcheck"]["error"], "agreement": r["agreement"]})
    return _finding(
        "ddim-previous-timestep", "DDIM's previous timestep t - T // N is not the next kept index for 'linspace', or when N does not divide T",
        any(r["largest_index_gap"] > 0 for r in out), "each step lands on the next kept timestep (agreement with diffcheck's ddim at round-off)",
        out, {"largest_law_difference": max(r["agreement"] for r in out)},
        "The state is moved to index t - T//N, but the next model call is told the next kept index: the model is evaluated at "
        "a noise level the state does not have.", ["DDIMScheduler(timestep_spacing=linspace)", "DDIMScheduler(timestep_spacing=trailing, N not dividing T)"])


def probe_ddpm_final_noise(steps: Sequence[int], variances: Sequence[str] = ("fixed_large", "fixed_small")) -> dict:
    """DDPM adds noise whenever the timestep is > 0, also on the step into the data (trailing, linspace)."""
    out = []
    for var in variances:
        for n in steps:
            cfg = _c("DDPMScheduler", timestep_spacing="trailing", variance_type=var)
            r = measure(_case("p", cfg, _ddpm("beta" if var == "fixed_large" else "beta_tilde"), True), n, target=_narrow())
            sched = A.build(cfg)
            A.set_timesteps(sched, n)
            last = int(sched.timesteps[-1])
            added = float(1.0 - sched.alphas_cumprod[last]) if var == "fixed_large" else 1e-20
            out.append({"variance_type": var, "steps": n, "last_timestep": last, "noise_variance_added_at_last_step": added,
                        "error": r["error"], "diffcheck_error": r["diffcheck"]["error"], "agreement": r["agreement"]})
    big = [r for r in out if r["variance_type"] == "fixed_large"]
    return _finding(
        "ddpm-noise-into-data", "DDPMScheduler adds noise on the step into the data when the last timestep is > 0 (trailing, linspace)",
        True, "no noise on the step into sigma = 0 (Ho et al. 2020, Algorithm 2)", out,
        {"error_fixed_large": big[-1]["error"], "diffcheck_error_same_grid": big[-1]["diffcheck_error"], "steps": big[-1]["steps"]},
        f"Narrow Gaussian target (std {NARROW_STD}). The test is 'timestep > 0', not 'previous timestep >= 0': fixed_large adds "
        "noise of variance 1 - alpha_bar_t; fixed_small adds std 1e-10 (its variance floor).", ["DDPMScheduler(timestep_spacing=trailing)"])


def probe_pndm(steps: Sequence[int]) -> dict:
    """PNDM's Runge-Kutta warm-up (PRK) against the PLMS-only start; the null last step of leading spacing with alpha_bar_0."""
    out = []
    for skip in (False, True):
        cfg = _c("PNDMScheduler", skip_prk_steps=skip, set_alpha_to_one=True, timestep_spacing="trailing")
        for n in steps:
            r = measure(_case("pndm", cfg), n)
            out.append({"skip_prk_steps": skip, "steps": n, "nfe": r["nfe"], "error": r["error"], "error_solver": r["error_solver"]})
    prk = _fit([r["steps"] for r in out if not r["skip_prk_steps"]], [r["error"] for r in out if not r["skip_prk_steps"]], 1e-10)
    plms = _fit([r["steps"] for r in out if r["skip_prk_steps"]], [r["error"] for r in out if r["skip_prk_steps"]], 1e-10)
    sched = A.build(_c("PNDMScheduler"))
    A.set_timesteps(sched, 50)
    null = int(sched.timesteps[-1]) == 0 and float(sched.final_alpha_cumprod) == float(sched.alphas_cumprod[0])
    return _finding(
        "pndm-warm-up", "PNDM: PRK warm-up versus PLMS-only start; leading spacing with alpha_bar_0 ends with a step that changes nothing",
        null, "every model evaluation moves the state", {"runs": out, "order_prk": prk, "order_plms": plms},
        {"null_last_step_with_defaults": null},
        "Orders fitted to the error against the data law (trailing spacing, set_alpha_to_one=True). With diffusers' defaults "
        "(leading, set_alpha_to_one=False) the last step goes from index 0 to alpha_bar_0 = alpha_bar at index 0: one model "
        "evaluation spent on a step of length zero.", ["PNDMScheduler()"])


def probe_second_order_v(steps: Sequence[int]) -> dict:
    """Second-order and multistep updates with v-, x0- and eps-prediction give the same law (a conversion at the wrong sigma would not)."""
    out, worst = [], {}
    m = toy.single_gaussian(TARGET_MEAN, TARGET_COV)
    pndm = {"timestep_spacing": "trailing", "skip_prk_steps": True, "set_alpha_to_one": True}
    for sched_name, preds, options in (("HeunDiscreteScheduler", ("epsilon", "v_prediction", "sample"), {}),
                                       ("DPMSolverMultistepScheduler", ("epsilon", "v_prediction", "sample"), {}),
                                       ("PNDMScheduler", ("epsilon", "v_prediction"), pndm)):
        for n in steps:
            laws, errors = {}, {}
            for pred in preds:
                case = _case("v", _c(sched_name, prediction_type=pred, **options), arithmetic="float32")
                su = setup(case, m, n)
                laws[pred] = affine_law(lambda x, nz, c=case: run_scheduler(c, m, x, n, nz).samples, su.start.mean(), su.start.covariance(),
                                        rtol=FLOAT32_AFFINE_RTOL)
                errors[pred] = law_distance(*laws[pred], m.mean(), m.covariance())
            diffs = {p: law_distance(*laws[p], *laws["epsilon"]) for p in preds if p != "epsilon"}
            worst[sched_name] = max(worst.get(sched_name, 0.0), *diffs.values())
            out.append({"scheduler": sched_name, "options": options, "steps": n, "error": errors, "law_difference_from_epsilon": diffs})
    return _finding(
        "prediction-types-in-higher-order-steps", "Heun's corrector, DPM-Solver++ 2M and PNDM's PLMS with v- and x0-prediction",
        max(worst.values()) > FLOAT32_AGREEMENT, f"the same output law for every prediction type (to float32 round-off, {FLOAT32_AGREEMENT:g})",
        out, {f"largest_law_difference_{k}": v for k, v in worst.items()},
        "With exact predictions every parameterization describes the same denoiser, so every prediction type must give the "
        "same law. PNDM combines past v outputs in its linear multistep formula and converts the combination to eps with the "
        "current step's alpha and sample; the combination of eps = alpha_k v_k + sigma_k x_k it should extrapolate is different.",
        ["HeunDiscreteScheduler", "DPMSolverMultistepScheduler", "PNDMScheduler(prediction_type=v_prediction)"])


def probe_karras_rounding(steps: Sequence[int]) -> dict:
    """DPM-Solver with Karras sigmas rounds the timesteps given to the model, while its steps use the unrounded sigmas."""
    out = []
    m = toy.single_gaussian(TARGET_MEAN, TARGET_COV)
    cfg = _c("DPMSolverMultistepScheduler", use_karras_sigmas=True)
    case = _case("k", cfg, arithmetic="float32")
    for n in steps:
        su = setup(case, m, n)
        mean_t, cov_t = affine_law(lambda x, nz: run_scheduler(case, m, x, n, nz).samples, su.start.mean(), su.start.covariance(),
                                   rtol=FLOAT32_AFFINE_RTOL)
        mean_s, cov_s = affine_law(lambda x, nz: run_scheduler(case, m, x, n, nz, time_from="sigma").samples, su.start.mean(),
                                   su.start.covariance(), rtol=FLOAT32_AFFINE_RTOL)
        run = run_scheduler(case, m, su.start.mean()[None], n, None)
        gaps = [abs(math.log(float(su.process.edm_sigma(torch.tensor(c.t, dtype=torch.float64)))) - math.log(c.sigma)) for c in run.calls]
        out.append({"steps": n, "error_model_at_timestep": law_distance(mean_t, cov_t, m.mean(), m.covariance()),
                    "error_model_at_sigma": law_distance(mean_s, cov_s, m.mean(), m.covariance()),
                    "law_difference": law_distance(mean_t, cov_t, mean_s, cov_s), "largest_log_sigma_gap": max(gaps)})
    return _finding(
        "karras-timestep-rounding", "DPM-Solver++ with Karras sigmas: the model is told a rounded timestep, the step uses the exact sigma",
        max(r["law_difference"] for r in out) > FLOAT32_AGREEMENT, "the model is evaluated at the noise level the step assumes",
        out, {"largest_law_difference": max(r["law_difference"] for r in out), "largest_log_sigma_gap": max(r["largest_log_sigma_gap"] for r in out)},
        "law_difference: output law with the model at the rounded timestep (what a network sees) against the model at the "
        "solver's sigma.", ["DPMSolverMultistepScheduler(use_karras_sigmas=True)"])


def probe_learned_range(steps: Sequence[int]) -> dict:
    """Improved DDPM's learned range with the exact variance: exact in law on an isotropic Gaussian (trailing spacing)."""
    out = []
    m = toy.single_gaussian((1.0, -0.5), 0.25)
    for spacing in ("trailing", "leading"):
        for n in steps:
            r = measure(_case("lr", _c("DDPMScheduler", variance_type="learned_range", timestep_spacing=spacing), _ddpm("beta_tilde")), n, target=m)
            out.append({"spacing": spacing, "steps": n, "error": r["error"], "fixed_small_diffcheck_error": r["diffcheck"]["error"]})
    trailing = max(r["error"] for r in out if r["spacing"] == "trailing")
    return _finding(
        "learned-range-variance", "DDPM learned_range with the exact reverse variance (log-space interpolation, respaced betas)",
        trailing > 1e-9, "the exact target law at every step count (each reverse step is then the exact Gaussian q(x_s | x_t))",
        out, {"largest_error_trailing": trailing, "largest_error_leading": max(r["error"] for r in out if r["spacing"] == "leading")},
        "Isotropic Gaussian target N((1, -0.5), 0.25 I), the model's variance output computed from the exact Var(x_s | x_t). "
        "With 'leading' the last step starts at index 0, where diffusers adds no noise (timestep 0), so Var(x_0 | x_1) is lost.",
        ["DDPMScheduler(variance_type=learned_range)"])


def probe_float32_tables() -> dict:
    """diffusers computes its tables in float32; how far they are from the same betas in float64."""
    out = []
    for label, kw in (("linear", {}), ("scaled_linear", {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}),
                      ("squaredcos_cap_v2", {"beta_schedule": "squaredcos_cap_v2"})):
        sched = A.build(_c("DDIMScheduler", float64=False, **kw))
        own = sched.alphas_cumprod.to(torch.float64)
        exact = A.table(sched)
        rel = ((own - exact).abs() / exact).max()
        out.append({"schedule": label, "largest_relative_error_alpha_bar": float(rel)})
    return _finding("float32-tables", "diffusers' alpha_bar tables are float32", max(r["largest_relative_error_alpha_bar"] for r in out) > 1e-6,
                    "alpha_bar accurate to float64", out, {"largest_relative_error": max(r["largest_relative_error_alpha_bar"] for r in out)},
                    "The report promotes tables to float64 where the scheduler keeps them as tensors; Euler, Euler ancestral and "
                    "DPM-Solver also cast their sigmas and states to float32, which sets their agreement floor.")


def probe_score_sde_ve(n: int = 64, steps: int = 200) -> dict:
    """score-SDE-VE: the model is given the continuous sigma, the predictor steps on its discrete ladder; the corrector couples samples."""
    cfg = _c("ScoreSdeVeScheduler", correct_steps=1)
    sched = A.build(cfg)
    A.set_timesteps(sched, steps)
    idx = (sched.timesteps * (steps - 1)).long()
    rel = (sched.sigmas.double() / sched.discrete_sigmas.double()[idx] - 1.0).abs().max()
    m = toy.single_gaussian(TARGET_MEAN, TARGET_COV)
    x = m.noised(1.0, float(sched.sigmas[0])).sample(n, torch.Generator().manual_seed(3))
    noise = lambda: torch.Generator().manual_seed(4)  # the same draws in both runs: sample 0 gets the same rows
    a = A.sample(cfg, m, x, steps, noise=noise()).samples
    y = x.clone()
    y[1:] = m.noised(1.0, float(sched.sigmas[0])).sample(n - 1, torch.Generator().manual_seed(5))
    b = A.sample(cfg, m, y, steps, noise=noise()).samples
    change = float((a[0] - b[0]).abs().max())
    return _finding(
        "score-sde-ve-sigmas-and-batch", "score-SDE-VE: model sigma differs from the predictor's ladder; the corrector couples samples",
        True, "the model is evaluated at the predictor's noise level; sample 0 depends on its own start and noise only",
        {"largest_relative_sigma_gap": float(rel), "sample_0_change_when_others_change": change},
        {"largest_relative_sigma_gap": float(rel), "sample_0_change": change},
        f"{steps} steps, one corrector step each, {n} samples; the second run keeps sample 0's start and noise and redraws the "
        "others. The corrector's step size uses norms averaged over the batch (as the official code does).", ["ScoreSdeVeScheduler"])


def probe_final_step_cap(results: list[dict]) -> dict | None:
    """Higher-order solvers end with a first-order step into sigma = 0: their error against the data law stalls."""
    out = []
    for res in results:
        if res["nominal_order"] < 2 or res["verdict"] == "failed" or not res["rows"] or "error_solver" not in res["rows"][-1]:
            continue
        last = res["rows"][-1]
        # the log-SNR increments of the last two steps, from the grid the scheduler walks, at each step count
        cfg = A.SchedulerConfig(res["scheduler"]["scheduler"], tuple(sorted(res["scheduler"]["options"].items())),
                                tuple(sorted(res["scheduler"]["step_options"].items())))
        increments = {}
        for row in res["rows"]:
            sched = A.build(cfg)
            proc = A.process_for(sched)
            A.set_timesteps(sched, row["steps"])
            lam = proc.log_snr(A.walk_grid(sched, proc)[:-1])
            increments[row["steps"]] = [float(lam[-2] - lam[-3]), float(lam[-1] - lam[-2])]
        out.append({"configuration": res["name"], "steps": last["steps"], "error": last["error"], "error_solver": last["error_solver"],
                    "solver_order": (res["orders"].get("diffusers") or {}).get("order"), "nominal_order": res["nominal_order"],
                    "last_log_snr_increments": increments})
    if not out:
        return None
    return _finding(
        "final-step-order", "Second- and third-order schedulers end with a first-order step into sigma = 0",
        any(r["error"] > 2 * r["error_solver"] for r in out), "the error against the data law falls at the solver's order",
        out, {"largest_error_over_solver_error": max(r["error"] / max(r["error_solver"], 1e-300) for r in out)},
        "error: against the data law; error_solver: the state the last step starts from against the exact law at its noise "
        "level. The last step outputs E[x_0 | x_sigma_last], whose covariance lacks E Cov(x_0 | x_sigma_last) ~ sigma_last^2. "
        "With linspace spacing of linear betas the log-SNR increments of the last steps do not shrink as N grows "
        "(last_log_snr_increments), so those steps keep an O(sigma_last^2) ~ 1/N error and the measured orders fall "
        "towards 1.")


def _probes(steps: Sequence[int], quick: bool) -> list[Callable[[], dict]]:
    """The trap probes: in quick mode the cheap ones at one small step count each."""
    if quick:
        n = steps[0]
        return [lambda: probe_leading((n,), schedules=("linear",)), lambda: probe_ddim_previous((n,), extra=()),
                lambda: probe_ddpm_final_noise((n,), variances=("fixed_large",)), lambda: probe_float32_tables(),
                lambda: probe_zero_snr_patch()]
    big = tuple(s for s in steps if s >= 50) or tuple(steps[-1:])
    return [lambda: probe_leading((10, 50)), lambda: probe_terminal_snr(50), lambda: probe_zero_snr_patch(),
            lambda: probe_final_alpha(big), lambda: probe_ddim_previous((10, 50)), lambda: probe_ddpm_final_noise(big),
            lambda: probe_float32_tables(), lambda: probe_pndm(tuple(steps[::2])), lambda: probe_second_order_v((10, 50)),
            lambda: probe_karras_rounding(steps), lambda: probe_learned_range(steps), lambda: probe_score_sde_ve()]


# -- the report -------------------------------------------------------------------------------------
def _not_measured() -> list[dict]:
    """Configurations the report leaves out, and why."""
    import importlib.util

    sde = ("it needs torchsde, which is not installed" if importlib.util.find_spec("torchsde") is None else
           "it draws its noise from torchsde's Brownian tree, which the adapter does not route; only Monte Carlo would apply")
    return [
        {"scheduler": "DPMSolverSDEScheduler", "reason": sde + "; DPM-Solver++ SDE is measured through "
                                                               "DPMSolverMultistepScheduler(algorithm_type='sde-dpmsolver++')"},
        {"scheduler": "EulerDiscreteScheduler / EulerAncestralDiscreteScheduler / DPMSolverMultistepScheduler with rescale_betas_zero_snr",
         "reason": "their table sets alpha_bar_T = 2^-24 above alpha_bar_{T-1}: not a forward process (see finding zero-snr-2^-24)"},
    ]


def _versions() -> dict:
    diffusers = A.require_diffusers()
    return {"diffusers": diffusers.__version__, "torch": torch.__version__, "python": platform.python_version()}


def verify_diffusers(
    schedulers: Sequence[str] | None = None,
    steps: Sequence[int] = DEFAULT_STEPS,
    out: str | None = None,
    progress: bool = True,
    quick: bool = False,
    *,
    mixtures: Sequence[str] | None = None,
    n_two_sample: int | None = None,
    alpha: float = 1e-3,
    index_shift: int = 0,
    probes: bool = True,
) -> dict:
    """Measure diffusers' schedulers against the exact answer and diffcheck's samplers; JSON-safe, written atomically to ``out``.

    ``schedulers`` keeps configurations whose name or scheduler class contains one of the
    strings (e.g. ["DDIM", "heun"]); ``quick`` measures a representative subset at
    ``QUICK_STEPS`` with smaller Monte Carlo tests and the cheaper probes. ``mixtures``
    names toy presets for the two-sample tests (default: anisotropic and narrow; quick:
    anisotropic), run at the largest step count with ``n_two_sample`` samples each, at a
    total false-alarm rate ``alpha`` (Bonferroni). ``index_shift`` mis-maps every model
    time by that many training indices (to show that the report notices).
    """
    if steps == DEFAULT_STEPS and quick:
        steps = QUICK_STEPS
    steps = tuple(int(s) for s in steps)
    if len(steps) < 2 or any(s < 2 for s in steps) or list(steps) != sorted(set(steps)):
        raise ValueError(f"steps must be at least two increasing step counts >= 2, got {steps}")
    chosen = quick_cases() if quick else cases()
    if schedulers:
        keys = [str(k).lower() for k in schedulers]
        chosen = [c for c in chosen if any(k in c.name.lower() or k in c.config.scheduler.lower() for k in keys)]
        if not chosen:
            raise ValueError(f"schedulers: no configuration matches {list(schedulers)}")
    mixtures = tuple(mixtures) if mixtures is not None else (("anisotropic",) if quick else ("anisotropic", "narrow"))
    for name in mixtures:
        if not callable(getattr(toy, name, None)):
            raise ValueError(f"mixtures: unknown toy preset {name!r}")
    n_mc = n_two_sample or (500 if quick else 2000)
    t0 = time.perf_counter()
    results = []
    for case in tqdm(chosen, desc="verify-diffusers", file=sys.stderr, disable=not progress):
        res = measure_case(case, steps, mc_n=n_mc, index_shift=index_shift)
        results.append(res)
    tests = [(r, c, p) for r, c in zip(results, chosen) for p in mixtures]
    each = alpha / max(len(tests), 1)
    for res, case, preset in tqdm(tests, desc="two-sample tests", file=sys.stderr, disable=not progress):
        res.setdefault("two_sample", []).append(two_sample(case, preset, steps[-1], n_mc, each, seed=1000 + len(res.get("two_sample", []))))
    findings = []
    if probes and index_shift == 0:
        for probe in tqdm(_probes(steps, quick), desc="probes", file=sys.stderr, disable=not progress):
            findings.append(probe())
        cap = probe_final_step_cap(results)
        if cap is not None:
            findings.append(cap)
    for res in results:
        if res["verdict"] in ("discrepancy", "failed"):
            findings.append(_finding(f"configuration:{res['name']}", f"{res['scheduler']['label']}: {res['verdict']}", True,
                                     f"agreement with {res['comparator']['name']}" if res["expect_match"] else "convergence",
                                     {"largest_agreement_distance": max((r.get("agreement", 0.0) for r in res["rows"]), default=None)},
                                     res["notes"], "; ".join(res["notes"]), [res["scheduler"]["label"]]))
    report = {
        "tool": "diffcheck verify-diffusers",
        "not_measured": _not_measured(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "quick": bool(quick),
        "steps": list(steps),
        "index_shift": index_shift,
        "metric": "|m - m*| / sqrt(tr C*) + |C - C*|_F / tr C* between Gaussian laws N(m, C) and N(m*, C*)",
        "target": {"mean": list(TARGET_MEAN), "cov": [list(r) for r in TARGET_COV]},
        "two_sample": {"mixtures": list(mixtures), "n": n_mc, "alpha_total": alpha, "alpha_each": each,
                       "start": "the exact marginal at the scheduler's first time"},
        "configurations": results,
        "findings": findings,
        "summary": {
            "configurations": len(results),
            "ok": sum(r["verdict"] == "ok" for r in results),
            "discrepancies": [r["name"] for r in results if r["verdict"] == "discrepancy"],
            "failed": [r["name"] for r in results if r["verdict"] == "failed"],
            "two_sample_rejected": [f"{r['name']}@{t['preset']}" for r in results for t in r.get("two_sample", []) if not t["passed"]],
            "two_sample_rejected_where_diffcheck_passed": [f"{r['name']}@{t['preset']}" for r in results for t in r.get("two_sample", [])
                                                           if not t["passed"] and t.get("diffcheck", {}).get("passed")],
            "findings_with_discrepancy": [f["id"] for f in findings if f["discrepancy"]],
        },
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if out is not None:
        write_json(out, report)
    return report


def _g(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def format_report(report: dict) -> str:
    """The report as plain text: one line per configuration and step count, then two-sample tests and findings."""
    if not isinstance(report, dict) or "configurations" not in report:
        raise TypeError("report must be the dict returned by verify_diffusers")
    head = (f"diffcheck verify-diffusers  (diffusers {report['versions']['diffusers']}, torch {report['versions']['torch']}, "
            f"{report['date']})\nmetric: {report['metric']}\n")
    cols = ["configuration", "steps", "nfe", "error", "prior", "solver", "dc error", "dc solver", "agreement", "verdict"]
    lines = []
    for res in report["configurations"]:
        for i, r in enumerate(res["rows"]):
            d = r.get("diffcheck", {})
            lines.append([res["name"] if i == 0 else "", str(r["steps"]), _g(r.get("nfe")), _g(r.get("error")), _g(r.get("error_prior")),
                          _g(r.get("error_solver")), _g(d.get("error")), _g(d.get("error_solver")), _g(r.get("agreement")),
                          (res["verdict"] if i == 0 else "") if "failed" not in r else "failed"])
        od, oc = res["orders"].get("diffusers"), res["orders"].get("diffcheck")
        lines.append(["", "order", "", _g(od["order"]) if od else "-", "", f"nominal {res['nominal_order']:g}",
                      _g(oc["order"]) if oc else "-", "", f"vs {res['comparator']['name']}", ""])
    widths = [max(len(c), *(len(l[k]) for l in lines)) for k, c in enumerate(cols)]
    fmt = lambda row: "  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip()
    text = [head, fmt(cols), fmt(["-" * w for w in widths])] + [fmt(l) for l in lines]
    tests = [(res["name"], t) for res in report["configurations"] for t in res.get("two_sample", [])]
    if tests:
        text += ["", f"two-sample tests (n = {report['two_sample']['n']}, alpha per test {report['two_sample']['alpha_each']:.3g}):"]
        for name, t in tests:
            verdict = "pass" if t["passed"] else "REJECT"
            dc = t.get("diffcheck")
            beside = f"; diffcheck's sampler on the same grid: {'pass' if dc['passed'] else 'REJECT'}, p = {_g(dc['p_value'])}" if dc else ""
            text.append(f"  {verdict:6s} {name} on {t['preset']} at {t['steps']} steps: p = {_g(t.get('p_value'))}{beside}"
                        + (f" ({t['failed']})" if "failed" in t else ""))
    if report["findings"]:
        text += ["", "findings:"]
        for f in report["findings"]:
            mark = "!" if f["discrepancy"] else " "
            text.append(f" {mark} [{f['id']}] {f['title']}: {_short(f['size'])}")
    s = report["summary"]
    text += ["", f"{s['ok']} of {s['configurations']} configurations ok; discrepancies: {', '.join(s['discrepancies']) or 'none'}; "
             f"failed: {', '.join(s['failed']) or 'none'}; two-sample rejections of diffusers where diffcheck's sampler passed: "
             f"{', '.join(s['two_sample_rejected_where_diffcheck_passed']) or 'none'} ({len(s['two_sample_rejected'])} rejections in all)"]
    return "\n".join(text) + "\n"


def _short(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} {_short(x)}" for k, x in v.items())
    return _g(v)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m diffcheck.adapters.diffusers_report [--quick] [--out PATH]``: print the report's table, write its JSON."""
    parser = argparse.ArgumentParser(prog="python -m diffcheck.adapters.diffusers_report", description=main.__doc__)
    parser.add_argument("--out", help="write the report as JSON to this path")
    parser.add_argument("--quick", action="store_true", help="a representative subset at few steps")
    parser.add_argument("--steps", type=int, nargs="+", help=f"step counts (default {' '.join(map(str, DEFAULT_STEPS))})")
    parser.add_argument("--schedulers", nargs="+", help="keep configurations whose name or class contains one of these")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    args = parser.parse_args(argv)
    report = verify_diffusers(args.schedulers, tuple(args.steps) if args.steps else DEFAULT_STEPS, args.out,
                              not args.no_progress, args.quick)
    sys.stdout.write(format_report(report))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
