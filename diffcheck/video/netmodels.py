"""The one place where the reference video networks (``diffcheck.nets.video``) become MCVD and RaMViD models of a DDPM process.

The toy video MLP becomes such a model in ``diffcheck.video.toynet``; image networks in
``diffcheck.nets.wrap``.

Videos here are (B, F, C, H, W), frames on axis 1. Both networks take the 0-based step index of a DDPM table as
their noise input (improved-diffusion rescales it by 1000/T; MCVD's table has T = 1000) and predict eps.

- ``MCVDNetModel``: ``model(z, t, cond=..., cond_mask=...)`` with ``z`` the noised current block and ``cond`` the past
  then future frames; MCVD's network stacks frames on channels, frame-major, and takes the past bit of the mask
  state as its ``cond_mask`` (a zeroed future block reaches it as zeros, as in mcvd-pytorch's ``conditioning_fn``).
- ``RaMViDNetModel``: ``model(x, t, mask=...)`` with clean conditioning frames inside ``x``; RaMViD's 3D U-Net takes
  (B, C, F, H, W) and is not told the mask.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..process.discrete import DiscreteVP

__all__ = ["step_index", "MCVDNetModel", "RaMViDNetModel"]


def step_index(process: DiscreteVP, t: Any, batch: int, device: torch.device | None = None) -> Tensor:
    """The 0-based DDPM step i = t·T − 1 of grid times t (scalar or (B,)), as int64 (B,); t must be a step time."""
    if not isinstance(process, DiscreteVP):
        raise TypeError(f"process must be a DiscreteVP (the networks take DDPM step indices), got {type(process).__name__}")
    tt = torch.as_tensor(t, dtype=torch.float64)
    tt = tt.expand(batch) if tt.ndim == 0 else tt
    if tt.shape != (batch,):
        raise ValueError(f"t must be a scalar or have shape ({batch},), got {tuple(tt.shape)}")
    pos = tt * process.T
    i = torch.round(pos)
    if bool(((pos - i).abs() > 1e-6).any()) or bool((i < 1).any()):
        raise ValueError("t must be DDPM step times i/T with i >= 1 (the networks are conditioned on step indices)")
    return (i.to(torch.int64) - 1).to(device)


class MCVDNetModel(nn.Module):
    """MCVD's network as ``model(z, t, cond=..., cond_mask=...)`` -> eps of the current block (B, F, C, H, W)."""

    prediction = "eps"

    def __init__(self, net: nn.Module, process: DiscreteVP) -> None:
        super().__init__()
        if not isinstance(process, DiscreteVP) or process.T != 1000:
            raise ValueError("MCVD's network is conditioned on the steps of a 1000-step DDPM table: process must be one")
        self.net, self.process = net, process

    def forward(self, z: Tensor, t: Any, cond: Tensor | None = None, cond_mask: Tensor | None = None) -> Tensor:
        if z.ndim != 5:
            raise ValueError(f"z must be a video batch (B, F, C, H, W), got {tuple(z.shape)}")
        b, f, c, h, w = z.shape
        kw: dict[str, Tensor] = {}
        if cond is not None:
            kw["cond"] = cond.reshape(b, -1, h, w).to(z.dtype)
            if cond_mask is not None:
                bits = torch.as_tensor(cond_mask).reshape(b, -1)
                kw["cond_mask"] = bits[:, 0].to(torch.long).to(z.device)
        out = self.net(z.reshape(b, f * c, h, w), step_index(self.process, t, b, z.device), **kw)
        return out.reshape(z.shape)


class RaMViDNetModel(nn.Module):
    """RaMViD's 3D U-Net as ``model(x, t, mask=None)`` -> eps of every frame (B, F, C, H, W); the mask is not its input."""

    prediction = "eps"

    def __init__(self, net: nn.Module, process: DiscreteVP) -> None:
        super().__init__()
        if not isinstance(process, DiscreteVP):
            raise TypeError(f"process must be a DiscreteVP, got {type(process).__name__}")
        self.net, self.process = net, process

    def forward(self, x: Tensor, t: Any, mask: Tensor | None = None) -> Tensor:
        if x.ndim != 5:
            raise ValueError(f"x must be a video batch (B, F, C, H, W), got {tuple(x.shape)}")
        b = x.shape[0]
        noise = step_index(self.process, t, b, x.device).to(x.dtype) * (1000.0 / self.process.T)
        return self.net(x.transpose(1, 2), noise).transpose(1, 2)
