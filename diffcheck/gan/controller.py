"""The adaptive chain length: T <- T + sign(r_d - d_target) * C, r_d = E[sign(D(y, t) - 1/2)] on real data (Wang et al. 2022, adaptive diffusion).

Official code (``training_loop.py``, StyleGAN2-ADA's heuristic): every ``ada_interval`` = 4 iterations
r_d is the mean sign of the real logits since the last update; a level p in [0, 1] moves by
sign(r_d - target) * batch * interval / (ada_kimg * 1000) and T = t_min + round(p (t_max - t_min)).
With level = t_min + p (t_max - t_min) this is the paper's rule with
C = (t_max - t_min) * batch * interval / (ada_kimg * 1000), a level clamped to [t_min, t_max] and
T = t_min + round(level - t_min) (Python's round: halves to even). Defaults: target 0.6, T in
[10, 1000], ada_kimg 100 (``train.py``), starting at T = t_min.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from toy.validate import check_float, check_int

__all__ = ["AdaptiveT", "official_step", "discriminator_rd"]


def official_step(batch_size: int, interval: int = 4, ada_kimg: float = 100.0, t_min: int = 10, t_max: int = 1000) -> float:
    """The official code's step C in units of T: (t_max - t_min) * batch * interval / (ada_kimg * 1000)."""
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    interval = check_int(interval, "interval", minimum=1)
    ada_kimg = check_float(ada_kimg, "ada_kimg", low=0.0, low_open=True)
    t_min = check_int(t_min, "t_min", minimum=1)
    t_max = check_int(t_max, "t_max", minimum=t_min)
    return (t_max - t_min) * batch_size * interval / (ada_kimg * 1000.0)


def discriminator_rd(logits: torch.Tensor) -> float:
    """r_d = mean of sign(D(y, t) - 1/2) = mean of sign(logit) over real samples (sign(0) = 0)."""
    if not isinstance(logits, torch.Tensor) or logits.numel() == 0:
        raise ValueError("logits must be a non-empty tensor")
    return float(torch.sign(logits.detach()).double().mean())


@dataclass(frozen=True)
class AdaptiveT:
    """The T controller; ``level`` is its continuous state, ``T(level)`` the chain length in use."""

    target: float = 0.6
    t_min: int = 10
    t_max: int = 1000
    step: float = 1.0
    interval: int = 4

    def __post_init__(self) -> None:
        check_float(self.target, "target", low=-1.0, high=1.0)
        check_int(self.t_min, "t_min", minimum=1)
        check_int(self.t_max, "t_max", minimum=self.t_min)
        check_float(self.step, "step", low=0.0)
        check_int(self.interval, "interval", minimum=1)

    @property
    def start(self) -> float:
        """The initial level (official: p = 0, i.e. T = t_min)."""
        return float(self.t_min)

    def update(self, level: float, r_d: float) -> float:
        """level + sign(r_d - target) * step, clamped to [t_min, t_max]."""
        level = check_float(level, "level")
        r_d = check_float(r_d, "r_d", low=-1.0, high=1.0)
        new = level + float(np.sign(r_d - self.target)) * self.step
        return min(max(new, float(self.t_min)), float(self.t_max))

    def T(self, level: float) -> int:
        """The chain length for a level: t_min + round(level - t_min), clamped to [t_min, t_max]."""
        level = check_float(level, "level")
        t = self.t_min + int(round(level - self.t_min))
        return int(min(max(t, self.t_min), self.t_max))

    def simulate(self, estimate_rd, updates: int, generator: torch.Generator, start: float | None = None) -> dict[str, list]:
        """Run ``updates`` controller steps, r_d from ``estimate_rd(T, generator)``; returns the T and r_d sequences."""
        updates = check_int(updates, "updates", minimum=1)
        level = self.start if start is None else check_float(start, "start", low=self.t_min, high=self.t_max)
        Ts, rds, levels = [], [], []
        for _ in range(updates):
            T = self.T(level)
            rd = float(estimate_rd(T, generator))
            level = self.update(level, rd)
            Ts.append(T)
            rds.append(rd)
            levels.append(level)
        return {"T": Ts, "rd": rds, "level": levels}

    def settle_point(self, rd_of_T, lo: int | None = None, hi: int | None = None) -> float:
        """The T in [t_min, t_max] where a decreasing r_d(T) crosses the target (linear interpolation between integers)."""
        lo = self.t_min if lo is None else lo
        hi = self.t_max if hi is None else hi
        Ts = np.arange(lo, hi + 1)
        vals = np.array([float(rd_of_T(int(T))) for T in Ts])
        above = vals > self.target
        if above.all():
            return float(hi)
        if not above.any():
            return float(lo)
        k = int(np.argmin(above))  # first T below the target
        if k == 0:
            return float(lo)
        v0, v1 = vals[k - 1], vals[k]
        frac = (v0 - self.target) / (v0 - v1) if v0 != v1 else 0.0
        return float(Ts[k - 1] + frac)

