"""Gaussian helpers with exact answers: log-densities, KL divergences, conditioning."""

from __future__ import annotations

import math

import torch

from .validate import as_float_tensor, as_index_tensor, check_covariance

__all__ = ["log_normal", "kl_gaussian", "kl_diagonal", "condition_gaussian", "complement"]

_LOG_2PI = math.log(2.0 * math.pi)


def log_normal(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, cov) for full covariances, batched over leading dimensions."""
    x = as_float_tensor(x, "x")
    mean = as_float_tensor(mean, "mean", dtype=x.dtype, device=x.device)
    cov = as_float_tensor(cov, "cov", dtype=x.dtype, device=x.device)
    if cov.shape[-2:] != (x.shape[-1], x.shape[-1]) or mean.shape[-1] != x.shape[-1]:
        raise ValueError(
            f"shapes do not match: x {tuple(x.shape)}, mean {tuple(mean.shape)}, cov {tuple(cov.shape)}"
        )
    chol = _cholesky(cov, "cov")
    diff = (x - mean).unsqueeze(-1)
    chol_b = chol.expand(*diff.shape[:-2], *chol.shape[-2:]) if chol.ndim < diff.ndim else chol
    w = torch.linalg.solve_triangular(chol_b, diff, upper=False).squeeze(-1)
    logdet = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    d = x.shape[-1]
    return -0.5 * ((w**2).sum(-1) + logdet + d * _LOG_2PI)


def kl_gaussian(
    mean0: torch.Tensor, cov0: torch.Tensor, mean1: torch.Tensor, cov1: torch.Tensor
) -> torch.Tensor:
    """KL(N(mean0, cov0) || N(mean1, cov1)) in nats, full covariances, batched."""
    mean0 = as_float_tensor(mean0, "mean0")
    cov0 = as_float_tensor(cov0, "cov0", dtype=mean0.dtype, device=mean0.device)
    mean1 = as_float_tensor(mean1, "mean1", dtype=mean0.dtype, device=mean0.device)
    cov1 = as_float_tensor(cov1, "cov1", dtype=mean0.dtype, device=mean0.device)
    d = mean0.shape[-1]
    for name, c in (("cov0", cov0), ("cov1", cov1)):
        if c.shape[-2:] != (d, d):
            raise ValueError(f"{name} must have trailing shape ({d}, {d}), got {tuple(c.shape)}")
    if mean1.shape[-1] != d:
        raise ValueError(f"mean1 must have trailing size {d}, got {tuple(mean1.shape)}")
    l0 = _cholesky(cov0, "cov0")
    l1 = _cholesky(cov1, "cov1")
    shape = torch.broadcast_shapes(l0.shape, l1.shape)
    l0, l1 = l0.expand(shape), l1.expand(shape)
    m = torch.linalg.solve_triangular(l1, l0, upper=False)
    trace = (m**2).sum((-1, -2))
    diff = (mean1 - mean0).unsqueeze(-1)
    diff = diff.expand(*shape[:-2], d, 1) if diff.ndim < len(shape) else diff
    l1d = l1.expand(*diff.shape[:-2], d, d)
    w = torch.linalg.solve_triangular(l1d, diff, upper=False).squeeze(-1)
    logdet0 = 2.0 * torch.log(torch.diagonal(l0, dim1=-2, dim2=-1)).sum(-1)
    logdet1 = 2.0 * torch.log(torch.diagonal(l1, dim1=-2, dim2=-1)).sum(-1)
    return 0.5 * (trace + (w**2).sum(-1) - d + logdet1 - logdet0)


def kl_diagonal(
    mean0: torch.Tensor, var0: torch.Tensor, mean1: torch.Tensor, var1: torch.Tensor
) -> torch.Tensor:
    """KL between Gaussians with diagonal (or scalar) variances, summed over the last axis, in nats."""
    mean0 = torch.as_tensor(mean0)
    var0 = torch.as_tensor(var0, dtype=mean0.dtype, device=mean0.device)
    mean1 = torch.as_tensor(mean1, dtype=mean0.dtype, device=mean0.device)
    var1 = torch.as_tensor(var1, dtype=mean0.dtype, device=mean0.device)
    for name, v in (("var0", var0), ("var1", var1)):
        if bool((v <= 0).any()):
            raise ValueError(f"{name} must be positive")
    ratio = var0 / var1
    per = 0.5 * (ratio - 1.0 - torch.log(ratio) + (mean1 - mean0) ** 2 / var1)
    return per.sum(-1) if per.ndim else per


def complement(index: torch.Tensor, dim: int) -> torch.Tensor:
    """The sorted coordinates of range(dim) that are not in ``index``."""
    keep = torch.ones(dim, dtype=torch.bool)
    keep[index.cpu()] = False
    return torch.arange(dim)[keep].to(index.device)


def condition_gaussian(
    mean: torch.Tensor, cov: torch.Tensor, observed, values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Law of the free coordinates of N(mean, cov) given ``x[observed] = values``.

    Returns ``(cond_mean, cond_cov, free)``: ``cond_mean`` has shape (..., D - m) for
    ``values`` of shape (..., m), ``cond_cov`` (D - m, D - m), and ``free`` the sorted
    indices of the unobserved coordinates.
    """
    mean = as_float_tensor(mean, "mean", ndim=1)
    cov = as_float_tensor(cov, "cov", dtype=mean.dtype, device=mean.device, ndim=2)
    d = mean.shape[0]
    if cov.shape != (d, d):
        raise ValueError(f"cov must have shape ({d}, {d}), got {tuple(cov.shape)}")
    check_covariance(cov, "cov")
    obs = _check_index(observed, d)
    values = as_float_tensor(values, "values", dtype=mean.dtype, device=mean.device)
    if values.ndim == 0 or values.shape[-1] != obs.numel():
        raise ValueError(f"values must have trailing size {obs.numel()} (one per observed coordinate), got {tuple(values.shape)}")
    free = complement(obs, d)
    s_aa = cov[obs][:, obs]
    s_ba = cov[free][:, obs]
    s_bb = cov[free][:, free]
    chol = _cholesky(s_aa, "cov restricted to the observed coordinates")
    gain = torch.cholesky_solve(s_ba.T, chol).T  # S_ba S_aa^{-1}
    cond_mean = mean[free] + (values - mean[obs]) @ gain.T
    cond_cov = s_bb - gain @ s_ba.T
    cond_cov = 0.5 * (cond_cov + cond_cov.T)
    return cond_mean, cond_cov, free


def _check_index(observed, d: int) -> torch.Tensor:
    obs = as_index_tensor(observed, "observed")
    if obs.ndim != 1 or obs.numel() == 0:
        raise ValueError(f"observed must be a non-empty 1-D list of coordinates, got shape {tuple(obs.shape)}")
    if bool((obs < 0).any()) or bool((obs >= d).any()):
        raise ValueError(f"observed coordinates must lie in [0, {d - 1}], got {obs.tolist()}")
    if obs.unique().numel() != obs.numel():
        raise ValueError(f"observed coordinates must be distinct, got {obs.tolist()}")
    if obs.numel() == d:
        raise ValueError("observed must leave at least one coordinate free")
    return obs


def _cholesky(cov: torch.Tensor, name: str) -> torch.Tensor:
    chol, info = torch.linalg.cholesky_ex(cov)
    if bool((info != 0).any()):
        raise ValueError(f"{name} must be positive definite (Cholesky failed)")
    return chol
