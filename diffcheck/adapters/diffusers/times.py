"""A diffusers scheduler's table as a diffcheck process, and its timesteps and sigmas as process times, exactly.

- a training index tau (0-based; diffusers' ``timesteps``) is t = (tau + 1) / T, since
  diffcheck's step i of a table of T steps sits at t = i / T;
- a scheduler that scales its input by 1 / sqrt(sigma^2 + 1) (``scale_model_input``:
  Euler, Euler ancestral, Heun) works on x / alpha with sigma = sqrt((1 - abar) / abar);
  the model is evaluated at the time whose sigma/alpha is the sigma the scheduler scaled
  for;
- the score-SDE-VE scheduler passes sigma itself; the process is ``VE`` with the exact
  kernel, so that x_t = x_0 + sigma z at the time whose sigma is that sigma.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from ...process.base import Process
from ...process.continuous import VE
from ...process.discrete import DiscreteVP
from .schedulers import table

__all__ = ["ZeroTerminalVP", "process_for", "kind", "timestep_time", "sigma_time", "sample_space_alpha", "consecutive_unique",
           "walk_grid"]


class ZeroTerminalVP(DiscreteVP):
    """A DDPM table whose last beta is 1, so alpha_bar_T = 0 (zero terminal SNR; Lin et al. 2024, Alg. 1).

    ``DiscreteVP`` requires betas < 1; here log alpha_bar_T = -inf, so alpha = 0 and
    sigma = 1 on the last segment (t in ((T-1)/T, 1]) and x_T is pure noise.
    """

    def __init__(self, betas: Any) -> None:
        betas = torch.as_tensor(betas, dtype=torch.float64).reshape(-1)
        if betas.numel() < 2 or float(betas[-1]) != 1.0:
            raise ValueError("betas must hold at least 2 steps and end with exactly 1")
        super().__init__(torch.cat([betas[:-1], torch.full((1,), 0.5, dtype=torch.float64)]))
        self.betas = betas
        self._log_ab[-1] = -math.inf

    def __repr__(self) -> str:
        return f"ZeroTerminalVP(T={self.T}, beta_1={float(self.betas[0]):.4g})"


def process_for(scheduler) -> Process:
    """The diffcheck process of a scheduler: its DDPM table as ``DiscreteVP`` (``ZeroTerminalVP``), or ``VE``."""
    if hasattr(scheduler, "step_pred"):  # score-SDE-VE
        cfg = scheduler.config
        return VE(float(cfg.sigma_min), float(cfg.sigma_max), kernel="exact")
    ab = table(scheduler)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
    betas = 1.0 - ab / prev
    rising = torch.nonzero(betas <= 0).reshape(-1)
    if rising.numel():
        k = int(rising[0])
        raise ValueError(f"scheduler: its alpha_bar is not decreasing (index {k}: {float(ab[k]):.6g} >= {float(prev[k]):.6g} at "
                         f"index {k - 1}), so it is not the table of a forward process")
    if float(ab[-1]) == 0.0:
        betas[-1] = 1.0
        return ZeroTerminalVP(betas)
    return DiscreteVP(betas)


def kind(scheduler) -> str:
    """How the scheduler conditions its model: "index" (training index), "sigma" (input scaled by 1/sqrt(sigma^2+1)) or "ve"."""
    if hasattr(scheduler, "step_pred"):
        return "ve"
    probe = copy.deepcopy(scheduler)
    if probe.timesteps is None:  # PNDM before set_timesteps; its input is never scaled
        return "index"
    ones = torch.ones(1, 1, dtype=torch.float64)
    scaled = probe.scale_model_input(ones, probe.timesteps[0])
    return "index" if scaled is ones or bool(torch.equal(scaled, ones)) else "sigma"


def timestep_time(process: DiscreteVP, timestep: Any, index_shift: int = 0) -> float:
    """t = (tau + 1 + index_shift) / T for a diffusers training index tau (``index_shift`` 0 is the exact map; a shifted
    time is clamped to [0, 1])."""
    t = (float(timestep) + 1.0) / process.T
    if not -1e-12 <= t <= 1.0 + 1e-12:
        raise ValueError(f"timestep {float(timestep):g} maps outside [0, 1] on a table of {process.T} steps")
    return min(max(t + index_shift / process.T, 0.0), 1.0)


def sigma_time(process: Process, sigma: Any) -> float:
    """The time at which sigma(t)/alpha(t) = ``sigma``; sigma beyond the process's range (float32 rounding) is clamped."""
    s = float(sigma)
    if not s >= 0.0:
        raise ValueError(f"sigma must be non-negative, got {s}")
    if s == 0.0:
        return 0.0
    lam = torch.tensor(-2.0 * math.log(s), dtype=torch.float64)
    lo = float(process.log_snr(torch.ones((), dtype=torch.float64)))
    hi = float(process.log_snr(torch.zeros((), dtype=torch.float64)))
    if lam <= lo:
        return 1.0
    if lam >= hi:
        return 0.0
    return float(process.t_of_log_snr(lam))


def sample_space_alpha(scheduler, process: Process, t: float) -> float:
    """The factor x_scheduler = x_process / factor: alpha(t) for sigma-space schedulers (they hold x / alpha), else 1."""
    if kind(scheduler) != "sigma":
        return 1.0
    return float(process.alpha(torch.tensor(t, dtype=torch.float64)))


def consecutive_unique(values: list[float]) -> list[float]:
    """The values with runs of equal neighbours reduced to one."""
    out: list[float] = []
    for v in values:
        if not out or v != out[-1]:
            out.append(v)
    return out


def walk_grid(scheduler, process: Process) -> torch.Tensor:
    """The decreasing process times the scheduler's state passes through, ending where its output lies.

    For sigma-walking schedulers (Euler, Heun, Euler ancestral, DPM-Solver) the times of
    their sigmas; for DDPM the model-evaluation indices and then the data; for DDIM and
    PNDM the kept indices and then the point their last step lands on (the data with
    ``set_alpha_to_one``, else alpha_bar_0, i.e. t = 1/T); for score-SDE-VE the ladder of
    its predictor and then sigma = 0. Call after ``set_timesteps``.
    """
    if hasattr(scheduler, "step_pred"):
        sig = scheduler.discrete_sigmas.to(torch.float64).flip(0).tolist() + [0.0]
        return torch.tensor([sigma_time(process, s) for s in sig], dtype=torch.float64)
    steps = scheduler.timesteps
    if hasattr(scheduler, "sigmas") and len(scheduler.sigmas) == len(steps) + 1:
        sig = consecutive_unique([float(s) for s in scheduler.sigmas])
        return torch.tensor([sigma_time(process, s) for s in sig], dtype=torch.float64)
    T = process.T
    if hasattr(scheduler, "prk_timesteps"):  # PNDM: the kept indices, PRK half-steps aside
        kept = sorted({int(v) for v in scheduler._timesteps}, reverse=True)
    else:
        kept = [int(v) for v in steps]
    times = [(k + 1) / T for k in kept]
    if hasattr(scheduler, "final_alpha_cumprod"):
        prev = kept[-1] - T // scheduler.num_inference_steps
        if prev >= 0:
            times.append((prev + 1) / T)
        else:
            times.append(0.0 if float(scheduler.final_alpha_cumprod) == 1.0 else 1.0 / T)
    else:
        times.append(0.0)
    # a last step whose target equals its start (leading spacing ending at index 0 with the final
    # alpha_bar_0) changes nothing; the walk does not repeat that time
    return torch.tensor(consecutive_unique(times), dtype=torch.float64)

