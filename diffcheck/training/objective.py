"""The loss function the training loop takes, ``loss_fn(model, batch, generator)``, built from ``diffcheck.losses``.

The losses themselves (one value per sample) have one place, ``diffcheck.losses``; the
recipes that pair a loss with a process, a toy network and a sampler are
``diffcheck.learned.objectives``; the checks of the losses' minima are
``diffcheck.checks.objectives``. This module only draws t and averages.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .. import losses
from ..process.base import Process
from ..process.discrete import DiscreteVP

__all__ = ["eps_mse_objective"]


def eps_mse_objective(process: Process, *, t_min: float | None = None):
    """``loss_fn(model, batch, generator)``: mean |ε̂(α x_0 + σ ε, t) − ε|² (L_simple, Ho et al. 2020, Eq. 14).

    t is a uniform DDPM step i/T for a DiscreteVP, else uniform on [t_min, 1] (default ``process.t_eps``); the
    batch is x_0 or (x_0, labels, ...), and labels are passed as ``y`` when the model is class-conditional.
    """
    if not isinstance(process, Process):
        raise TypeError(f"process must be a Process, got {type(process).__name__}")
    lo = process.t_eps if t_min is None else float(t_min)
    if not 0.0 <= lo < 1.0:
        raise ValueError(f"t_min must lie in [0, 1), got {t_min!r}")

    def loss_fn(model: nn.Module, batch: Any, generator: torch.Generator) -> Tensor:
        x0 = batch[0] if isinstance(batch, (tuple, list)) else batch
        n, device = x0.shape[0], x0.device
        if isinstance(process, DiscreteVP):
            t = torch.randint(1, process.T + 1, (n,), generator=generator, device=device).double() / process.T
        else:
            t = lo + (1.0 - lo) * torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        kwargs = {}
        if isinstance(batch, (tuple, list)) and len(batch) > 1 and getattr(getattr(model, "config", None), "label_classes", None):
            kwargs["y"] = batch[1]
        return losses.eps_mse(model, process, x0, t, generator, reduce="mean", **kwargs).mean()

    return loss_fn
