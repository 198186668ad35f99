"""Generators G(z) and timestep-conditioned discriminators D(y, t) for Diffusion-GAN (Wang et al. 2022).

Two sizes: MLPs for 2D point clouds, and DCGAN-style convolutional networks (Radford et al. 2016:
strided (transposed) 4×4 convolutions, batch norm in G, leaky ReLU in D) for small images such as the
8×8 digits. A discriminator returns one logit per sample; D(y, t) = sigmoid(logit). The diffusion step
``t`` is an integer in [0, t_scale] (t = 0: no noise) and enters through sinusoidal features of
``t / t_scale``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from toy.validate import check_float, check_int

from .common import ddpm_timestep_embedding

__all__ = [
    "MLPGenerator",
    "MLPDiscriminator",
    "DCGANGenerator",
    "DCGANDiscriminator",
    "MLPGANConfig",
    "DCGANConfig",
]


def _t_features(t: Tensor, batch: int, dim: int, t_scale: float, device) -> Tensor:
    """Sinusoidal features of t / t_scale (scaled by 1000 so that one step of a 1000-step chain is resolved)."""
    t = torch.as_tensor(t, device=device)
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"t must be a scalar or have shape ({batch},), got {tuple(t.shape)}")
    return ddpm_timestep_embedding(t.float() * (1000.0 / t_scale), dim)


class MLPGenerator(nn.Module):
    """z (B, z_dim) -> x (B, out_dim): ``depth`` hidden layers of width ``hidden`` with leaky ReLU."""

    def __init__(self, z_dim: int = 8, out_dim: int = 2, hidden: int = 128, depth: int = 3) -> None:
        super().__init__()
        self.z_dim = check_int(z_dim, "z_dim", minimum=1)
        self.out_dim = check_int(out_dim, "out_dim", minimum=1)
        hidden = check_int(hidden, "hidden", minimum=1)
        depth = check_int(depth, "depth", minimum=1)
        layers: list[nn.Module] = []
        width = self.z_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        layers.append(nn.Linear(width, self.out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (B, {self.z_dim}), got {tuple(z.shape)}")
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """(y (B, in_dim), t) -> logit (B,): an MLP on [y, sinusoidal features of t]."""

    def __init__(self, in_dim: int = 2, hidden: int = 128, depth: int = 3, t_dim: int = 16, t_scale: float = 1000.0) -> None:
        super().__init__()
        self.in_dim = check_int(in_dim, "in_dim", minimum=1)
        hidden = check_int(hidden, "hidden", minimum=1)
        depth = check_int(depth, "depth", minimum=1)
        self.t_dim = check_int(t_dim, "t_dim", minimum=2)
        self.t_scale = check_float(t_scale, "t_scale", low=0.0, low_open=True)
        layers: list[nn.Module] = []
        width = self.in_dim + self.t_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, y: Tensor, t: Tensor | int = 0) -> Tensor:
        if y.ndim != 2 or y.shape[1] != self.in_dim:
            raise ValueError(f"y must have shape (B, {self.in_dim}), got {tuple(y.shape)}")
        feats = _t_features(t, y.shape[0], self.t_dim, self.t_scale, y.device).to(y.dtype)
        return self.net(torch.cat([y, feats], 1)).squeeze(1)


def _doublings(image_size: int) -> int:
    image_size = check_int(image_size, "image_size", minimum=8)
    n = int(round(math.log2(image_size / 4)))
    if 4 * 2**n != image_size:
        raise ValueError(f"image_size must be 4 times a power of two (8, 16, 32, 64, ...), got {image_size}")
    return n


class DCGANGenerator(nn.Module):
    """z (B, z_dim) -> image (B, C, S, S) in (-1, 1): a 4×4 projection, then (ConvT 4×4 stride 2, BN, ReLU) to S, tanh."""

    def __init__(self, z_dim: int = 64, channels: int = 1, image_size: int = 8, base: int = 64) -> None:
        super().__init__()
        self.z_dim = check_int(z_dim, "z_dim", minimum=1)
        self.channels = check_int(channels, "channels", minimum=1)
        self.image_size = image_size
        base = check_int(base, "base", minimum=1)
        n = _doublings(image_size)
        width = base * 2 ** (n - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(self.z_dim, width, 4, 1, 0, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        for i in range(n):
            last = i == n - 1
            out = self.channels if last else width // 2
            layers.append(nn.ConvTranspose2d(width, out, 4, 2, 1, bias=last))
            if not last:
                layers += [nn.BatchNorm2d(out), nn.ReLU()]
            width = out
        layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (B, {self.z_dim}), got {tuple(z.shape)}")
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """(image (B, C, S, S), t) -> logit (B,): (Conv 4×4 stride 2, leaky ReLU) down to 4×4, then a 4×4 convolution.

    The step t enters as a per-channel shift of the first feature map (an MLP of its sinusoidal
    features), so that one network serves every noise level.
    """

    def __init__(self, channels: int = 1, image_size: int = 8, base: int = 64, t_dim: int = 32, t_scale: float = 1000.0) -> None:
        super().__init__()
        self.channels = check_int(channels, "channels", minimum=1)
        self.image_size = image_size
        base = check_int(base, "base", minimum=1)
        self.t_dim = check_int(t_dim, "t_dim", minimum=2)
        self.t_scale = check_float(t_scale, "t_scale", low=0.0, low_open=True)
        n = _doublings(image_size)
        self.stem = nn.Conv2d(self.channels, base, 4, 2, 1)
        self.t_shift = nn.Sequential(nn.Linear(self.t_dim, base), nn.LeakyReLU(0.2), nn.Linear(base, base))
        layers: list[nn.Module] = [nn.LeakyReLU(0.2)]
        width = base
        for _ in range(n - 1):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.LeakyReLU(0.2)]
            width *= 2
        layers.append(nn.Conv2d(width, 1, 4, 1, 0))
        self.body = nn.Sequential(*layers)

    def forward(self, y: Tensor, t: Tensor | int = 0) -> Tensor:
        expect = (self.channels, self.image_size, self.image_size)
        if y.ndim != 4 or tuple(y.shape[1:]) != expect:
            raise ValueError(f"y must have shape (B, {expect[0]}, {expect[1]}, {expect[2]}), got {tuple(y.shape)}")
        feats = _t_features(t, y.shape[0], self.t_dim, self.t_scale, y.device).to(y.dtype)
        h = self.stem(y) + self.t_shift(feats)[:, :, None, None]
        return self.body(h).reshape(-1)


@dataclass(frozen=True)
class MLPGANConfig:
    """Sizes of the point-cloud generator and discriminator."""

    data_dim: int = 2
    z_dim: int = 8
    hidden: int = 128
    depth: int = 3
    t_dim: int = 16
    t_scale: float = 1000.0

    def build(self) -> tuple[MLPGenerator, MLPDiscriminator]:
        """(G, D) with this configuration."""
        return (MLPGenerator(self.z_dim, self.data_dim, self.hidden, self.depth),
                MLPDiscriminator(self.data_dim, self.hidden, self.depth, self.t_dim, self.t_scale))


@dataclass(frozen=True)
class DCGANConfig:
    """Sizes of the convolutional generator and discriminator (defaults: the 8×8 one-channel digits)."""

    z_dim: int = 64
    channels: int = 1
    image_size: int = 8
    base_g: int = 64
    base_d: int = 64
    t_dim: int = 32
    t_scale: float = 1000.0

    def build(self) -> tuple[DCGANGenerator, DCGANDiscriminator]:
        """(G, D) with this configuration."""
        return (DCGANGenerator(self.z_dim, self.channels, self.image_size, self.base_g),
                DCGANDiscriminator(self.channels, self.image_size, self.base_d, self.t_dim, self.t_scale))
