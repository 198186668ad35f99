"""A small conditional MLP for toy videos, and the one place where it becomes an MCVD or RaMViD model of a process.

The reference video networks become such models in ``diffcheck.video.netmodels``.

The network ``ToyVideoNet(x, noise, cond, mask)`` maps a noised block (B, in_dim), clean conditioning values
(B, cond_dim) and mask bits (B, mask_dim) to eps (B, out_dim). The noise input is the log-SNR
lambda(t) = log(alpha²/sigma²) (Kingma et al. 2021), which varies smoothly over the whole schedule; it enters
through DDPM's sinusoidal features and a Linear–SiLU–Linear MLP, the mask bits through a linear embedding, and
both are added to every residual block, as the time embedding of the DDPM U-Net is. A linear path from the inputs
to the output runs beside the residual trunk: on a Gaussian video the Bayes-optimal eps is linear in the inputs
with coefficients that depend on (t, mask), which the trunk then only has to modulate.

Input scaling (Karras et al. 2022, Table 1): noised values are divided by sqrt(alpha² s_d² + sigma²) and clean
values by s_d, so the network sees unit-scale inputs; it predicts eps directly.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from toy.validate import check_float, check_int

from ..nets.common import TimestepMLP, ddpm_timestep_embedding
from ..process.base import Process
from ..tensor import per_sample
from .frames import coord_mask
from .mcvd import Blocks

__all__ = ["ToyVideoNet", "MCVDToyModel", "RaMViDToyModel"]


class _Block(nn.Module):
    """h + W2 SiLU(W1 SiLU(h) + e): a residual block with the embedding added inside."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, h: Tensor, e: Tensor) -> Tensor:
        return h + self.fc2(F.silu(self.fc1(F.silu(h)) + e))


