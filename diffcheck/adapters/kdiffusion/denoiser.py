"""Denoisers D(x, sigma) in k-diffusion's convention (x = x_0 + sigma eps), exact or from any diffcheck model.

Any process x_t = alpha x_0 + sigma_t eps is the variance-exploding one in the scaled
variable x / alpha with noise level sigma_t / alpha (Karras et al. 2022, Eq. 4 with
s(t) = alpha): D(x, sigma) = E[x_0 | x_t = alpha(t) x] at the time t where
sigma(t) / alpha(t) = sigma. The exact denoiser of a mixture is its posterior mean
E[x_0 | x_0 + sigma eps = x] in closed form.
"""

from __future__ import annotations

from typing import Any

import torch

from toy.mixture import GaussianMixture, NoisedMixture

from ...param import Model, predict
from ...process.base import Process
from ...tensor import per_sample

__all__ = ["Denoiser", "exact_denoiser", "model_denoiser", "law", "sigma_time", "gaussian_flow"]


def _sigma(sigma: Any, x: torch.Tensor) -> torch.Tensor:
    """sigma as a float64 tensor, scalar or one per sample, checked non-negative."""
    # a Python number becomes float64 directly: torch.as_tensor would round it to the default float32 first
    s = sigma.to(torch.float64) if isinstance(sigma, torch.Tensor) else torch.as_tensor(sigma, dtype=torch.float64)
    if s.ndim > 1 or (s.ndim == 1 and s.shape[0] != x.shape[0]):
        raise ValueError(f"sigma must be a scalar or have shape ({x.shape[0]},), got {tuple(s.shape)}")
    if s.device.type == "cpu" and (bool(torch.isnan(s).any()) or bool((s < 0).any())):
        raise ValueError("sigma must be non-negative")
    return s


class Denoiser:
    """k-diffusion's model: ``D(x, sigma, **extra)`` returns the denoised x_0; counts its evaluations in ``calls``.

    Built by ``exact_denoiser(mixture)`` or ``model_denoiser(model, process)``. Inputs of any
    dtype are evaluated in float64 and returned in the input's dtype.
    """

    def __init__(self, fn, description: str) -> None:
        self._fn = fn
        self.description = description
        self.calls = 0

    def __repr__(self) -> str:
        return f"Denoiser({self.description})"

    def __call__(self, x: torch.Tensor, sigma: Any, **extra: Any) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 2:
            raise TypeError("x must be a floating tensor of shape (B, ...)")
        self.calls += 1
        s = _sigma(sigma, x)
        out = self._fn(x.to(torch.float64), s, **extra)
        return out.to(x.dtype)


def exact_denoiser(mixture: GaussianMixture) -> Denoiser:
    """The exact D(x, sigma) = E[x_0 | x_0 + sigma eps = x] of ``mixture`` (``y=`` selects a class)."""
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")

    def fn(x: torch.Tensor, s: torch.Tensor, y: Any = None) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        return mixture.noised(1.0, s).posterior_mean(flat, y).reshape(x.shape)

    return Denoiser(fn, f"exact, {mixture!r}")


def sigma_time(process: Process, sigma: torch.Tensor) -> torch.Tensor:
    """The process times at which sigma(t)/alpha(t) equals ``sigma`` (0 maps to t = 0 where the process starts at the data)."""
    s = torch.as_tensor(sigma, dtype=torch.float64)
    zero = s == 0
    if bool(zero.any()):
        start = float(process.edm_sigma(torch.zeros((), dtype=torch.float64)))
        if start > 0.0:
            raise ValueError(f"sigma = 0 is outside {process!r}: its noise level at t = 0 is {start:.6g}")
    lo = float(process.edm_sigma(torch.zeros((), dtype=torch.float64)))
    hi = float(process.edm_sigma(torch.ones((), dtype=torch.float64)))
    bad = (~zero) & ((s > hi * (1 + 1e-9)) | (s < lo * (1 - 1e-9)))
    if bool(bad.any()):
        raise ValueError(f"sigma must lie in the range of {process!r}, [{lo:.6g}, {hi:.6g}]; got {float(s[bad].reshape(-1)[0]):.6g}")
    t = process.t_of_edm_sigma(torch.where(zero, torch.ones_like(s), s).clamp(min=lo, max=hi))
    return torch.where(zero, torch.zeros_like(t), t)


def model_denoiser(model: Model, process: Process) -> Denoiser:
    """D(x, sigma) of any diffcheck model of any process, through x_t = alpha(t) x at sigma(t)/alpha(t) = sigma."""
    if not isinstance(process, Process):
        raise TypeError(f"process must be a Process, got {type(process).__name__}")
    if not callable(model):
        raise TypeError("model must be callable as model(x, t)")

    def fn(x: torch.Tensor, s: torch.Tensor, **extra: Any) -> torch.Tensor:
        if bool((s == 0).all()):
            return x
        t = sigma_time(process, s)
        a = per_sample(process.alpha(t), x)
        return predict(model, process, a * x, t, "x0", **extra)

    return Denoiser(fn, f"{model!r} on {process!r}")


def law(mixture: GaussianMixture, sigma: float) -> NoisedMixture:
    """The exact law of x_0 + sigma eps in k-diffusion's variable (sigma = 0: the data)."""
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    s = float(sigma)
    if not s >= 0.0:
        raise ValueError(f"sigma must be non-negative, got {sigma}")
    return mixture.noised(1.0, s)


def gaussian_flow(mean: torch.Tensor, cov: torch.Tensor, x: torch.Tensor, sigma_from: float, sigma_to: float) -> torch.Tensor:
    """The exact probability-flow map from sigma_from to sigma_to for data N(mean, cov) (Karras et al. 2022, Eq. 3).

    dx/dsigma = (x - D(x, sigma)) / sigma = sigma (cov + sigma^2 I)^{-1} (x - mean), solved by
    x(sigma) - mean = (cov + sigma^2 I)^{1/2} (cov + sigma_from^2 I)^{-1/2} (x - mean).
    """
    evals, evecs = torch.linalg.eigh(torch.as_tensor(cov, dtype=torch.float64))
    gain = ((evals + sigma_to**2) / (evals + sigma_from**2)).sqrt()
    m = torch.as_tensor(mean, dtype=torch.float64)
    flat = x.reshape(x.shape[0], -1).to(torch.float64) - m
    return (((flat @ evecs) * gain) @ evecs.T + m).reshape(x.shape).to(x.dtype)
