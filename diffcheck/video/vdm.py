"""Conditional sampling of Video Diffusion Models (Ho et al. 2022, Sec. 3.1): replacement and reconstruction guidance.

Frames x^b are sampled given frames x^a with a model of the whole video. The replacement method runs an
unconditional sampler and, after every step to time s, overwrites z^a_s with a fresh draw of q(z^a_s | x^a)
(``diffcheck.impute.replacement``); its update of z^b uses E[x^b | z_t] where E[x^b | z_t, x^a] is needed.
Reconstruction guidance corrects the denoised free frames,
    x~^b(z_t) = x^b(z_t) − (w_r alpha_t / 2) grad_{z^b} ||x^a − x^a(z_t)||²,
the identity E[x^b | z_t, x^a] = E[x^b | z_t] + (sigma_t² / alpha_t) grad_{z^b} log q(x^a | z_t) with
q(x^a | z_t) replaced by N(x^a(z_t), (sigma_t² / alpha_t²) I / w_r). The guided model goes into the same
replacement loop, so z^a_s is still drawn from q(z^a_s | x^a).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from toy.gaussian import complement
from toy.validate import as_float_tensor, check_float

from ..impute import replacement
from ..param import Model, predict
from ..process.base import Process
from ..tensor import per_sample
from .exact import known_index

__all__ = ["ReconstructionGuided", "conditional_sample"]


class ReconstructionGuided:
    """Reconstruction guidance (Ho et al. 2022, Sec. 3.1) as an x_0-predicting model of the whole video: the free coordinates get x~^b.

    ``known``: flat coordinates of the conditioning frames; ``x_a``: their values, (B, k) per row or (k,) shared.
    The known coordinates of the output hold the model's own reconstruction x^a(z_t).
    """

    prediction = "x0"

    def __init__(self, model: Model, process: Process, known: Any, x_a: Any, w_r: float) -> None:
        if not callable(model):
            raise TypeError("model must be callable as model(x, t)")
        if not isinstance(process, Process):
            raise TypeError(f"process must be a Process, got {type(process).__name__}")
        self.model = model
        self.process = process
        self.w_r = check_float(w_r, "w_r", low=0.0)
        self.known = torch.as_tensor(known, dtype=torch.int64).reshape(-1)
        if self.known.numel() == 0:
            raise ValueError("known must name at least one coordinate")
        self.x_a = as_float_tensor(x_a, "x_a")
        if self.x_a.shape[-1] != self.known.numel() or self.x_a.ndim not in (1, 2):
            raise ValueError(f"x_a must have shape (B, {self.known.numel()}) or ({self.known.numel()},), got {tuple(self.x_a.shape)}")

    def __call__(self, z: torch.Tensor, t: Any, **kwargs: Any) -> torch.Tensor:
        b = z.shape[0]
        idx = known_index(self.known, z[0].numel(), allow_empty=False)
        free = complement(idx, z[0].numel())
        ref = self.x_a.to(z.dtype)
        ref = ref.expand(b, -1) if ref.ndim == 1 else ref
        if ref.shape[0] != b:
            raise ValueError(f"x_a holds {ref.shape[0]} rows but the batch has {b} samples")
        with torch.enable_grad():
            zr = z.detach().requires_grad_(True)
            x0 = predict(self.model, self.process, zr, t, "x0", **kwargs)
            err = ((ref - x0.reshape(b, -1)[:, idx]) ** 2).sum()
            (grad,) = torch.autograd.grad(err, zr)
        tt = torch.as_tensor(t, dtype=torch.float64) if not isinstance(t, torch.Tensor) else t
        alpha = per_sample(self.process.alpha(tt), grad.reshape(b, -1))
        out = x0.detach().reshape(b, -1).clone()
        out[:, free] = out[:, free] - (0.5 * self.w_r) * alpha * grad.reshape(b, -1)[:, free]
        return out.reshape(z.shape)


def conditional_sample(
    model: Model,
    process: Process,
    x_a: torch.Tensor,
    known: Any,
    x: torch.Tensor,
    grid: Any,
    *,
    step: Callable,
    generator: Any,
    w_r: float | None = None,
    **step_options: Any,
) -> torch.Tensor:
    """Frames x^b given x^a (B, k) at flat coordinates ``known``: replacement (``w_r=None``) or reconstruction guidance.

    ``step`` is a sampler step (``ancestral_step`` for DDPM, ``ddim_step`` for DDIM, ...); ``x`` the start x_T (B, ...)
    of the whole video. Returns whole videos with the known coordinates equal to x^a.
    """
    guided = model if w_r is None else ReconstructionGuided(model, process, known, x_a, w_r)
    return replacement(guided, process, x_a, known, x, grid, step=step, generator=generator, **step_options)
