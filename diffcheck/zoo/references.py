"""The exact law of the discrete sampler: diffcheck's own samplers run on the configuration a zoo variant was given.

A reference is the algorithm the variant claims to run (DDIM, DDPM's ancestral chain, Euler,
Heun), taken from ``diffcheck.samplers`` and the exact model, on the grid the configuration
asks for, started from the process's exact law at the grid's first time. On a Gaussian
target it is affine, so its output law is exact (``affine_law``): a sampler that walks that
grid correctly has this law to round-off, whatever its discretization error, so the
comparison needs no step count at which the discretization error is negligible.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from toy.mixture import GaussianMixture

from .. import samplers as S
from ..adapters.kdiffusion.measure import comparator_law
from ..exact import ExactModel
from ..process.discrete import DiscreteVP
from ..testing.gaussian_law import affine_law

__all__ = ["Reference", "table_times", "ddim_law", "ddpm_law", "flow_law"]

Reference = Callable[[], tuple[torch.Tensor, torch.Tensor]]


def table_times(proc: DiscreteVP, steps: Sequence[int]) -> torch.Tensor:
    """Process times of training indices (index i sits at t = (i + 1) / T; -1 is the data, t = 0)."""
    return torch.tensor([(i + 1) / proc.T if i >= 0 else 0.0 for i in steps], dtype=torch.float64)


def _start(mix: GaussianMixture, proc: DiscreteVP, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    law = proc.marginal(mix, torch.tensor(t, dtype=torch.float64))
    return law.mean(), law.covariance()


def ddim_law(mix: GaussianMixture, proc: DiscreteVP, steps: Sequence[int]) -> Reference:
    """DDIM with eta = 0 (Song et al. 2020, Eq. 12) over training indices ``steps`` (ending with -1), from the exact law at the first."""
    grid = table_times(proc, steps)
    model = ExactModel(mix, proc, "x0")
    return lambda: affine_law(lambda x, nz: S.ddim(model, proc, x, grid), *_start(mix, proc, float(grid[0])))


def ddpm_law(mix: GaussianMixture, proc: DiscreteVP, steps: Sequence[int]) -> Reference:
    """DDPM's ancestral chain with variance beta_tilde (Ho et al. 2020, Alg. 2) over ``steps`` (then the data), from the exact law at the first."""
    grid = table_times(proc, list(steps) + [-1])
    model = ExactModel(mix, proc, "eps")
    return lambda: affine_law(lambda x, nz: S.ddpm_ancestral(model, proc, x, grid, generator=nz),
                              *_start(mix, proc, float(grid[0])))


def flow_law(mix: GaussianMixture, sigmas: Sequence[float], method: str) -> Reference:
    """Euler ("euler_ode") or Heun ("heun_ode", Karras et al. 2022, Alg. 1) in sigma over the ladder, from the exact law at sigmas[0]."""
    sig = torch.tensor(list(sigmas), dtype=torch.float64)
    return lambda: comparator_law(method, mix, sig)
