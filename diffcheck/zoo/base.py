"""What every zoo entry is made of: a ``Variant`` (one form of a sampler on a target), an ``Entry``, targets and table helpers.

A ``Variant`` runs the sampler from a batch and a noise function and says where it starts
(the law its pipeline draws x_T from), the noise levels it walks and the range it was
configured with, where its theory gives one, runs at several step counts for an order fit,
and, where diffcheck has its algorithm, the exact law of the discrete sampler
(``diffcheck.zoo.references``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

import toy
from toy.mixture import GaussianMixture

from ..adapters.kdiffusion.denoiser import exact_denoiser, law
from ..param import convert
from ..process.discrete import DiscreteVP

__all__ = ["Variant", "Entry", "unit", "medium", "isotropic", "narrow", "start_at", "prior", "start_vp", "table_model",
           "eps_v_models", "table_sigmas", "sd_betas", "zero_snr"]


@dataclass
class Variant:
    """One form of a sampler on a target: ``run(x, noise)``, its start law, its walk, its configured range, its order runs."""

    run: Callable[[torch.Tensor, Callable], torch.Tensor]
    start: tuple[torch.Tensor, torch.Tensor]
    end_sigma: float = 0.0
    levels: list[float] | None = None
    configured: tuple[float, float] | None = None
    order_runs: list[tuple[int, Callable, float]] = field(default_factory=list)  # (steps, run, end sigma)
    order: float | None = None
    walk: list[tuple[float, float]] | None = None  # (from, to) noise levels of each step, where a step need not start where the last ended
    judge_law: bool = True  # False where the configuration's own discretization error exceeds the law check's resolution
    reference: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None = None  # the exact law of the discrete sampler


@dataclass(frozen=True)
class Entry:
    """A catalogued report: where, which line, whether it was a bug, and its two forms (buggy/fixed or original/proposed)."""

    id: str
    where: str
    title: str
    url: str
    line: str
    kind: str  # "bug", "not a bug" (a proposed change to reject) or "request" (both forms right)
    target: Callable[[], GaussianMixture]
    build: Callable[[GaussianMixture, str], Variant]
    forms: tuple[str, str] = ("buggy", "fixed")

    @property
    def wrong(self) -> str:
        """The form the checks must reject: the buggy one, or the proposed change of a report that was not a bug."""
        return self.forms[0]


def unit() -> GaussianMixture:
    """A unit-scale anisotropic Gaussian."""
    return toy.single_gaussian((1.0, -0.5), [[1.0, 0.6], [0.6, 0.5]])


def medium() -> GaussianMixture:
    """A Gaussian of standard deviation 0.1: narrow, yet wide beside a DDPM table's smallest noise level (0.01)."""
    return toy.single_gaussian((1.0, -0.5), 0.1**2)


def isotropic() -> GaussianMixture:
    """An isotropic Gaussian (a per-coordinate variance is exact for it)."""
    return toy.single_gaussian((1.0, -0.5), 0.25)


def narrow() -> GaussianMixture:
    """A narrow Gaussian (standard deviation 0.015): final-step and alpha_bar-boundary errors show on it."""
    return toy.single_gaussian((1.0, -0.5), 0.015**2)


def start_at(mix: GaussianMixture, sigma: float):
    w = law(mix, sigma)
    return w.mean(), w.covariance()


def prior(d: int, std: float):
    return torch.zeros(d, dtype=torch.float64), std**2 * torch.eye(d, dtype=torch.float64)


def table_model(mix: GaussianMixture, proc: DiscreteVP, prediction: str):
    """The exact model of a DDPM table at training index i (t = (i + 1) / T): the exact denoiser of x / sqrt(abar_i) at
    noise level sqrt((1 - abar_i) / abar_i), converted to ``prediction`` (the exact model of the table, computed directly)."""
    den = exact_denoiser(mix)
    ab = proc.alphas_cumprod[1:].tolist()

    def model(x, idx):
        a, s = math.sqrt(ab[idx]), math.sqrt(1.0 - ab[idx])
        return convert(den(x / a, s / a), x, a, s, "x0", prediction)

    return model


def eps_v_models(mix: GaussianMixture):
    den = exact_denoiser(mix)

    def parts(x, s):
        a = 1.0 / math.sqrt(1.0 + s * s)
        x0 = den(x, s)
        eps = (x - x0) / s
        return a, s * a, x0, eps

    def v(x, s):
        a, sig, x0, eps = parts(x, s)
        return a * eps - sig * x0

    def e(x, s):
        return parts(x, s)[3]

    return e, v


def table_sigmas(ab: torch.Tensor, idx: list[int]) -> list[float]:
    return [math.sqrt((1 - float(ab[i])) / float(ab[i])) for i in idx]


def start_vp(mix, proc, idx):
    m = proc.marginal(mix, (idx + 1) / proc.T)
    return m.mean(), m.covariance()


def sd_betas() -> torch.Tensor:
    return torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2


def zero_snr(betas: torch.Tensor) -> torch.Tensor:
    """Lin et al. (2024), Algorithm 1: shift and scale sqrt(alpha_bar) so that it ends at 0 (here at 1e-6: DiscreteVP needs beta < 1)."""
    r = torch.cumprod(1 - betas, 0).sqrt()
    r0, rT = r[0].clone(), r[-1].clone()
    r = (r - rT) * r0 / (r0 - rT)
    r[-1] = 1e-6
    ab = r**2
    return 1 - torch.cat([ab[:1], ab[1:] / ab[:-1]])
