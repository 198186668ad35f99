"""Diffusion-GAN on point clouds drawn from a Gaussian mixture, with MLP generator and discriminator."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from toy.mixture import GaussianMixture
from toy.validate import check_int

from ..nets.gan import MLPGANConfig
from .metrics import point_metrics
from .train import GANConfig, GANRun, train_gan

__all__ = ["build_mlp_gan", "sample_generator", "train_points"]


def build_mlp_gan(nets: MLPGANConfig = MLPGANConfig(), seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """(G, D) initialised from ``seed`` without touching the global random state."""
    seed = check_int(seed, "seed", minimum=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nets.build()


def sample_generator(G: nn.Module, n: int, generator: torch.Generator) -> torch.Tensor:
    """n samples G(z), z ~ N(0, I), as float64 (no gradient)."""
    n = check_int(n, "n", minimum=1)
    with torch.no_grad():
        z = torch.randn(n, G.z_dim, generator=generator)
        return G(z).double()


def train_points(
    data: GaussianMixture,
    config: GANConfig = GANConfig(),
    nets: MLPGANConfig = MLPGANConfig(),
    *,
    seed: int = 0,
    train_size: int | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    eval_every: int = 0,
    eval_n: int = 2000,
) -> GANRun:
    """Train an MLP GAN on ``data`` (fresh exact draws each batch, or a fixed set of ``train_size`` draws).

    With ``eval_every``, the history records ``point_metrics`` of ``eval_n`` generated points against
    ``eval_n`` exact draws (fixed evaluation seeds, separate from the training generator).
    """
    if not isinstance(data, GaussianMixture):
        raise TypeError(f"data must be a GaussianMixture, got {type(data).__name__}")
    if data.dim != nets.data_dim:
        raise ValueError(f"nets.data_dim ({nets.data_dim}) must equal the data dimension ({data.dim})")
    eval_n = check_int(eval_n, "eval_n", minimum=2)
    G, D = build_mlp_gan(nets, seed)
    if train_size is None:
        sample_real = lambda n, g: data.sample(n, g).float()
    else:
        train_size = check_int(train_size, "train_size", minimum=1)
        fixed = data.sample(train_size, torch.Generator().manual_seed(10_000 + seed)).float()
        sample_real = lambda n, g: fixed[torch.randint(train_size, (n,), generator=g)]
    sample_z = lambda n, g: torch.randn(n, nets.z_dim, generator=g)
    reference = data.sample(eval_n, torch.Generator().manual_seed(20_000))

    def evaluate(G: nn.Module) -> dict[str, float]:
        x = sample_generator(G, eval_n, torch.Generator().manual_seed(30_000))
        return point_metrics(x, data, reference, generator=torch.Generator().manual_seed(40_000))

    desc = "Diffusion-GAN (points)" if config.diffusion else "GAN (points)"
    return train_gan(G, D, sample_real, sample_z, config, seed=seed, out_dir=out_dir, progress=progress,
                     evaluate=evaluate if eval_every else None, eval_every=eval_every, desc=desc)
