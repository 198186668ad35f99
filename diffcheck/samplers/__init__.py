"""Samplers as plain functions ``(model, process, x_T, grid, *, generator, ...) -> samples``.

Each declares its theory in ``fn.info`` (``SamplerInfo``: kind, order, weak/strong order),
which the tests check against measured convergence orders.
"""

from .ancestral import ancestral_moments, ancestral_step, ddpm_ancestral, ve_ancestral, vp_ancestral
from .base import PerSampleNoise, Result, SamplerInfo, SamplingError, info, make_noise
from .ddim import ddim, ddim_invert, ddim_step
from .langevin import annealed_langevin, langevin, ncsnv2
from .loop import coefficients, walk
from .ode import adaptive_ode, euler_ode, euler_step, heun_ode, heun_step, probability_flow
from .sde import (
    euler_maruyama,
    euler_maruyama_step,
    langevin_corrector_step,
    predictor_corrector,
    reverse_diffusion,
    reverse_diffusion_step,
)

__all__ = [
    "ddpm_ancestral", "ve_ancestral", "vp_ancestral", "ancestral_step", "ancestral_moments",
    "ddim", "ddim_invert", "ddim_step",
    "langevin", "annealed_langevin", "ncsnv2",
    "euler_maruyama", "reverse_diffusion", "predictor_corrector",
    "euler_maruyama_step", "reverse_diffusion_step", "langevin_corrector_step",
    "euler_ode", "heun_ode", "adaptive_ode", "euler_step", "heun_step", "probability_flow",
    "PerSampleNoise", "Result", "SamplerInfo", "SamplingError", "info", "make_noise", "coefficients", "walk",
]
