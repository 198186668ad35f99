"""Simulation of the forward SDE dx = f(t) x dt + g(t) dW by Euler-Maruyama."""

from __future__ import annotations

from typing import Callable

import torch

from toy.validate import check_float, check_int

from .process.base import Process
from .tensor import per_sample

__all__ = ["simulate_forward"]


def simulate_forward(
    process: Process,
    x0: torch.Tensor,
    t_end: float,
    steps: int,
    generator: torch.Generator | None = None,
    *,
    g2_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Euler-Maruyama from t = 0 to ``t_end`` in ``steps`` equal steps; ``g2_fn`` overrides g^2(t)."""
    t_end = check_float(t_end, "t_end", low=0.0, high=1.0, low_open=True)
    steps = check_int(steps, "steps", minimum=1)
    ts = torch.linspace(0.0, t_end, steps + 1, dtype=torch.float64)
    dt = t_end / steps
    f = process.f(ts).tolist()
    g2 = (process.g2(ts) if g2_fn is None else g2_fn(ts)).tolist()
    x = x0.clone()
    for k in range(steps):
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = x + (f[k] * dt) * x + (g2[k] * dt) ** 0.5 * z
    return x
