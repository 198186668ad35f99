"""Shape helpers: broadcast per-sample scalars against any batch of points or images."""

from __future__ import annotations

import torch

__all__ = ["per_sample", "batch_time"]


def per_sample(v: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor | float:
    """Reshape a scalar or a per-sample vector (B,) to (B, 1, ..., 1) so it broadcasts against ``x``.

    A number, or a 0-d host tensor beside an accelerator tensor, is returned as a Python float:
    it then multiplies a device tensor without a copy or a synchronisation.
    """
    if not isinstance(v, torch.Tensor):
        return float(v) if x.device.type != "cpu" else torch.as_tensor(v, dtype=x.dtype, device=x.device)
    if v.ndim == 0:
        if v.device.type == "cpu" and x.device.type != "cpu":
            return float(v)
        return v.to(dtype=x.dtype, device=x.device)
    if v.ndim != 1 or v.shape[0] != x.shape[0]:
        raise ValueError(
            f"a per-sample value must have shape ({x.shape[0]},) to match the batch of x {tuple(x.shape)}, "
            f"got {tuple(v.shape)}"
        )
    return v.to(dtype=x.dtype, device=x.device).reshape(-1, *([1] * (x.ndim - 1)))


def batch_time(t: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """A time (scalar or (B,)) as a (B,) tensor matching the batch of ``x``, in x's dtype and device."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        return t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a scalar or have shape ({x.shape[0]},), got {tuple(t.shape)}")
    return t
