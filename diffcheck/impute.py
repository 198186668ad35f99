"""Conditional sampling of masked coordinates: the replacement method and the exact conditional sampler.

The replacement method (Song et al. 2021, App. I.2) runs an unconditional sampler and,
after every step to time s, overwrites the known coordinates with a fresh draw of
alpha_s x_known + sigma_s z. It conditions the unknown coordinates on the noised known
ones through E[x_unknown | z_t] instead of E[x_unknown | z_t, x_known], and is biased
(Ho et al. 2022, Sec. 3.1). The exact conditional sampler runs the same sampler on the
exact model of the conditional mixture of the unknown coordinates.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from toy.gaussian import complement
from toy.mixture import GaussianMixture
from toy.validate import as_index_tensor

from .exact import ExactModel
from .param import Model
from .process.base import Process
from .samplers.base import make_noise
from .samplers.loop import Coefficients, walk

__all__ = ["replacement", "exact_conditional"]


def _index(known: Any, dim: int) -> torch.Tensor:
    idx = as_index_tensor(known, "known").reshape(-1)
    if idx.numel() == 0 or bool((idx < 0).any() or (idx >= dim).any()) or idx.unique().numel() != idx.numel():
        raise ValueError(f"known must be distinct coordinates in [0, {dim - 1}], got {idx.tolist()}")
    if idx.numel() == dim:
        raise ValueError("known must leave at least one coordinate unknown")
    return idx


def replacement(
    model: Model,
    process: Process,
    x_known: torch.Tensor,
    known: Any,
    x: torch.Tensor,
    grid: Any,
    *,
    step: Callable,
    generator: Any,
    **step_options: Any,
) -> torch.Tensor:
    """The replacement method with any sampler ``step`` (e.g. ``ancestral_step``, ``ddim_step``, ``euler_step``).

    ``x_known`` holds the known values (B, k) of the flat coordinates ``known``; ``x`` is the
    start x_T (B, D). Returns the completed samples with the known coordinates exact.
    """
    flat = x.reshape(x.shape[0], -1)
    idx = _index(known, flat.shape[1])
    if x_known.shape != (x.shape[0], idx.numel()):
        raise ValueError(f"x_known must have shape ({x.shape[0]}, {idx.numel()}), got {tuple(x_known.shape)}")
    noise = make_noise(generator)

    def replaced(model_, process_, y, t, s, noise_, *, last=False, coef: Coefficients | None = None, **kw):
        out, mean = step(model_, process_, y, t, s, noise_, last=last, coef=coef, **kw)
        a, sig = process_.alpha(s), process_.sigma(s)
        fresh = float(a) * x_known + float(sig) * noise(x_known)
        out = out.reshape(out.shape[0], -1).clone()
        out[:, idx] = fresh
        return out.reshape(y.shape), mean

    out = walk(replaced, model, process, x, grid, generator=generator, name="replacement", **step_options)
    out = out.reshape(out.shape[0], -1).clone()
    out[:, idx] = x_known
    return out.reshape(x.shape)


def exact_conditional(
    mixture: GaussianMixture,
    process: Process,
    x_known: torch.Tensor,
    known: Any,
    x_unknown_T: torch.Tensor,
    grid: Any,
    *,
    sampler: Callable,
    prediction: str = "eps",
    **sampler_options: Any,
) -> torch.Tensor:
    """Run ``sampler`` on the exact model of the conditional mixture of the unknown coordinates given one known value.

    ``x_known`` is a single known vector (k,) shared by the batch; ``x_unknown_T`` the start
    of the unknown coordinates (B, D - k). Returns full vectors with the known part exact.
    """
    idx = _index(known, mixture.dim)
    if x_known.ndim != 1 or x_known.shape[0] != idx.numel():
        raise ValueError(f"x_known must be one vector of {idx.numel()} known values, got shape {tuple(x_known.shape)}")
    cond = mixture.condition(idx, x_known)
    free = complement(idx, mixture.dim)
    samples = sampler(ExactModel(cond, process, prediction), process, x_unknown_T, grid, **sampler_options)
    out = torch.empty(samples.shape[0], mixture.dim, dtype=samples.dtype)
    out[:, free] = samples
    out[:, idx] = x_known.to(samples.dtype)
    return out
