"""Discretisation maps of the score SDE paper (Song et al. 2021, App. B): VP <-> DDPM, VE <-> SMLD."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from toy.validate import as_float_tensor, check_float, check_int

__all__ = ["vp_to_ddpm_betas", "ddpm_to_vp", "ve_to_smld_sigmas", "smld_to_ve"]


def vp_to_ddpm_betas(beta_min: float = 0.1, beta_max: float = 20.0, N: int = 1000) -> torch.Tensor:
    """beta_i = beta_min/N + (i - 1)(beta_max - beta_min)/(N (N - 1)), i = 1..N: DDPM's table for the VP SDE."""
    beta_min = check_float(beta_min, "beta_min", low=0.0, low_open=True)
    beta_max = check_float(beta_max, "beta_max", low=beta_min)
    N = check_int(N, "N", minimum=2)
    i = torch.arange(1, N + 1, dtype=torch.float64)
    betas = beta_min / N + (i - 1) * (beta_max - beta_min) / (N * (N - 1))
    if float(betas.max()) >= 1.0:
        raise ValueError(f"N={N} is too small: beta_max/N = {beta_max / N:.4g} is not below 1")
    return betas


def ddpm_to_vp(betas: Any, rtol: float = 1e-9) -> tuple[float, float]:
    """(beta_min, beta_max) = (N beta_1, N beta_N) of a linear DDPM table (checked to be linear)."""
    b = as_float_tensor(betas, "betas", dtype=torch.float64, ndim=1)
    N = b.numel()
    if N < 2:
        raise ValueError("betas must hold at least 2 steps")
    line = torch.from_numpy(np.linspace(float(b[0]), float(b[-1]), N))
    if float((b - line).abs().max()) > rtol * float(b.abs().max()):
        raise ValueError("betas must be linear in the step index to map onto the VP SDE")
    return N * float(b[0]), N * float(b[-1])


def ve_to_smld_sigmas(sigma_min: float = 0.01, sigma_max: float = 50.0, N: int = 1000) -> torch.Tensor:
    """sigma_i = sigma_min (sigma_max/sigma_min)^((i-1)/(N-1)), i = 1..N: the SMLD ladder of the VE SDE (increasing)."""
    sigma_min = check_float(sigma_min, "sigma_min", low=0.0, low_open=True)
    sigma_max = check_float(sigma_max, "sigma_max", low=0.0, low_open=True)
    if sigma_min >= sigma_max:
        raise ValueError("sigma_min must be < sigma_max")
    N = check_int(N, "N", minimum=2)
    return torch.from_numpy(np.exp(np.linspace(math.log(sigma_min), math.log(sigma_max), N)))


def smld_to_ve(sigmas: Any, rtol: float = 1e-9) -> tuple[float, float]:
    """(sigma_min, sigma_max) of a geometric SMLD ladder (either order; checked to be geometric)."""
    s = as_float_tensor(sigmas, "sigmas", dtype=torch.float64, ndim=1)
    if s.numel() < 2 or bool((s <= 0).any()):
        raise ValueError("sigmas must hold at least 2 positive levels")
    s = s.sort().values
    logs = torch.log(s)
    line = torch.from_numpy(np.linspace(float(logs[0]), float(logs[-1]), s.numel()))
    if float((logs - line).abs().max()) > rtol * max(1.0, float(logs.abs().max())):
        raise ValueError("sigmas must be geometric to map onto the VE SDE")
    return float(s[0]), float(s[-1])
