"""The optimal discriminator of Diffusion-GAN and its r_d, in closed form on Gaussian mixtures.

For fixed real and generated laws, the discriminator maximising
E_{p_r,t} log D(y, t) + E_{p_g,t} log(1 - D(y, t)) at each t is
D*(y, t) = p_r,t(y) / (p_r,t(y) + p_g,t(y)) (Goodfellow et al. 2014, Prop. 1, applied at each t by Wang et al. 2022),
where p_.,t is the law of y ~ q(y | x, t): for mixtures, the noised mixtures of ``InstanceNoise.law``.
For two Gaussians with one covariance S, D* is logistic-linear in y and
r_d(t) = E_{p_r,t}[sign(D* - 1/2)] = 2 Phi(Delta_t / 2) - 1, Delta_t the Mahalanobis distance of the
noised means under the noised covariance.
"""

from __future__ import annotations

from typing import Any

import torch

from toy.mixture import GaussianMixture, NoisedMixture
from toy.validate import as_float_tensor

from .noise import InstanceNoise

__all__ = ["optimal_logit", "optimal_discriminator", "gaussian_separation", "gaussian_logit", "rd_gaussians", "rd_gaussians_mixed"]


Law = GaussianMixture | NoisedMixture


def _law(v: Any, name: str) -> Law:
    if not isinstance(v, (GaussianMixture, NoisedMixture)):
        raise TypeError(f"{name} must be a GaussianMixture or NoisedMixture, got {type(v).__name__}")
    return v


def optimal_logit(real: Law, fake: Law, y: Any) -> torch.Tensor:
    """log p_r(y) - log p_g(y), the logit of D*; ``real``/``fake`` are (noised) mixtures, per-sample scales allowed."""
    return _law(real, "real").log_prob(y) - _law(fake, "fake").log_prob(y)


def optimal_discriminator(real: Law, fake: Law, y: Any) -> torch.Tensor:
    """D*(y) = p_r(y) / (p_r(y) + p_g(y)), evaluated as sigmoid of the log-density ratio."""
    return torch.sigmoid(optimal_logit(real, fake, y))


def _gauss_args(mean_real, mean_fake, cov, alpha, sigma):
    mr = as_float_tensor(mean_real, "mean_real", dtype=torch.float64, ndim=1)
    mg = as_float_tensor(mean_fake, "mean_fake", dtype=torch.float64, ndim=1)
    if mr.shape != mg.shape:
        raise ValueError(f"mean_real and mean_fake must have the same shape, got {tuple(mr.shape)} and {tuple(mg.shape)}")
    d = mr.shape[0]
    c = as_float_tensor(cov, "cov", dtype=torch.float64)
    if c.ndim == 0:
        c = c * torch.eye(d, dtype=torch.float64)
    if c.shape != (d, d):
        raise ValueError(f"cov must be a number or a ({d}, {d}) matrix, got shape {tuple(c.shape)}")
    a = as_float_tensor(alpha, "alpha", dtype=torch.float64)
    s = as_float_tensor(sigma, "sigma", dtype=torch.float64)
    a, s = torch.broadcast_tensors(a, s)
    covt = a[..., None, None] ** 2 * c + s[..., None, None] ** 2 * torch.eye(d, dtype=torch.float64)
    return mr, mg, a, covt


def gaussian_separation(mean_real: Any, mean_fake: Any, cov: Any, alpha: Any, sigma: Any) -> torch.Tensor:
    """Delta = alpha |(alpha^2 S + sigma^2 I)^{-1/2} (mu_r - mu_g)|, for scalar or batched (alpha, sigma)."""
    mr, mg, a, covt = _gauss_args(mean_real, mean_fake, cov, alpha, sigma)
    delta = (a[..., None] * (mr - mg)).expand(*covt.shape[:-1])
    sol = torch.linalg.solve(covt, delta[..., None])[..., 0]
    return (delta * sol).sum(-1).clamp_min(0.0).sqrt()


def gaussian_logit(y: Any, mean_real: Any, mean_fake: Any, cov: Any, alpha: float, sigma: float) -> torch.Tensor:
    """The logit of D* for N(mu_r, S) vs N(mu_g, S) noised by (alpha, sigma): w^T y + b, w = C^{-1} alpha (mu_r - mu_g)."""
    mr, mg, a, covt = _gauss_args(mean_real, mean_fake, cov, alpha, sigma)
    if a.ndim:
        raise ValueError("gaussian_logit takes a single (alpha, sigma)")
    y = as_float_tensor(y, "y", dtype=torch.float64)
    w = torch.linalg.solve(covt, a * (mr - mg))
    b = -0.5 * a * a * (mr @ torch.linalg.solve(covt, mr) - mg @ torch.linalg.solve(covt, mg))
    return y @ w + b


def rd_gaussians(mean_real: Any, mean_fake: Any, cov: Any, alpha: Any, sigma: Any) -> torch.Tensor:
    """r_d of D* for equal-covariance Gaussians: 2 Phi(Delta/2) - 1."""
    return 2.0 * torch.special.ndtr(0.5 * gaussian_separation(mean_real, mean_fake, cov, alpha, sigma)) - 1.0


def rd_gaussians_mixed(noise: InstanceNoise, probs: torch.Tensor, mean_real: Any, mean_fake: Any, cov: Any) -> float:
    """E_t[r_d(t)] = sum_t p(t) (2 Phi(Delta_t / 2) - 1) for a step law ``probs`` over t = 0..T."""
    probs = as_float_tensor(probs, "probs", dtype=torch.float64, ndim=1)
    if probs.shape[0] != noise.T + 1:
        raise ValueError(f"probs must have T + 1 = {noise.T + 1} entries, got {probs.shape[0]}")
    a, s = noise.scales(torch.arange(noise.T + 1))
    return float((probs * rd_gaussians(mean_real, mean_fake, cov, a, s)).sum())

