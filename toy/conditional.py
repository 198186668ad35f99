"""Conditioning a Gaussian mixture on some of its coordinates: exact conditional weights, means and covariances.

Given x_a = v, component k becomes N(mu_b + S_ba S_aa^-1 (v - mu_a), S_bb - S_ba S_aa^-1 S_ab) over the free
coordinates b, and its weight becomes proportional to pi_k N(v; mu_a, S_aa) (the mixture of conditionals).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .gaussian import _check_index, complement
from .validate import as_float_tensor

__all__ = ["conditional_parts", "conditional_mean", "conditional_sample"]

_LOG_2PI = math.log(2.0 * math.pi)


def conditional_parts(mixture, observed: Any, values: Any):
    """(observed, free, log weights (B, K), conditional means (B, K, b), conditional covariances (K, b, b), single)."""
    m = mixture
    obs = _check_index(observed, m._dim)
    values = as_float_tensor(values, "values", dtype=m._dtype, device=m._device)
    if values.ndim not in (1, 2) or values.shape[-1] != obs.numel():
        raise ValueError(
            f"values must have shape ({obs.numel()},) or (B, {obs.numel()}), got {tuple(values.shape)}"
        )
    free = complement(obs, m._dim)
    s_aa = m._covs[:, obs][:, :, obs]
    s_ba = m._covs[:, free][:, :, obs]
    s_bb = m._covs[:, free][:, :, free]
    chol, info = torch.linalg.cholesky_ex(s_aa)
    if bool((info != 0).any()):
        raise ValueError("the covariance of a component restricted to the observed coordinates is singular")
    gain = torch.cholesky_solve(s_ba.transpose(-1, -2), chol).transpose(-1, -2)  # (K, b, a)
    cond_cov = s_bb - gain @ s_ba.transpose(-1, -2)
    cond_cov = 0.5 * (cond_cov + cond_cov.transpose(-1, -2))
    v = values if values.ndim == 2 else values[None]
    resid = v[:, None, :] - m._means[None][:, :, obs]  # (B, K, a)
    cond_mean = m._means[None][:, :, free] + torch.einsum("kba,nka->nkb", gain, resid)
    w = torch.linalg.solve_triangular(chol[None].expand(v.shape[0], -1, -1, -1), resid[..., None], upper=False)[..., 0]
    logdet = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    logn = -0.5 * ((w * w).sum(-1) + logdet + obs.numel() * _LOG_2PI)
    logw = torch.log_softmax(torch.log(m._weights) + logn, -1)  # (B, K)
    return obs, free, logw, cond_mean, cond_cov, values.ndim == 1


def conditional_mean(mixture, observed: Any, values: Any) -> torch.Tensor:
    """E[x | x[observed] = values] as full vectors (observed coordinates kept), batched."""
    m = mixture
    obs, free, logw, cmean, _, single = conditional_parts(m, observed, values)
    v = torch.as_tensor(values, dtype=m._dtype, device=m._device).reshape(-1, obs.numel())
    out = torch.empty(v.shape[0], m._dim, dtype=m._dtype, device=m._device)
    out[:, obs] = v
    out[:, free] = (logw.exp()[..., None] * cmean).sum(1)
    return out[0] if single else out


def conditional_sample(mixture, observed: Any, values: Any, generator: torch.Generator | None = None) -> torch.Tensor:
    """One exact draw of x given x[observed] = values per row of ``values`` (full vectors)."""
    m = mixture
    obs, free, logw, cmean, ccov, single = conditional_parts(m, observed, values)
    v = torch.as_tensor(values, dtype=m._dtype, device=m._device).reshape(-1, obs.numel())
    n = v.shape[0]
    dev = generator.device if generator is not None else m._device
    comps = torch.multinomial(logw.exp().to(dev), 1, generator=generator)[:, 0].to(m._device)
    evals, evecs = torch.linalg.eigh(ccov)
    root = evecs * evals.clamp_min(0).sqrt()[:, None, :]
    z = torch.randn(n, free.numel(), generator=generator, dtype=m._dtype, device=dev).to(m._device)
    x = torch.empty(n, m._dim, dtype=m._dtype, device=m._device)
    x[:, obs] = v
    x[:, free] = cmean[torch.arange(n), comps] + torch.einsum("nde,ne->nd", root[comps], z)
    return x[0] if single else x
