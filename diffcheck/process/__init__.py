"""Forward processes defined by alpha(t), sigma(t) on t in [0, 1], their discrete views and grids."""

from .base import Process
from .continuous import VE, VP, CosineVP, LinearVE, SubVP
from .discrete import (
    DiscreteVP,
    Schedule,
    cosine_alpha_bar,
    cosine_betas,
    ddim_steps,
    discretize,
    iddpm_steps,
    linear_betas,
)
from .grids import check_grid, ddim_grid, ddpm_grid, iddpm_grid, karras_grid, respaced_grid, sigma_grid, uniform_grid
from .ladders import (
    geometric_sigmas,
    karras_sigmas,
    ncsnv2_gamma,
    ncsnv2_num_levels,
    ncsnv2_overlap,
    ncsnv2_sigma_max,
    ncsnv2_step_size,
    ncsnv2_variance_ratio,
)
from .maps import ddpm_to_vp, smld_to_ve, ve_to_smld_sigmas, vp_to_ddpm_betas
from .steps import Coefficients, coefficient_table, coefficients

__all__ = [
    "Process", "VP", "SubVP", "VE", "LinearVE", "CosineVP", "DiscreteVP",
    "Schedule", "discretize", "linear_betas", "cosine_betas", "cosine_alpha_bar", "ddim_steps", "iddpm_steps",
    "check_grid", "uniform_grid", "ddpm_grid", "respaced_grid", "ddim_grid", "iddpm_grid", "karras_grid", "sigma_grid",
    "geometric_sigmas", "karras_sigmas", "ncsnv2_sigma_max", "ncsnv2_overlap", "ncsnv2_gamma", "ncsnv2_num_levels",
    "ncsnv2_variance_ratio", "ncsnv2_step_size",
    "vp_to_ddpm_betas", "ddpm_to_vp", "ve_to_smld_sigmas", "smld_to_ve",
    "Coefficients", "coefficients", "coefficient_table",
]
