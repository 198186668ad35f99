"""Diffusion-GAN's instance noise: y ~ q(y | x, t) = N(sqrt(abar_t) x, (1 - abar_t) sigma_noise^2 I) (Wang et al. 2022).

The betas are DDPM's linear schedule recomputed for the current chain length T (official code,
``diffusion-stylegan2/training/diffusion.py``: ``np.linspace(beta_start, beta_end, T)``, not rescaled
with T), and abar is indexed so that t = 0 is the clean input (abar_0 = 1) and t = T the noisiest.
The official code holds the table in float32; here it is float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

from toy.mixture import GaussianMixture, NoisedMixture
from toy.validate import as_index_tensor, check_float, check_int

from ..process import linear_betas
from ..tensor import per_sample

__all__ = ["InstanceNoise"]


@dataclass(frozen=True)
class InstanceNoise:
    """The forward chain of length ``T`` used as instance noise; defaults are the official code's."""

    T: int
    beta_start: float = 1e-4
    beta_end: float = 0.02
    noise_std: float = 0.05

    def __post_init__(self) -> None:
        check_int(self.T, "T", minimum=1)
        check_float(self.beta_start, "beta_start", low=0.0, high=1.0, low_open=True, high_open=True)
        check_float(self.beta_end, "beta_end", low=0.0, high=1.0, low_open=True, high_open=True)
        check_float(self.noise_std, "noise_std", low=0.0, low_open=True)

    @cached_property
    def betas(self) -> torch.Tensor:
        """beta_1..beta_T, linear from beta_start to beta_end over the current T, float64 (T,)."""
        return linear_betas(self.T, self.beta_start, self.beta_end)

    @cached_property
    def alpha_bar(self) -> torch.Tensor:
        """abar_t = prod_{s<=t} (1 - beta_s) for t = 0..T, with abar_0 = 1, float64 (T + 1,)."""
        one = torch.ones(1, dtype=torch.float64)
        return torch.cat([one, torch.cumprod(1.0 - self.betas, 0)])

    def check_t(self, t: Any) -> torch.Tensor:
        """``t`` as an int64 tensor of steps in [0, T], or a ValueError naming ``t``."""
        t = as_index_tensor(t, "t")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) > self.T):
            raise ValueError(f"t must lie in [0, {self.T}] (T = {self.T}), got values in [{int(t.min())}, {int(t.max())}]")
        return t

    def scales(self, t: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(sqrt(abar_t), sqrt(1 - abar_t) * noise_std): the signal and noise scales of y given x."""
        t = self.check_t(t)
        ab = self.alpha_bar[t]
        return ab.sqrt(), (1.0 - ab).sqrt() * self.noise_std

    def diffuse(self, x: torch.Tensor, t: Any, generator: torch.Generator | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Draw y ~ q(y | x, t) for a batch ``x`` (B, ...) and steps ``t`` (scalar or (B,)); differentiable in x."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError("x must be a floating-point tensor")
        a, s = self.scales(t)
        if a.ndim > 1 or (a.ndim == 1 and a.shape[0] != x.shape[0]):
            raise ValueError(f"t must be a scalar or have shape ({x.shape[0]},), got {tuple(a.shape)}")
        if noise is None:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        elif noise.shape != x.shape:
            raise ValueError(f"noise must have the shape of x {tuple(x.shape)}, got {tuple(noise.shape)}")
        a, s = a.to(x.device), s.to(x.device)
        return per_sample(a, x) * x + per_sample(s, x) * noise

    def law(self, mixture: GaussianMixture, t: Any) -> NoisedMixture:
        """The exact law of y when x ~ ``mixture``: ``mixture.noised(sqrt(abar_t), sqrt(1 - abar_t) noise_std)``."""
        if not isinstance(mixture, GaussianMixture):
            raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
        a, s = self.scales(t)
        return mixture.noised(a.to(mixture.dtype), s.to(mixture.dtype))
