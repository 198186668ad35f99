"""The exact output law of a sampler that is affine in its start and its noise, without Monte Carlo.

On a single-Gaussian target the exact model is affine in x, so every step-based sampler
maps x_T and its noise draws affinely: x_out = A x_T + sum_k B_k z_k + c. Started from
N(m, S) its output is exactly N(A m + c, A S A^T + sum_k B_k B_k^T). ``affine_law`` finds
A, B_k and c by running the sampler once on a batch of probe rows: the mean, the mean
plus each column of a square root of S, and rows that receive one unit noise vector at
one noise draw each.
"""

from __future__ import annotations

from typing import Callable

import torch

from toy.validate import as_float_tensor, check_covariance

__all__ = ["affine_law", "NotAffineError"]

Run = Callable[[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]], torch.Tensor]


class NotAffineError(ValueError):
    """The sampler's output is not affine in its start and noise (a state-dependent step, an adaptive solver)."""


class _Probe:
    """Noise that gives row ``first + k*D + j`` the unit vector e_j at draw k and zero elsewhere."""

    def __init__(self, first: int, dim: int, scale: float = 1.0) -> None:
        self.first, self.dim, self.scale, self.calls = first, dim, scale, 0

    def __call__(self, like: torch.Tensor) -> torch.Tensor:
        z = torch.zeros_like(like)
        flat = z.reshape(z.shape[0], -1)
        base = self.first + self.calls * self.dim
        rows = torch.arange(base, base + self.dim)
        keep = rows < flat.shape[0]
        flat[rows[keep], torch.arange(self.dim)[keep]] = self.scale
        self.calls += 1
        return z


def affine_law(run: Run, mean, cov, *, verify: bool = True, rtol: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact (mean, covariance) of ``run(x_T, noise)`` for x_T ~ N(mean, cov), for samplers affine in (x_T, noise).

    ``run(x, noise)`` must run the sampler on the batch ``x`` (B, D) drawing all its noise
    by calling ``noise(like)``. With ``verify`` the affinity is tested on a second probe
    with doubled offsets and a ``NotAffineError`` raised if it fails at relative ``rtol``.
    """
    m = as_float_tensor(mean, "mean", dtype=torch.float64, ndim=1)
    c = as_float_tensor(cov, "cov", dtype=torch.float64, ndim=2)
    d = m.numel()
    if c.shape != (d, d):
        raise ValueError(f"cov must have shape ({d}, {d}), got {tuple(c.shape)}")
    check_covariance(c, "cov")
    evals, evecs = torch.linalg.eigh(c)
    root = evecs * evals.clamp_min(0.0).sqrt()  # cov = root root^T
    counter = _Probe(first=10**12, dim=d)
    run(m[None].clone(), counter)  # count the noise draws
    draws = counter.calls

    def probe(scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        rows = 1 + d + draws * d
        x = m.expand(rows, d).clone()
        x[1 : 1 + d] += scale * root.T
        y = run(x, _Probe(first=1 + d, dim=d, scale=scale)).reshape(rows, d).to(torch.float64)
        cols = (y[1:] - y[0]) / scale
        return y[0], cols

    out_mean, cols = probe(1.0)
    if verify:
        mean2, cols2 = probe(2.0)
        scale = 1.0 + float(cols.abs().max()) + float(out_mean.abs().max())
        if float((cols2 - cols).abs().max()) > rtol * scale or float((mean2 - out_mean).abs().max()) > rtol * scale:
            raise NotAffineError("the sampler's output is not affine in its start and noise; its law is not Gaussian")
    return out_mean, cols.T @ cols
