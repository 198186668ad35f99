"""diffusers' schedulers driven by the exact model (optional dependency: ``pip install 'diffcheck[diffusers]'``).

A diffusers scheduler holds a DDPM table (``betas``, ``alphas_cumprod``) or, for the score
SDE, a VE ladder. ``process_for`` builds the diffcheck process with the same table, and
``sample`` runs the scheduler's own loop (``set_timesteps``, ``scale_model_input``,
``step``) with ``ExactModel`` where a pipeline calls its network. What a network would be
given is mapped to a process time exactly (``times``).

Tables are promoted to float64 (``promote``) where the scheduler keeps them as tensors;
schedulers that cast their sigmas or samples to float32 stay float32 there. Noise the
scheduler draws through diffusers' ``randn_tensor`` is routed to a noise function that
the caller passes, so that outputs are affine in (x_T, noise) on Gaussian targets and
their laws are exact (``diffcheck.testing.gaussian_law.affine_law``).

One module per job: ``schedulers`` (configurations, building, float64 tables), ``times``
(the process of a table, the exact time maps, the grid a scheduler walks) and ``run`` (the
scheduler's loop with the exact model, its noise routed).
"""

from __future__ import annotations

from .run import Call, Run, learned_range_output, sample
from .schedulers import INSTALL_HINT, PREDICTION_TYPES, SchedulerConfig, build, promote, require_diffusers, set_timesteps, table
from .times import (
    ZeroTerminalVP,
    consecutive_unique,
    kind,
    process_for,
    sample_space_alpha,
    sigma_time,
    timestep_time,
    walk_grid,
)

__all__ = [
    "INSTALL_HINT",
    "PREDICTION_TYPES",
    "require_diffusers",
    "SchedulerConfig",
    "ZeroTerminalVP",
    "build",
    "promote",
    "table",
    "process_for",
    "kind",
    "set_timesteps",
    "timestep_time",
    "sigma_time",
    "walk_grid",
    "consecutive_unique",
    "sample_space_alpha",
    "Call",
    "Run",
    "sample",
    "learned_range_output",
]
