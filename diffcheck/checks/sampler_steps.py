"""How many steps the sampler law check needs: each sampler's discretisation error, as a KL on each preset's
components alone, against the smallest KL the check's sample size could resolve.

A sampler run on one Gaussian component of a preset (its exact model is affine) has an exact Gaussian output law
(``affine_law``), so its discretisation KL to the exact law at the last grid time is computed without Monte Carlo;
samplers that are not affine (``Case.affine`` false: the batch-averaged corrector) get it from the fitted moments
of many samples. The law
check needs a step count at which every component's KL is at most ``law_resolution(2, n, alpha_each)``: the KL
that even the most powerful Gaussian test on the check's n samples at its Bonferroni level finds only with even
odds, so a bias below it cannot be told from sampling noise by the check's weaker sliced-KS and mode-share tests.
"""

from __future__ import annotations

from typing import Any

import torch

import toy

from ..exact import ExactModel
from ..testing.gaussian_law import affine_law
from ..testing.resolution import gaussian_kl, law_resolution

__all__ = ["components", "component_kl", "worst_ratio"]


def components(presets: list[tuple[str, toy.GaussianMixture]]) -> list[tuple[str, toy.GaussianMixture]]:
    """Each component of each preset as a single Gaussian, named preset/index."""
    return [(f"{name}/{k}", toy.single_gaussian(m.means[k], m.covs[k])) for name, m in presets for k in range(m.means.shape[0])]


def component_kl(case: Any, grid: torch.Tensor, component: toy.GaussianMixture, n_mc: int = 100_000, seed: int = 0) -> float:
    """KL (nats) of ``case``'s output law on ``grid`` from the exact start to the exact law at ``grid[-1]``."""
    model = ExactModel(component, case.process, case.prediction)
    start, end = model.law(grid[0]), model.law(grid[-1])
    if case.affine:
        mean, cov = affine_law(lambda x, nz: case.run(model, case.process, x, grid, nz), start.mean(), start.covariance())
    else:  # a state-dependent step: fitted moments of n_mc samples (fitting adds about 5 / (2 n_mc) nats)
        gen = torch.Generator().manual_seed(seed)
        x = case.run(model, case.process, start.sample(n_mc, gen), grid, gen)
        mean, cov = x.mean(0), torch.cov(x.T)
    return gaussian_kl(mean, cov, end.mean(), end.covariance())


def worst_ratio(case: Any, grid: torch.Tensor, presets: list[tuple[str, toy.GaussianMixture]], n: int, alpha_each: float) -> tuple[float, str]:
    """The largest component KL over the resolution at ``n`` samples and level ``alpha_each``, and its component."""
    res = law_resolution(2, n, alpha_each)
    ratios = [(component_kl(case, grid, c) / res, name) for name, c in components(presets)]
    return max(ratios)
