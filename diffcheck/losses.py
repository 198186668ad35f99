"""Training objectives as functions of (model, process, x_0, t, generator), per-sample."""

from __future__ import annotations

from typing import Any

import torch

from toy.validate import check_choice

from .param import Model, predict
from .process.base import Process
from .tensor import batch_time, per_sample

__all__ = ["denoising_score_matching"]


def denoising_score_matching(
    model: Model,
    process: Process,
    x0: torch.Tensor,
    t: Any,
    generator: torch.Generator | None = None,
    *,
    weight: str = "sigma2",
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-sample DSM loss lambda(t) * 1/2 |s(x_t, t) + eps / sigma|^2 (Vincent 2011; Song & Ermon 2019, Eq. 5-6).

    ``weight="sigma2"`` is NCSN's lambda(sigma) = sigma^2 (its code's anneal_power 2),
    ``"none"`` the unweighted objective. ``eps`` fixes the noise (else drawn with ``generator``).
    """
    weight = check_choice(weight, "weight", ("sigma2", "none"))
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    elif eps.shape != x0.shape:
        raise ValueError(f"eps must have the shape of x0 {tuple(x0.shape)}, got {tuple(eps.shape)}")
    tb = batch_time(t, x0)
    sig = process.sigma(tb)
    xt = per_sample(process.alpha(tb), x0) * x0 + per_sample(sig, x0) * eps
    score = predict(model, process, xt, tb, "score")
    per = 0.5 * (score + eps / per_sample(sig, x0)).reshape(x0.shape[0], -1).pow(2).sum(-1)
    return per * sig**2 if weight == "sigma2" else per
