"""Diffusion-GAN on the 8×8 handwritten digits (``diffcheck.data.load_digits``), DCGAN-style networks."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from toy.validate import check_int

from ..nets.gan import DCGANConfig
from .train import GANConfig, GANRun, train_gan

__all__ = ["build_dcgan", "train_digits"]


def build_dcgan(nets: DCGANConfig = DCGANConfig(), seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """(G, D) initialised from ``seed`` (weights N(0, 0.02), batch-norm scales N(1, 0.02), as DCGAN does)."""
    seed = check_int(seed, "seed", minimum=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G, D = nets.build()
        for m in list(G.modules()) + list(D.modules()):
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
    return G, D


def train_digits(
    config: GANConfig = GANConfig(batch_size=64),
    nets: DCGANConfig = DCGANConfig(),
    *,
    seed: int = 0,
    images: torch.Tensor | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> GANRun:
    """Train the DCGAN-style Diffusion-GAN on the digits (8×8, or 16×16 enlarged) or on ``images`` (N, C, S, S) in [-1, 1]."""
    if images is None:
        from ..data import load_digits

        if nets.image_size not in (8, 16):
            raise ValueError(f"the digits come as 8x8 or 16x16; for nets.image_size = {nets.image_size} pass images")
        images = load_digits(size=nets.image_size).images
    data = images
    expect = (nets.channels, nets.image_size, nets.image_size)
    if not isinstance(data, torch.Tensor) or data.ndim != 4 or tuple(data.shape[1:]) != expect:
        raise ValueError(f"images must have shape (N, {expect[0]}, {expect[1]}, {expect[2]})")
    data = data.float()
    G, D = build_dcgan(nets, seed)
    sample_real = lambda n, g: data[torch.randint(data.shape[0], (n,), generator=g)]
    sample_z = lambda n, g: torch.randn(n, nets.z_dim, generator=g)
    desc = "Diffusion-GAN (digits)" if config.diffusion else "GAN (digits)"
    return train_gan(G, D, sample_real, sample_z, config, seed=seed, out_dir=out_dir, progress=progress, desc=desc)
