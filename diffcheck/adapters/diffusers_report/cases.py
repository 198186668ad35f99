"""The configurations the diffusers report measures: each scheduler, the diffcheck sampler it is compared with, and what is expected of it.

Also the report's fixed numbers: step counts, the Gaussian target, and the round-off
tolerances of agreement and of the affine-law measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

import toy

from ... import samplers as S
from .. import diffusers as A

__all__ = [
    "DEFAULT_STEPS", "QUICK_STEPS", "TARGET_MEAN", "TARGET_COV", "FLOAT64_AFFINE_RTOL", "FLOAT32_AFFINE_RTOL",
    "FLOAT64_AGREEMENT", "FLOAT32_AGREEMENT", "ORDER_SLACK", "ORDER_FLOOR", "REACH_FACTOR", "Comparator", "Case", "Unavailable",
    "config", "optional", "ddim", "ddpm",
    "HEUN_SIGMA", "REVERSE_DIFFUSION", "predictor_corrector", "NARROW_STD", "narrow", "probe_case", "cases", "QUICK", "quick_cases", "applicable",
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
# a sampler meant to reach the data whose walk stops short: a discrepancy when the distance of the exact law where it
# stops from the data law exceeds this many times its discretisation error (see measure.reach_verdict)
REACH_FACTOR = 2.0


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


def ddim(eta: float) -> Comparator:
    """diffcheck's DDIM with this eta (Song et al. 2020, Eq. 12) on the scheduler's grid."""
    return Comparator(f"ddim(eta={eta:g})", f"diffcheck.samplers.ddim with eta = {eta:g} on the scheduler's grid",
                      lambda m, p, x, g, nz: S.ddim(m, p, x, g, eta=eta, generator=nz))


def ddpm(variance: str) -> Comparator:
    """diffcheck's DDPM ancestral step (Ho et al. 2020, Algorithm 2) with this variance on the scheduler's grid."""
    return Comparator(f"ddpm_ancestral({variance})", f"diffcheck.samplers.ddpm_ancestral, variance {variance}, on the scheduler's grid",
                      lambda m, p, x, g, nz: S.ddpm_ancestral(m, p, x, g, generator=nz, variance=variance))


HEUN_SIGMA = Comparator("heun_ode(sigma)", "diffcheck.samplers.heun_ode on LinearVE with the scheduler's sigmas as times",
                        lambda m, p, x, g, nz: S.heun_ode(m, p, x, g), space="sigma", prediction="eps")
REVERSE_DIFFUSION = Comparator("reverse_diffusion", "diffcheck.samplers.reverse_diffusion on VE (exact kernel) over the scheduler's ladder",
                               lambda m, p, x, g, nz: S.reverse_diffusion(m, p, x, g, generator=nz))


def predictor_corrector(snr: float) -> Comparator:
    """diffcheck's predictor-corrector sampler (Song et al. 2021, Algorithm 2) with batch-averaged norms."""
    return Comparator(f"predictor_corrector(snr={snr:g}, norm=batch)",
                      "diffcheck.samplers.predictor_corrector (reverse diffusion + Langevin, batch-averaged norms) over the ladder",
                      lambda m, p, x, g, nz: S.predictor_corrector(m, p, x, g, generator=nz, snr=snr, norm="batch"))


@dataclass(frozen=True)
class Unavailable:
    """A configuration the installed diffusers cannot express (no such scheduler class, option or step argument)."""

    scheduler: str
    options: tuple[tuple[str, Any], ...]
    step_options: tuple[tuple[str, Any], ...]
    reason: str

    @property
    def label(self) -> str:
        """The class and every option asked for."""
        parts = [f"{k}={v}" for k, v in self.options] + [f"{k}={v}" for k, v in self.step_options]
        return f"{self.scheduler.replace('Scheduler', '')}({', '.join(parts)})"

    @property
    def kwargs(self) -> dict:
        return dict(self.options)

    def to_json(self) -> dict:
        """A JSON-safe description, as ``SchedulerConfig.to_json``, with the reason."""
        return {"scheduler": self.scheduler, "options": dict(self.options), "step_options": dict(self.step_options),
                "label": self.label, "not_applicable": self.reason}


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
    config: A.SchedulerConfig | Unavailable
    comparator: Comparator
    expect_match: bool
    order: float
    arithmetic: str = "float64"
    affine: bool = True
    steps_scale: int = 1  # scheduler steps = steps_scale * each entry of the report's steps
    note: str = ""

    @property
    def applicable(self) -> bool:
        """Whether the installed diffusers has this configuration's scheduler and options."""
        return isinstance(self.config, A.SchedulerConfig)


