"""k-diffusion's sampler convention, first class: denoisers, ladders, exact laws, and the report on its samplers.

A k-diffusion-style sampler is ``sample(model, x, sigmas, ...)`` with ``model(x, sigma)`` the
denoised x_0 and x = x_0 + sigma eps. ``exact_denoiser(mixture)`` is the exact model in that
convention; ``model_denoiser(model, process)`` turns any diffcheck model of any process into
one (x / alpha and sigma / alpha, Karras et al. 2022, Eq. 4); ``law(mixture, sigma)`` is the
exact law at any sigma; ``karras``, ``exponential``, ``polyexponential`` and ``vp`` build
ladders and ``to_grid`` / ``from_grid`` map them to and from process times. ``case`` gives
all of it for one test. ``sampling()`` loads ``k_diffusion.sampling`` without the package's
heavy imports, and ``verify_kdiffusion`` measures its samplers (needs k-diffusion:
``pip install 'diffcheck[kdiffusion]' && pip install --no-deps k-diffusion``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from toy.mixture import GaussianMixture, NoisedMixture

from .catalogue import SAMPLERS, KSampler, by_name, run
from .denoiser import Denoiser, exact_denoiser, gaussian_flow, law, model_denoiser, sigma_time
from .load import INSTALL_HINT, available, sampling
from .noise import BrownianNoise, IndependentNoise
from .sigmas import check_sigmas, exponential, from_grid, karras, polyexponential, to_grid, vp, vp_process

__all__ = [
    "Denoiser", "exact_denoiser", "model_denoiser", "law", "sigma_time", "gaussian_flow",
    "karras", "exponential", "polyexponential", "vp", "vp_process", "to_grid", "from_grid", "check_sigmas",
    "INSTALL_HINT", "available", "sampling", "IndependentNoise", "BrownianNoise",
    "KSampler", "SAMPLERS", "by_name", "run", "Case", "case", "verify_kdiffusion", "format_report",
]


@dataclass
class Case:
    """One test of a k-diffusion-style sampler: the exact denoiser, a ladder, starts from the exact law at sigmas[0], the exact law at sigmas[-1]."""

    mixture: GaussianMixture
    denoiser: Denoiser
    sigmas: torch.Tensor
    x: torch.Tensor
    law: NoisedMixture


def case(mixture: Any = "anisotropic", *, n: int = 500, steps: int = 64, sigma_min: float = 0.002, sigma_max: float = 80.0,
         rho: float = 7.0, generator: torch.Generator | None = None) -> Case:
    """A ``Case`` on a toy preset (name or mixture) with Karras' ladder of ``steps`` steps to 0 and ``n`` starting points.

    The defaults suit a first-order sampler: at 64 steps Euler's own error (KL 0.004 nats from
    the data law on a Gaussian target) is a quarter of what a level-1e-3 test on 500 samples
    resolves (0.0155, ``law_resolution(2, 500)``), so a correct sampler passes, while an
    inconsistent one (KL 0.1 or more) fails. More samples need more steps: the ratio holds
    for n * (error at ``steps``) fixed, i.e. n proportional to steps^2 for order 1.
    """
    import toy
    from toy.validate import check_int

    n = check_int(n, "n", minimum=1)
    steps = check_int(steps, "steps", minimum=2)
    mix = toy.preset(mixture) if isinstance(mixture, str) else mixture
    if not isinstance(mix, GaussianMixture):
        raise TypeError(f"mixture must be a toy preset name or a GaussianMixture, got {type(mixture).__name__}")
    sig = karras(steps, sigma_min, sigma_max, rho)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    return Case(mix, exact_denoiser(mix), sig, law(mix, sigma_max).sample(n, gen), law(mix, 0.0))


def verify_kdiffusion(*args: Any, **kwargs: Any) -> dict:
    """Measure k-diffusion's samplers against the exact answer (see ``report.verify_kdiffusion``)."""
    from .report import verify_kdiffusion as go

    return go(*args, **kwargs)


def format_report(report: dict) -> str:
    """The report of ``verify_kdiffusion`` as plain text (see ``report.format_report``)."""
    from .report import format_report as fmt

    return fmt(report)
