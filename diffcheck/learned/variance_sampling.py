"""How close ancestral sampling comes to the exact marginal with each reverse variance, for exact or trained models.

Runs share x_T (drawn from the exact marginal at the grid's first time) and the noise (one seed), so that their
differences are measured with common random numbers. Each run's distance to the target is the KL between the
Gaussians with the sample's and the target's first two moments, with a bootstrap standard error; resampling the
runs jointly gives the standard errors of their differences. DDPM's last step into the data draws no noise with any
variance (Ho et al. 2020, Algorithm 2), so runs stop at the grid's last noisy time t_1 and the target is p_{t_1}.

:func:`hybrid_sampling` measures a network trained with L_hybrid (Nichol & Dhariwal 2021, Eq. 16): its samples with
its own variance beside its samples with beta_tilde, and the exact model's with the optimal and the fixed variances.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

import toy
from toy.mixture import GaussianMixture
from toy.validate import check_int

from .. import samplers as S
from ..exact import ExactModel
from ..process import DiscreteVP, ddpm_grid, iddpm_grid
from ..variance import ExactLearnedVariance
from .train import Trained

__all__ = ["Distances", "noisy_grid", "moment_kl", "sampling_distances", "hybrid_sampling"]


def noisy_grid(process: DiscreteVP, steps: int) -> torch.Tensor:
    """Improved DDPM's respaced grid of ``steps`` steps (Nichol & Dhariwal 2021, App. B) without its last step into the data."""
    return iddpm_grid(process, [check_int(steps, "steps", minimum=2)])[:-1]


def moment_kl(x: torch.Tensor, law: Any) -> float:
    """KL(N(mean, cov of the sample) || N(mean, cov of the law)): the distance between first and second moments (NaN
    when the sample is not all finite)."""
    if not bool(torch.isfinite(x).all()):
        return float("nan")
    return float(toy.kl_gaussian(x.mean(0), torch.cov(x.T), law.mean(), law.covariance()))


@dataclasses.dataclass
class Distances:
    """Moment KLs of several runs to one target, their bootstrap SEs, and the joint bootstrap (n_boot, runs)."""

    names: list[str]
    kl: dict[str, float]
    se: dict[str, float]
    boot: torch.Tensor

    def difference(self, a: str, b: str) -> tuple[float, float]:
        """KL(a) - KL(b) and its standard error (from the joint resamples)."""
        i, j = self.names.index(a), self.names.index(b)
        return self.kl[a] - self.kl[b], float((self.boot[:, i] - self.boot[:, j]).std())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: each run's KL and SE (NaN for a run whose samples are not all finite)."""
        return {name: {"kl": self.kl[name], "se": self.se[name]} for name in self.names}


def sampling_distances(runs: dict[str, tuple[Any, str]], mixture: GaussianMixture, process: DiscreteVP, steps: int,
                       n: int, seed: int, *, n_boot: int = 200) -> Distances:
    """Run ``ddpm_ancestral(model, ..., variance=variance)`` for each ``runs[name] = (model, variance)`` over
    ``noisy_grid(process, steps)`` from the same n points and noise, and measure each against p_{t_1}."""
    n = check_int(n, "n", minimum=3)
    grid = noisy_grid(process, steps)
    exact = ExactModel(mixture, process, "eps")
    x_T = exact.law(grid[0]).sample(n, torch.Generator().manual_seed(seed))
    law = exact.law(grid[-1])
    samples = {}
    with torch.no_grad():
        for name, (model, variance) in runs.items():
            # a run that diverges (an untrained network) is reported with a NaN distance rather than stopping the rest
            samples[name] = S.ddpm_ancestral(model, process, x_T, grid, generator=torch.Generator().manual_seed(seed + 1),
                                             variance=variance, check_finite=False)
    names = list(runs)
    gen = torch.Generator().manual_seed(seed + 2)
    rows = []
    for _ in range(check_int(n_boot, "n_boot", minimum=2)):
        i = torch.randint(0, n, (n,), generator=gen)
        rows.append([moment_kl(samples[name][i], law) for name in names])
    boot = torch.tensor(rows, dtype=torch.float64)
    kl = {name: moment_kl(samples[name], law) for name in names}
    return Distances(names, kl, {name: float(boot[:, k].std()) for k, name in enumerate(names)}, boot)


def hybrid_sampling(trained: Trained, *, steps: int = 50, n: int = 4000, seed: int = 0, n_boot: int = 200) -> dict[str, Any]:
    """A network trained with L_hybrid sampled at ``steps`` respaced steps with its own variance and with beta_tilde,
    beside the exact model with the optimal learned variance of the respaced steps, L_hybrid's own optimum (the
    one-step optimal v, read with the respaced beta and beta_tilde), beta_tilde and beta: moment KLs to p_{t_1}."""
    model, process, mixture = trained.model, trained.process, trained.mixture
    if not getattr(model, "learn_sigma", False) or not isinstance(process, DiscreteVP):
        raise TypeError("trained must be a learned-variance network on a DDPM table (an objective like Hybrid)")
    exact = ExactModel(mixture, process, "eps")
    runs = {
        "network, learned": (model, "learned"),
        "network, beta_tilde": (model, "beta_tilde"),
        "exact, optimal learned": (ExactLearnedVariance(mixture, process, noisy_grid(process, steps)), "learned"),
        # L_hybrid's optimum: the v of the table's one-step transitions, which the sampler reads with the respaced
        # beta, beta_tilde (what a perfectly trained network outputs)
        "exact, one-step optimal v": (ExactLearnedVariance(mixture, process, ddpm_grid(process)), "learned"),
        "exact, beta_tilde": (exact, "beta_tilde"),
        "exact, beta": (exact, "beta"),
    }
    d = sampling_distances(runs, mixture, process, steps, n, seed, n_boot=n_boot)
    diff, se = d.difference("network, beta_tilde", "network, learned")
    return {"preset": trained.recipe.preset, "train_steps": trained.recipe.steps, "sample_steps": steps, "n": n,
            "distances": d.to_dict(), "network: KL(beta_tilde) - KL(learned)": {"difference": diff, "se": se}}