def config(scheduler: str, step_options: dict | None = None, **options: Any) -> A.SchedulerConfig:
    """``SchedulerConfig.make`` with the step keywords given by position (``A.NotApplicable`` where diffusers lacks them)."""
    return A.SchedulerConfig.make(scheduler, step_options=step_options, **options)


def optional(scheduler: str, step_options: dict | None = None, **options: Any) -> A.SchedulerConfig | Unavailable:
    """``config``, or an ``Unavailable`` with the reason where the installed diffusers cannot express it."""
    try:
        return config(scheduler, step_options, **options)
    except A.NotApplicable as err:
        return Unavailable(scheduler, tuple(sorted(options.items())), tuple(sorted((step_options or {}).items())), str(err))


NARROW_STD = 0.015


def narrow():
    """A narrow Gaussian target (std 0.015): it exposes errors of the last steps that unit-scale targets hide."""
    return toy.single_gaussian((1.0, 0.0), NARROW_STD**2)


def probe_case(name: str, config: A.SchedulerConfig, comparator: Comparator | None = None, expect_match: bool = False,
               order: float = 1.0, arithmetic: str = "float64") -> Case:
    """A one-off configuration for a probe (compared with DDIM, eta = 0, unless named)."""
    return Case(name, config, comparator or ddim(0.0), expect_match, order, arithmetic)