class ToyVideoNet(nn.Module):
    """``net(x, noise, cond=None, mask=None)`` -> eps (B, out_dim) for a noised block x (B, in_dim) at log-SNR ``noise`` (B,)."""

    def __init__(self, in_dim: int, out_dim: int, cond_dim: int = 0, mask_dim: int = 0, *, hidden: int = 128,
                 blocks: int = 2, embed_dim: int = 32) -> None:
        super().__init__()
        self.in_dim = check_int(in_dim, "in_dim", minimum=1)
        self.out_dim = check_int(out_dim, "out_dim", minimum=1)
        self.cond_dim = check_int(cond_dim, "cond_dim", minimum=0)
        self.mask_dim = check_int(mask_dim, "mask_dim", minimum=0)
        check_int(hidden, "hidden", minimum=1)
        check_int(blocks, "blocks", minimum=0)
        self.embed_dim = check_int(embed_dim, "embed_dim", minimum=2)
        if embed_dim % 2:
            raise ValueError(f"embed_dim must be even, got {embed_dim}")
        width = in_dim + cond_dim + mask_dim
        self.time = TimestepMLP(embed_dim, hidden)
        self.mask_embed = nn.Linear(mask_dim, hidden) if mask_dim else None
        self.inp = nn.Linear(width, hidden)
        self.blocks = nn.ModuleList(_Block(hidden) for _ in range(blocks))
        self.out = nn.Linear(hidden, out_dim)
        self.linear = nn.Linear(width, out_dim, bias=False)

    def forward(self, x: Tensor, noise: Tensor, cond: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        b = x.shape[0]
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x must have shape (B, {self.in_dim}), got {tuple(x.shape)}")
        if noise.shape != (b,):
            raise ValueError(f"noise must have shape ({b},), got {tuple(noise.shape)}")
        parts = [x]
        for name, v, n in (("cond", cond, self.cond_dim), ("mask", mask, self.mask_dim)):
            if n == 0:
                if v is not None and v.numel():
                    raise ValueError(f"{name} was given but the network takes none")
                continue
            if v is None or v.shape != (b, n):
                raise ValueError(f"{name} must have shape ({b}, {n}), got {None if v is None else tuple(v.shape)}")
            parts.append(v.to(x.dtype))
        h_in = torch.cat(parts, 1)
        e = self.time(ddpm_timestep_embedding(noise.to(x.dtype), self.embed_dim))
        if self.mask_embed is not None:
            e = e + self.mask_embed(mask.to(x.dtype))
        h = self.inp(h_in) + e
        for block in self.blocks:
            h = block(h, e)
        return self.out(F.silu(h)) + self.linear(h_in)


def _c_in(process: Process, t: Tensor, data_std: float) -> Tensor:
    a, s = process.alpha(t), process.sigma(t)
    return torch.rsqrt(a * a * data_std**2 + s * s)


def _times(t: Any, b: int) -> Tensor:
    tt = torch.as_tensor(t, dtype=torch.float64)
    tt = tt.expand(b) if tt.ndim == 0 else tt
    if tt.shape != (b,):
        raise ValueError(f"t must be a scalar or have shape ({b},), got {tuple(tt.shape)}")
    return tt


class MCVDToyModel(nn.Module):
    """A ToyVideoNet as MCVD's model: ``model(z, t, cond=..., cond_mask=state)`` -> eps of the current block."""

    prediction = "eps"

    def __init__(self, net: ToyVideoNet, process: Process, blocks: Blocks, frame_size: int, data_std: float = 1.0) -> None:
        super().__init__()
        if net.in_dim != blocks.current * frame_size or net.out_dim != net.in_dim:
            raise ValueError(f"net must map {blocks.current * frame_size} values to as many, got {net.in_dim} -> {net.out_dim}")
        if net.cond_dim != blocks.cond_frames * frame_size or net.mask_dim != 2:
            raise ValueError(f"net must take {blocks.cond_frames * frame_size} conditioning values and 2 mask bits")
        self.net, self.process, self.blocks, self.frame_size = net, process, blocks, frame_size
        self.data_std = check_float(data_std, "data_std", low=0.0, low_open=True)

    def forward(self, z: Tensor, t: Any, cond: Tensor | None = None, cond_mask: Tensor | None = None) -> Tensor:
        b = z.shape[0]
        tt = _times(t, b)
        dtype = next(self.net.parameters()).dtype
        state = torch.zeros(b, 2, dtype=torch.bool) if cond_mask is None else torch.as_tensor(cond_mask).reshape(b, 2)
        cond = torch.zeros(b, self.net.cond_dim, dtype=z.dtype) if cond is None else cond.reshape(b, -1)
        x = (per_sample(_c_in(self.process, tt, self.data_std), z) * z).reshape(b, -1)
        out = self.net(x.to(dtype), self.process.log_snr(tt).to(dtype), (cond / self.data_std).to(dtype), state.to(dtype))
        return out.to(z.dtype).reshape(z.shape)


class RaMViDToyModel(nn.Module):
    """A ToyVideoNet as RaMViD's model: ``model(x, t, mask=...)`` -> eps of every frame, clean frames marked by ``mask``.

    The network reads the noised frames and the clean frames through separate inputs (each zero where the other
    kind is), and the mask bits: the video itself is one tensor, as RaMViD's is.
    """

    prediction = "eps"

    def __init__(self, net: ToyVideoNet, process: Process, frames: int, frame_size: int, data_std: float = 1.0) -> None:
        super().__init__()
        d = frames * frame_size
        if net.in_dim != d or net.out_dim != d or net.cond_dim != d or net.mask_dim != frames:
            raise ValueError(f"net must map {d} noised and {d} clean values and {frames} mask bits to {d} values")
        self.net, self.process, self.frames, self.frame_size = net, process, frames, frame_size
        self.data_std = check_float(data_std, "data_std", low=0.0, low_open=True)

    def forward(self, x: Tensor, t: Any, mask: Tensor | None = None) -> Tensor:
        b = x.shape[0]
        tt = _times(t, b)
        dtype = next(self.net.parameters()).dtype
        mask = torch.zeros(b, self.frames, dtype=torch.bool) if mask is None else torch.as_tensor(mask).reshape(-1, self.frames).expand(b, -1)
        flat = x.reshape(b, -1)
        clean = coord_mask(mask, self.frame_size).to(flat.device)
        noised = torch.where(clean, 0.0, per_sample(_c_in(self.process, tt, self.data_std), flat).to(flat.dtype) * flat)
        kept = torch.where(clean, flat / self.data_std, 0.0)
        out = self.net(noised.to(dtype), self.process.log_snr(tt).to(dtype), kept.to(dtype), mask.to(dtype))
        return out.to(x.dtype).reshape(x.shape)
