"""Noise samplers in k-diffusion's convention, ``noise_sampler(sigma, sigma_next)``, drawing through a diffcheck noise function.

Every draw goes through ``noise(like)``, so a sampler's output stays affine in its start
and its draws on Gaussian targets and its law is exact (``affine_law``).
``IndependentNoise`` returns a fresh standard normal per call (k-diffusion's default).
``BrownianNoise`` is a Brownian motion W in sigma, as k-diffusion's
``BrownianTreeNoiseSampler`` is: a call returns (W(sigma_next) - W(sigma)) / sqrt|sigma_next -
sigma|, so calls over overlapping intervals are correlated as the increments of one path
are. New points are drawn by Brownian-bridge interpolation between known ones (Levy's
construction), or by extension beyond them.
"""

from __future__ import annotations

import bisect
import math
from typing import Any, Callable

import torch

__all__ = ["IndependentNoise", "BrownianNoise"]


class IndependentNoise:
    """A fresh N(0, I) shaped like ``like`` per call, from ``noise(like)``."""

    def __init__(self, noise: Callable[[torch.Tensor], torch.Tensor], like: torch.Tensor) -> None:
        self.noise, self.like, self.calls = noise, like, 0

    def __call__(self, sigma: Any, sigma_next: Any) -> torch.Tensor:
        self.calls += 1
        return self.noise(self.like)


class BrownianNoise:
    """Normalised increments of one Brownian path W(sigma) per sample, drawn lazily through ``noise(like)``."""

    def __init__(self, noise: Callable[[torch.Tensor], torch.Tensor], like: torch.Tensor) -> None:
        self.noise, self.like = noise, like
        self.times: list[float] = []
        self.values: list[torch.Tensor] = []
        self.calls = 0

    def _at(self, s: float) -> torch.Tensor:
        i = bisect.bisect_left(self.times, s)
        if i < len(self.times) and self.times[i] == s:
            return self.values[i]
        if not self.times:
            w = torch.zeros_like(self.like)
        elif i == len(self.times):  # beyond the largest known time
            w = self.values[-1] + math.sqrt(s - self.times[-1]) * self.noise(self.like)
        elif i == 0:  # below the smallest known time
            w = self.values[0] + math.sqrt(self.times[0] - s) * self.noise(self.like)
        else:  # the bridge between its neighbours l < s < r
            l, r = self.times[i - 1], self.times[i]
            wl, wr = self.values[i - 1], self.values[i]
            u = (s - l) / (r - l)
            w = wl + u * (wr - wl) + math.sqrt((s - l) * (r - s) / (r - l)) * self.noise(self.like)
        self.times.insert(i, s)
        self.values.insert(i, w)
        return w

    def __call__(self, sigma: Any, sigma_next: Any) -> torch.Tensor:
        a, b = float(sigma), float(sigma_next)
        if a == b:
            raise ValueError(f"a Brownian increment needs two different noise levels, got {a} twice")
        self.calls += 1
        wa, wb = self._at(a), self._at(b)
        return (wb - wa) / math.sqrt(abs(b - a))