def cases() -> list[Case]:
    """The configurations of the full report (T = 1000 linear betas unless named)."""
    ddim0, ddim1 = ddim(0.0), ddim(1.0)
    return [
        Case("ddim-trailing-eps", optional("DDIMScheduler", timestep_spacing="trailing"), ddim0, True, 1.0),
        Case("ddim-trailing-v", optional("DDIMScheduler", timestep_spacing="trailing", prediction_type="v_prediction"), ddim0, True, 1.0),
        Case("ddim-trailing-x0", optional("DDIMScheduler", timestep_spacing="trailing", prediction_type="sample"), ddim0, True, 1.0),
        Case("ddim-trailing-eta1", optional("DDIMScheduler", {"eta": 1.0}, timestep_spacing="trailing"), ddim1, True, 1.0),
        Case("ddim-leading-sd", optional("DDIMScheduler", steps_offset=1, set_alpha_to_one=False, beta_schedule="scaled_linear",
                                     beta_start=0.00085, beta_end=0.012), ddim0, True, 1.0,
             note="Stable Diffusion's configuration: scaled_linear betas, leading spacing (the default), steps_offset 1, final "
                  "alpha_bar_0"),
        Case("ddim-leading-x0", optional("DDIMScheduler", prediction_type="sample"), ddim0, True, 1.0,
             note="x0-prediction with the default (leading) spacing, available in every release with prediction_type"),
        Case("ddim-linspace-eps", optional("DDIMScheduler", timestep_spacing="linspace"), ddim0, True, 1.0),
        Case("ddim-cosine-trailing", optional("DDIMScheduler", timestep_spacing="trailing", beta_schedule="squaredcos_cap_v2"), ddim0, True, 1.0),
        Case("ddim-zero-snr-v", optional("DDIMScheduler", timestep_spacing="trailing", prediction_type="v_prediction",
                                   rescale_betas_zero_snr=True), ddim0, True, 1.0),
        Case("ddpm-leading-small", optional("DDPMScheduler"), ddpm("beta_tilde"), True, 1.0, note="the default spacing: leading"),
        Case("ddpm-trailing-small-v", optional("DDPMScheduler", timestep_spacing="trailing", prediction_type="v_prediction"),
             ddpm("beta_tilde"), True, 1.0),
        Case("ddpm-trailing-large", optional("DDPMScheduler", timestep_spacing="trailing", variance_type="fixed_large"),
             ddpm("beta"), True, 1.0),
        Case("euler-linspace-eps", optional("EulerDiscreteScheduler"), ddim0, True, 1.0, "float32",
             note="Euler in sigma on x / alpha is DDIM (Song et al. 2020, Prop. 1)"),
        Case("euler-trailing-v", optional("EulerDiscreteScheduler", timestep_spacing="trailing", prediction_type="v_prediction"),
             ddim0, True, 1.0, "float32"),
        Case("euler-karras-eps", optional("EulerDiscreteScheduler", use_karras_sigmas=True), ddim0, True, 1.0, "float32"),
        Case("euler-ancestral-linspace-eps", optional("EulerAncestralDiscreteScheduler"), ddim1, True, 1.0, "float32",
             note="Euler ancestral's sigma_up, sigma_down step is DDIM with eta = 1 in x / alpha"),
        Case("euler-ancestral-trailing-v", optional("EulerAncestralDiscreteScheduler", timestep_spacing="trailing",
                                              prediction_type="v_prediction"), ddim1, True, 1.0, "float32"),
        Case("heun-linspace-eps", optional("HeunDiscreteScheduler"), HEUN_SIGMA, True, 2.0, "float32"),
        Case("heun-linspace-v", optional("HeunDiscreteScheduler", prediction_type="v_prediction"), HEUN_SIGMA, True, 2.0, "float32"),
        Case("heun-karras-v", optional("HeunDiscreteScheduler", use_karras_sigmas=True, prediction_type="v_prediction"),
             HEUN_SIGMA, True, 2.0, "float32"),
        Case("dpmpp-2m-eps", optional("DPMSolverMultistepScheduler"), ddim0, False, 2.0, "float32"),
        Case("dpmpp-2m-v", optional("DPMSolverMultistepScheduler", prediction_type="v_prediction"), ddim0, False, 2.0, "float32"),
        Case("dpmpp-2m-karras-eps", optional("DPMSolverMultistepScheduler", use_karras_sigmas=True), ddim0, False, 2.0, "float32"),
        Case("dpmpp-2m-karras-sigma-min-eps", optional("DPMSolverMultistepScheduler", use_karras_sigmas=True, final_sigmas_type="sigma_min"),
             ddim0, False, 2.0, "float32",
             note="final_sigmas_type='sigma_min' appends sigma_min to Karras sigmas that already end there: the last step has "
                  "size 0 (what every release before 0.26 did with use_karras_sigmas)"),
        Case("dpmpp-3m-eps", optional("DPMSolverMultistepScheduler", solver_order=3), ddim0, False, 3.0, "float32"),
        Case("dpmpp-1-eps", optional("DPMSolverMultistepScheduler", solver_order=1), ddim0, True, 1.0, "float32",
             note="DPM-Solver-1 is DDIM (Lu et al. 2022)"),
        Case("sde-dpmpp-2m-eps", optional("DPMSolverMultistepScheduler", algorithm_type="sde-dpmsolver++"), ddim1, False, 1.0, "float32"),
        Case("sde-dpmpp-1-eps", optional("DPMSolverMultistepScheduler", algorithm_type="sde-dpmsolver++", solver_order=1),
             ddim1, True, 1.0, "float32", note="SDE-DPM-Solver++-1 is DDIM with eta = 1"),
        Case("dpm-single-2-eps", optional("DPMSolverSinglestepScheduler"), ddim0, False, 2.0, "float32",
             note="single-step DPM-Solver++(2S) alternating first- and second-order steps; lower_order_final asks for a "
                  "first-order last step"),
        Case("pndm-leading-prk", optional("PNDMScheduler"), ddim0, False, 1.0,
             note="diffusers' defaults: leading spacing, PRK warm-up, final alpha_bar_0; no global order is derived for "
                  "diffusers' PNDM, so only convergence (order >= 1) is expected"),
        Case("pndm-trailing-plms", optional("PNDMScheduler", timestep_spacing="trailing", skip_prk_steps=True, set_alpha_to_one=True),
             ddim0, False, 1.0),
        Case("pndm-trailing-plms-v", optional("PNDMScheduler", timestep_spacing="trailing", skip_prk_steps=True, set_alpha_to_one=True,
                                        prediction_type="v_prediction"), ddim0, False, 1.0),
        Case("score-sde-ve-predictor", optional("ScoreSdeVeScheduler", correct_steps=0), REVERSE_DIFFUSION, True, 1.0,
             steps_scale=5, note="the ladder runs from sigma_max = 1348 to 0.01: 5 scheduler steps per report step"),
        Case("karras-ve-heun", optional("KarrasVeScheduler", s_churn=0.0), HEUN_SIGMA, True, 2.0, "float32",
             note="Karras et al. 2022, Algorithm 2 without churn is their Algorithm 1 (Heun in sigma, Euler into sigma = 0)"),
        Case("score-sde-ve-pc", optional("ScoreSdeVeScheduler"), predictor_corrector(0.15), True, 1.0, affine=False, steps_scale=5),
    ]


QUICK = ("ddim-trailing-v", "ddim-linspace-eps", "ddpm-trailing-large", "euler-trailing-v", "euler-ancestral-linspace-eps",
         "heun-linspace-v", "dpmpp-2m-eps", "pndm-trailing-plms")


def quick_cases() -> list[Case]:
    """A representative subset for the tests: every DDPM-table scheduler family once, two traps included.

    score-SDE-VE needs hundreds of steps on its ladder and is left to the full report.
    """
    return [c for c in cases() if c.name in QUICK]


def applicable(chosen: list[Case]) -> tuple[list[Case], list[Case]]:
    """The cases the installed diffusers can express, and those it cannot."""
    return [c for c in chosen if c.applicable], [c for c in chosen if not c.applicable]

