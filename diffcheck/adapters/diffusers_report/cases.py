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
    "FLOAT64_AGREEMENT", "FLOAT32_AGREEMENT", "ORDER_SLACK", "ORDER_FLOOR", "Comparator", "Case", "config", "ddim", "ddpm",
    "HEUN_SIGMA", "REVERSE_DIFFUSION", "predictor_corrector", "NARROW_STD", "narrow", "probe_case", "cases", "QUICK", "quick_cases",
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


def config(scheduler: str, step_options: dict | None = None, **options: Any) -> A.SchedulerConfig:
    """``SchedulerConfig.make`` with the step keywords given by position."""
    return A.SchedulerConfig.make(scheduler, step_options=step_options, **options)


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
        Case("ddim-trailing-eps", config("DDIMScheduler", timestep_spacing="trailing"), ddim0, True, 1.0),
        Case("ddim-trailing-v", config("DDIMScheduler", timestep_spacing="trailing", prediction_type="v_prediction"), ddim0, True, 1.0),
        Case("ddim-trailing-x0", config("DDIMScheduler", timestep_spacing="trailing", prediction_type="sample"), ddim0, True, 1.0),
        Case("ddim-trailing-eta1", config("DDIMScheduler", {"eta": 1.0}, timestep_spacing="trailing"), ddim1, True, 1.0),
        Case("ddim-leading-sd", config("DDIMScheduler", timestep_spacing="leading", steps_offset=1, set_alpha_to_one=False,
                                   beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012), ddim0, True, 1.0,
             note="Stable Diffusion's configuration: scaled_linear betas, leading spacing, steps_offset 1, final alpha_bar_0"),
        Case("ddim-linspace-eps", config("DDIMScheduler", timestep_spacing="linspace"), ddim0, True, 1.0),
        Case("ddim-cosine-trailing", config("DDIMScheduler", timestep_spacing="trailing", beta_schedule="squaredcos_cap_v2"), ddim0, True, 1.0),
        Case("ddim-zero-snr-v", config("DDIMScheduler", timestep_spacing="trailing", prediction_type="v_prediction",
                                   rescale_betas_zero_snr=True), ddim0, True, 1.0),
        Case("ddpm-leading-small", config("DDPMScheduler", timestep_spacing="leading"), ddpm("beta_tilde"), True, 1.0),
        Case("ddpm-trailing-small-v", config("DDPMScheduler", timestep_spacing="trailing", prediction_type="v_prediction"),
             ddpm("beta_tilde"), True, 1.0),
        Case("ddpm-trailing-large", config("DDPMScheduler", timestep_spacing="trailing", variance_type="fixed_large"),
             ddpm("beta"), True, 1.0),
        Case("euler-linspace-eps", config("EulerDiscreteScheduler"), ddim0, True, 1.0, "float32",
             note="Euler in sigma on x / alpha is DDIM (Song et al. 2020, Prop. 1)"),
        Case("euler-trailing-v", config("EulerDiscreteScheduler", timestep_spacing="trailing", prediction_type="v_prediction"),
             ddim0, True, 1.0, "float32"),
        Case("euler-karras-eps", config("EulerDiscreteScheduler", use_karras_sigmas=True), ddim0, True, 1.0, "float32"),
        Case("euler-ancestral-linspace-eps", config("EulerAncestralDiscreteScheduler"), ddim1, True, 1.0, "float32",
             note="Euler ancestral's sigma_up, sigma_down step is DDIM with eta = 1 in x / alpha"),
        Case("euler-ancestral-trailing-v", config("EulerAncestralDiscreteScheduler", timestep_spacing="trailing",
                                              prediction_type="v_prediction"), ddim1, True, 1.0, "float32"),
        Case("heun-linspace-eps", config("HeunDiscreteScheduler"), HEUN_SIGMA, True, 2.0, "float32"),
        Case("heun-linspace-v", config("HeunDiscreteScheduler", prediction_type="v_prediction"), HEUN_SIGMA, True, 2.0, "float32"),
        Case("heun-karras-v", config("HeunDiscreteScheduler", use_karras_sigmas=True, prediction_type="v_prediction"),
             HEUN_SIGMA, True, 2.0, "float32"),
        Case("dpmpp-2m-eps", config("DPMSolverMultistepScheduler"), ddim0, False, 2.0, "float32"),
        Case("dpmpp-2m-v", config("DPMSolverMultistepScheduler", prediction_type="v_prediction"), ddim0, False, 2.0, "float32"),
        Case("dpmpp-2m-karras-eps", config("DPMSolverMultistepScheduler", use_karras_sigmas=True), ddim0, False, 2.0, "float32"),
        Case("dpmpp-3m-eps", config("DPMSolverMultistepScheduler", solver_order=3), ddim0, False, 3.0, "float32"),
        Case("dpmpp-1-eps", config("DPMSolverMultistepScheduler", solver_order=1), ddim0, True, 1.0, "float32",
             note="DPM-Solver-1 is DDIM (Lu et al. 2022)"),
        Case("sde-dpmpp-2m-eps", config("DPMSolverMultistepScheduler", algorithm_type="sde-dpmsolver++"), ddim1, False, 1.0, "float32"),
        Case("sde-dpmpp-1-eps", config("DPMSolverMultistepScheduler", algorithm_type="sde-dpmsolver++", solver_order=1),
             ddim1, True, 1.0, "float32", note="SDE-DPM-Solver++-1 is DDIM with eta = 1"),
        Case("pndm-leading-prk", config("PNDMScheduler"), ddim0, False, 1.0,
             note="diffusers' defaults: leading spacing, PRK warm-up, final alpha_bar_0; no global order is derived for "
                  "diffusers' PNDM, so only convergence (order >= 1) is expected"),
        Case("pndm-trailing-plms", config("PNDMScheduler", timestep_spacing="trailing", skip_prk_steps=True, set_alpha_to_one=True),
             ddim0, False, 1.0),
        Case("pndm-trailing-plms-v", config("PNDMScheduler", timestep_spacing="trailing", skip_prk_steps=True, set_alpha_to_one=True,
                                        prediction_type="v_prediction"), ddim0, False, 1.0),
        Case("score-sde-ve-predictor", config("ScoreSdeVeScheduler", correct_steps=0), REVERSE_DIFFUSION, True, 1.0,
             steps_scale=5, note="the ladder runs from sigma_max = 1348 to 0.01: 5 scheduler steps per report step"),
        Case("score-sde-ve-pc", config("ScoreSdeVeScheduler"), predictor_corrector(0.15), True, 1.0, affine=False, steps_scale=5),
    ]


QUICK = ("ddim-trailing-v", "ddim-linspace-eps", "ddpm-trailing-large", "euler-trailing-v", "euler-ancestral-linspace-eps",
         "heun-linspace-v", "dpmpp-2m-eps", "pndm-trailing-plms")


def quick_cases() -> list[Case]:
    """A representative subset for the tests: every DDPM-table scheduler family once, two traps included.

    score-SDE-VE needs hundreds of steps on its ladder and is left to the full report.
    """
    return [c for c in cases() if c.name in QUICK]

