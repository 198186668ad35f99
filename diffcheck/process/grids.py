"""Time grids for samplers: decreasing tensors of times, walked pairwise from noise to data."""

from __future__ import annotations

from typing import Any

import torch

from toy.validate import as_float_tensor, as_index_tensor, check_float, check_int

from .base import Process
from .discrete import DiscreteVP, ddim_steps, iddpm_steps
from .ladders import karras_sigmas

__all__ = ["uniform_grid", "ddpm_grid", "respaced_grid", "ddim_grid", "iddpm_grid", "karras_grid", "sigma_grid", "check_grid"]


def check_grid(grid: Any, name: str = "grid") -> torch.Tensor:
    """Validate a sampler grid: a 1-D tensor of at least 2 strictly decreasing times in [0, 1]."""
    g = as_float_tensor(grid, name, ndim=1)
    if g.numel() < 2:
        raise ValueError(f"{name} must hold at least 2 times, got {g.numel()}")
    if float(g.min()) < 0.0 or float(g.max()) > 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got values in [{float(g.min()):.6g}, {float(g.max()):.6g}]")
    if bool((g[1:] >= g[:-1]).any()):
        raise ValueError(f"{name} must be strictly decreasing (samplers walk from noise to data)")
    return g


def uniform_grid(steps: int, t_start: float = 1.0, t_end: float = 1e-3) -> torch.Tensor:
    """``steps`` equal steps from t_start down to t_end (steps + 1 times), as score SDE samplers use."""
    steps = check_int(steps, "steps", minimum=1)
    t_start = check_float(t_start, "t_start", low=0.0, high=1.0)
    t_end = check_float(t_end, "t_end", low=0.0, high=1.0)
    if t_end >= t_start:
        raise ValueError(f"t_end must be < t_start, got t_start={t_start}, t_end={t_end}")
    return torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64)


def _require_discrete(process: Process) -> DiscreteVP:
    if not isinstance(process, DiscreteVP):
        raise TypeError(f"process must be a DiscreteVP (a DDPM table), got {type(process).__name__}")
    return process


def ddpm_grid(process: DiscreteVP) -> torch.Tensor:
    """Every DDPM step T, T-1, ..., 1 and then 0 (the data), as times."""
    p = _require_discrete(process)
    return p.times(torch.arange(p.T, -1, -1))


def respaced_grid(process: DiscreteVP, steps: Any) -> torch.Tensor:
    """Kept 1-based steps (any subset of 1..T) and then 0, as decreasing times (Nichol & Dhariwal 2021)."""
    p = _require_discrete(process)
    s = as_index_tensor(steps, "steps")
    if s.ndim > 1:
        raise ValueError(f"steps must be one list of steps, got shape {tuple(s.shape)}")
    s = s.reshape(-1)
    if s.numel() == 0:
        raise ValueError("steps must keep at least one step")
    if bool((s < 1).any()) or bool((s > p.T).any()):
        raise ValueError(f"steps must lie in [1, {p.T}]")
    s = s.unique()
    return p.times(torch.cat([s.flip(0), torch.zeros(1, dtype=s.dtype)]))


def ddim_grid(process: DiscreteVP, S: int, kind: str = "uniform") -> torch.Tensor:
    """DDIM's uniform or quadratic skip of S steps (see ``ddim_steps``), then 0, as decreasing times."""
    p = _require_discrete(process)
    return respaced_grid(p, ddim_steps(p.T, S, kind))


def iddpm_grid(process: DiscreteVP, section_counts) -> torch.Tensor:
    """Improved DDPM's respacing ``section_counts`` (e.g. [250] or "ddim50"), then 0, as decreasing times."""
    p = _require_discrete(process)
    return respaced_grid(p, iddpm_steps(p.T, section_counts))


def karras_grid(
    process: Process, n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, *, append_zero: bool = True
) -> torch.Tensor:
    """Karras et al. (2022) levels of sigma/alpha mapped to the process's times; optionally then t = 0."""
    s = karras_sigmas(n, sigma_min, sigma_max, rho)
    t = process.t_of_edm_sigma(s)
    if append_zero:
        t = torch.cat([t, torch.zeros(1, dtype=t.dtype)])
    return check_grid(t)


def sigma_grid(process: Process, sigmas: Any, *, append_zero: bool = False) -> torch.Tensor:
    """Decreasing noise levels sigma/alpha (e.g. an NCSN ladder) mapped to the process's times."""
    s = as_float_tensor(sigmas, "sigmas", dtype=torch.float64, ndim=1)
    try:
        t = process.t_of_edm_sigma(s)
    except ValueError as err:
        raise ValueError(f"sigmas must be noise levels of {process!r}: {err}") from None
    if append_zero:
        t = torch.cat([t, torch.zeros(1, dtype=t.dtype)])
    return check_grid(t, "sigmas (as times)")
