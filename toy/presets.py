"""Named toy distributions with exact answers (all float64 unless a dtype is given)."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from .mixture import GaussianMixture, SequenceMixture
from .validate import as_float_tensor, check_float, check_int

__all__ = [
    "two_modes",
    "three_classes",
    "ring",
    "grid",
    "anisotropic",
    "narrow",
    "single_gaussian",
    "ar1_video",
    "PRESETS",
    "preset",
]


def two_modes(**kw: Any) -> GaussianMixture:
    """NCSN's toy (Song & Ermon 2019, App. B.1): 1/5 N((-5,-5), I) + 4/5 N((5,5), I); labels 0, 1."""
    return GaussianMixture([0.2, 0.8], [[-5.0, -5.0], [5.0, 5.0]], 1.0, labels=[0, 1], **kw)


def three_classes(radius: float = 1.5, std: float = 1.0, **kw: Any) -> GaussianMixture:
    """Three isotropic Gaussian classes in 2D, equal weights, means on a circle (as in Ho & Salimans 2021, Fig. 2).

    The means sit at angles 90, 210 and 330 degrees; with the default radius 1.5 and
    standard deviation 1 the classes overlap, as in the figure of Ho & Salimans (2021).
    """
    radius = check_float(radius, "radius", low=0.0, low_open=True)
    std = check_float(std, "std", low=0.0, low_open=True)
    ang = torch.tensor([90.0, 210.0, 330.0], dtype=torch.float64) * math.pi / 180.0
    means = radius * torch.stack([ang.cos(), ang.sin()], -1)
    return GaussianMixture(torch.full((3,), 1.0 / 3.0, dtype=torch.float64), means, std**2, labels=[0, 1, 2], **kw)


def ring(n: int = 8, radius: float = 2.0, std: float = 0.1, **kw: Any) -> GaussianMixture:
    """``n`` equal isotropic Gaussians evenly spaced on a circle; each its own class."""
    n = check_int(n, "n", minimum=1)
    radius = check_float(radius, "radius", low=0.0)
    std = check_float(std, "std", low=0.0, low_open=True)
    ang = 2.0 * math.pi * torch.arange(n, dtype=torch.float64) / n
    means = radius * torch.stack([ang.cos(), ang.sin()], -1)
    return GaussianMixture(torch.full((n,), 1.0 / n, dtype=torch.float64), means, std**2, labels=list(range(n)), **kw)


def grid(n: int = 5, spacing: float = 2.0, std: float = 0.1, **kw: Any) -> GaussianMixture:
    """An n x n grid of equal isotropic Gaussians centred at the origin; each its own class."""
    n = check_int(n, "n", minimum=1)
    spacing = check_float(spacing, "spacing", low=0.0, low_open=True)
    std = check_float(std, "std", low=0.0, low_open=True)
    c = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2.0) * spacing
    gx, gy = torch.meshgrid(c, c, indexing="ij")
    means = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)
    return GaussianMixture(torch.full((n * n,), 1.0 / (n * n), dtype=torch.float64), means, std**2, labels=list(range(n * n)), **kw)


def _rotated(angle_deg: float, major: float, minor: float) -> torch.Tensor:
    a = math.radians(angle_deg)
    rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
    return rot @ torch.diag(torch.tensor([major**2, minor**2], dtype=torch.float64)) @ rot.T


def anisotropic(**kw: Any) -> GaussianMixture:
    """Three unequal components with elongated, correlated covariances (rotated 30, -45, 80 degrees)."""
    means = [[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]]
    covs = torch.stack([_rotated(30.0, 1.0, 0.2), _rotated(-45.0, 0.8, 0.1), _rotated(80.0, 0.6, 0.25)])
    return GaussianMixture([0.5, 0.3, 0.2], means, covs, labels=[0, 1, 2], **kw)


def narrow(std: float = 0.015, **kw: Any) -> GaussianMixture:
    """Two narrow components at (-1, 0) and (1, 0) (std about 0.01-0.02): exposes final-step errors."""
    std = check_float(std, "std", low=0.0, low_open=True)
    return GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], std**2, labels=[0, 1], **kw)


def single_gaussian(mean: Any = (0.0, 0.0), cov: Any = 1.0, **kw: Any) -> GaussianMixture:
    """One Gaussian N(mean, cov): every linear sampler maps it to a Gaussian, a noise-free check."""
    mean = as_float_tensor(mean, "mean", ndim=1)
    return GaussianMixture([1.0], mean[None], cov if not isinstance(cov, (int, float)) else [float(cov)], **kw)


def ar1_video(
    frames: int = 8,
    frame_dim: int = 2,
    rho: Any = 0.9,
    std: float = 1.0,
    offsets: Any = None,
    weights: Any = None,
    **kw: Any,
) -> SequenceMixture:
    """Stationary AR(1) "video": x_f = rho x_{f-1} + sqrt(1 - rho^2) std e_f, frames of ``frame_dim`` points.

    Cov(x_f, x_g) = std^2 rho^|f-g| I. With ``offsets`` (K, frame_dim) and optionally one
    ``rho`` per component, a mixture of such sequences whose component k has constant mean
    offsets[k] in every frame.
    """
    frames = check_int(frames, "frames", minimum=1)
    frame_dim = check_int(frame_dim, "frame_dim", minimum=1)
    std = check_float(std, "std", low=0.0, low_open=True)
    if offsets is None:
        offsets = torch.zeros(1, frame_dim, dtype=torch.float64)
    offsets = as_float_tensor(offsets, "offsets", ndim=2)
    k = offsets.shape[0]
    if offsets.shape[1] != frame_dim:
        raise ValueError(f"offsets must have shape (K, {frame_dim}), got {tuple(offsets.shape)}")
    rhos = as_float_tensor(rho, "rho").reshape(-1)
    if rhos.numel() == 1:
        rhos = rhos.expand(k)
    if rhos.numel() != k:
        raise ValueError(f"rho must be one number or one per component ({k}), got {rhos.numel()}")
    if bool((rhos.abs() >= 1).any()):
        raise ValueError("rho must lie in (-1, 1) for a stationary AR(1) sequence")
    if weights is None:
        weights = torch.full((k,), 1.0 / k, dtype=torch.float64)
    lag = (torch.arange(frames)[:, None] - torch.arange(frames)[None, :]).abs().to(torch.float64)
    eye = torch.eye(frame_dim, dtype=torch.float64)
    covs = torch.stack([torch.kron(std**2 * r ** lag, eye) for r in rhos])
    means = offsets.repeat(1, frames)
    labels = list(range(k)) if k > 1 else None
    return SequenceMixture(weights, means, covs, labels, frames=frames, frame_dim=frame_dim, **kw)


PRESETS: dict[str, Callable[..., GaussianMixture]] = {
    "two_modes": two_modes,
    "three_classes": three_classes,
    "ring": ring,
    "grid": grid,
    "anisotropic": anisotropic,
    "narrow": narrow,
    "single_gaussian": single_gaussian,
    "ar1_video": ar1_video,
}


def preset(name: str, **kw: Any) -> GaussianMixture:
    """Build a preset by name (see ``PRESETS``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: name must be one of {', '.join(sorted(PRESETS))}")
    return PRESETS[name](**kw)
