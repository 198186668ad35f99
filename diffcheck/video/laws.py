"""The exact law of a conditional video sampler on a Gaussian video, and its KL to the exact conditional, without Monte Carlo.

On a single Gaussian N(mu, S) with an exact (hence affine) model, replacement, reconstruction guidance, RaMViD's
reset and the exact conditional sampler are all affine in (x_T, x^a, noise): out = A (x_T, x^a) + sum_i B_i z_i + c.
Treating (x_T, x^a) as one start vector drawn from the prior times N(mu^a, S^aa) gives the exact joint law of
(x^a, x^b) the sampler produces; by the chain rule its KL to N(mu, S) is the KL between the conditionals averaged
over x^a, E_{x^a} KL(p_sampler(x^b | x^a) || q(x^b | x^a)).

A, B_i and c are read off one batched run on probe rows, as ``diffcheck.testing.gaussian_law.affine_law`` does;
here each noise draw may have its own width (a replacement draw covers the known coordinates only), so the probe
gives draw i exactly as many rows as it has values.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from toy.gaussian import kl_gaussian
from toy.mixture import GaussianMixture

from ..process.base import Process
from ..testing.gaussian_law import NotAffineError
from .exact import known_index

__all__ = ["ConditionalRun", "affine_moments", "conditional_law", "conditional_kl"]

ConditionalRun = Callable[[torch.Tensor, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]], torch.Tensor]
"""``run(x_T, x_a, noise) -> samples``: x_T (B, D) the start, x_a (B, k) the known values, all noise from ``noise(like)``."""


class _Recorder:
    """Zero noise that records the width of every draw."""

    def __init__(self) -> None:
        self.widths: list[int] = []

    def __call__(self, like: torch.Tensor) -> torch.Tensor:
        self.widths.append(like[0].numel())
        return torch.zeros_like(like)


class _Probe:
    """Noise whose draw i gives row offsets[i] + j the unit value at position j (scaled), zero elsewhere."""

    def __init__(self, offsets: list[int], widths: list[int], scale: float) -> None:
        self.offsets, self.widths, self.scale, self.calls = offsets, widths, scale, 0

    def __call__(self, like: torch.Tensor) -> torch.Tensor:
        i = self.calls
        if i >= len(self.widths) or like[0].numel() != self.widths[i]:
            raise NotAffineError("the sampler's sequence of noise draws changed between runs")
        z = torch.zeros_like(like)
        flat = z.reshape(z.shape[0], -1)
        w = self.widths[i]
        flat[torch.arange(self.offsets[i], self.offsets[i] + w), torch.arange(w)] = self.scale
        self.calls += 1
        return z


def affine_moments(run: Callable[[torch.Tensor, Callable], torch.Tensor], mean: torch.Tensor, root: torch.Tensor, *,
                   verify: bool = True, rtol: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact (mean, cov) of ``run(x, noise)`` for x ~ N(mean, root root^T), ``run`` affine in x and in its noise draws.

    ``root`` is (D, r); the output may have any number of values per row, and each draw ``noise(like)`` any width.
    With ``verify`` a second probe at doubled offsets must agree to ``rtol`` or ``NotAffineError`` is raised.
    """
    d = mean.numel()
    rec = _Recorder()
    run(mean[None].clone(), rec)
    offsets, first = [], 1 + root.shape[1]
    for w in rec.widths:
        offsets.append(first)
        first += w

    def probe(scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        x = mean.expand(first, d).clone()
        x[1 : 1 + root.shape[1]] += scale * root.T
        y = run(x, _Probe(offsets, rec.widths, scale)).reshape(first, -1).to(torch.float64)
        return y[0], (y[1:] - y[0]) / scale

    out_mean, cols = probe(1.0)
    if verify:
        mean2, cols2 = probe(2.0)
        size = 1.0 + float(cols.abs().max()) + float(out_mean.abs().max())
        if float((cols2 - cols).abs().max()) > rtol * size or float((mean2 - out_mean).abs().max()) > rtol * size:
            raise NotAffineError("the sampler's output is not affine in its start and noise; its law is not Gaussian")
    return out_mean, cols.T @ cols


def _single(mixture: GaussianMixture) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    if mixture.num_components != 1:
        raise ValueError("the exact sampler law needs a single Gaussian (K = 1); use two-sample tests for mixtures")
    return mixture.means[0].to(torch.float64), mixture.covs[0].to(torch.float64)


def conditional_law(run: ConditionalRun, mixture: GaussianMixture, process: Process, known: Any, *,
                    verify: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact (mean, covariance) of the whole videos ``run`` returns for x_T ~ prior and x^a ~ q(x^a), a single Gaussian."""
    mu, cov = _single(mixture)
    idx = known_index(known, mixture.dim, allow_empty=False)
    d, k = mixture.dim, idx.numel()
    start_mean = torch.cat([torch.zeros(d, dtype=torch.float64), mu[idx]])
    evals, evecs = torch.linalg.eigh(cov[idx][:, idx])
    root = torch.zeros(d + k, d + k, dtype=torch.float64)
    root[:d, :d] = process.prior_std * torch.eye(d, dtype=torch.float64)
    root[d:, d:] = evecs * evals.clamp_min(0.0).sqrt()

    def joint(x: torch.Tensor, noise: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        return run(x[:, :d], x[:, d:], noise).reshape(x.shape[0], d)

    mean, c = affine_moments(joint, start_mean, root, verify=verify)
    return mean, 0.5 * (c + c.T)


def conditional_kl(run: ConditionalRun, mixture: GaussianMixture, process: Process, known: Any, *, verify: bool = True) -> float:
    """E_{x^a} KL(p_run(x^b | x^a) || q(x^b | x^a)) in nats, exactly, for a single-Gaussian video.

    ``run`` must return whole videos whose known coordinates equal x^a (so the x^a-marginals agree).
    """
    mu, cov = _single(mixture)
    mean, c = conditional_law(run, mixture, process, known, verify=verify)
    idx = known_index(known, mixture.dim, allow_empty=False)
    if float((c[idx][:, idx] - cov[idx][:, idx]).abs().max()) > 1e-9 * (1.0 + float(cov.abs().max())):
        raise ValueError("run must return the known values x^a unchanged at the known coordinates")
    return float(kl_gaussian(mean, c, mu, cov))
