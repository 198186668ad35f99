"""Checks of Improved DDPM's learned variance as the ancestral sampler uses it (Nichol & Dhariwal 2021, Eq. 15).

The exact model can output the optimal variance: ``ExactLearnedVariance`` gives, at each
step t -> s of a grid, the v whose learned range is the diagonal of the exact
Var(x_s | x_t) = beta_tilde I + c^2 Cov(x_0 | x_t). On a Gaussian target with diagonal
covariance the true reverse kernel is Gaussian with exactly that variance, so the chain is
exact at any number of steps; on mixtures it is the best per-coordinate Gaussian step.

DDPM's last step (into the data) draws no noise with any variance (Ho et al. 2020,
Algorithm 2), so the samplers are compared at the grid's last noisy time t_1, where the
target is the exact marginal p_{t_1}.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

import toy

from .. import samplers as S
from ..exact import ExactModel
from ..learned.variance_sampling import noisy_grid, sampling_distances
from ..process import DiscreteVP, Process
from ..testing import stats as st
from ..testing.gaussian_law import affine_law
from ..variance import ExactLearnedVariance
from . import Outcome, check

ORDER = 64  # position in the tour: after the samplers, orders, DDIM and the likelihood

VARIANCES = ("learned", "beta_tilde", "beta")

# a unit and a narrow coordinate: beta is exact for N(0, I) data, beta_tilde for a point (Ho et al. 2020, Sec. 3.2)
DIAGONAL_GAUSSIAN = toy.single_gaussian(torch.tensor([1.0, -0.5], dtype=torch.float64),
                                        torch.diag(torch.tensor([1.0, 0.015**2], dtype=torch.float64)))

LearnedModel = Callable[[toy.GaussianMixture, Process, torch.Tensor], Any]


def _model(variance: str, mixture: toy.GaussianMixture, process: Process, grid: torch.Tensor,
           learned_model: LearnedModel | None) -> Any:
    if variance != "learned":
        return ExactModel(mixture, process, "eps")
    return (learned_model or ExactLearnedVariance)(mixture, process, grid)


@check(
    "iddpm.learned_variance_exact",
    source="Nichol & Dhariwal 2021, Eq. 15 with Ho et al. 2020, Eq. 11 and Algorithm 2",
    claim="On a Gaussian target with diagonal covariance (a unit and a 0.015-scale coordinate), DDPM ancestral sampling "
          "on Improved DDPM's respaced cosine table with the exact model's optimal learned variance has the exact "
          "marginal as its output law at every number of steps (10, 25, 50; 1000 in the slow suite), to rounding, "
          "while beta_tilde and beta are off by a KL that shrinks with the steps",
)
def learned_variance_exact(steps: tuple[int, ...] = (10, 25, 50), tol: float = 1e-10,
                           learned_model: LearnedModel | None = None) -> Outcome:
    """``learned_model(mixture, process, grid)`` replaces ``ExactLearnedVariance`` (to show the check can fail)."""
    p = DiscreteVP.cosine()
    m = DIAGONAL_GAUSSIAN
    errors, kls, failures = {}, {v: [] for v in VARIANCES}, []
    for k in steps:
        grid = noisy_grid(p, k)
        law = ExactModel(m, p).law
        start, target = law(grid[0]), law(grid[-1])
        for variance in VARIANCES:
            model = _model(variance, m, p, grid, learned_model)
            run = lambda x, nz: S.ddpm_ancestral(model, p, x, grid, generator=nz, variance=variance)
            mean, cov = affine_law(run, start.mean(), start.covariance())
            kls[variance].append(float(toy.kl_gaussian(mean, cov, target.mean(), target.covariance())))
            if variance == "learned":
                sd = target.covariance().diagonal().sqrt()
                err = float(((mean - target.mean()) / sd).abs().max()) + float(
                    ((cov - target.covariance()) / (sd[:, None] * sd[None, :])).abs().max())
                errors[k] = err
                if not err <= tol:
                    failures.append(f"learned, {k} steps: relative moment error {err:.3g} > {tol:g}")
    for variance in ("beta_tilde", "beta"):
        row = kls[variance]
        if not all(a > b for a, b in zip(row, row[1:])) or not min(row) > 1e4 * tol:
            failures.append(f"{variance}: KL {row} does not shrink with steps from a clear error")
    return Outcome({"learned": 0.0, "beta_tilde, beta": "KL > 0, shrinking with steps"},
                   {"learned relative moment error": errors, **{f"KL {v}": dict(zip(steps, kls[v])) for v in VARIANCES}},
                   tol, not failures,
                   "exact output laws (affine_law, no Monte Carlo); moment errors in units of the target's standard "
                   "deviations; float64 rounding over <= 1000 steps stays orders of magnitude below the tolerance",
                   {"failures": failures})


@check(
    "iddpm.learned_variance_mixtures",
    source="Nichol & Dhariwal 2021, Sec. 3.1 and Eq. 15 (learned variances help at few steps)",
    claim="On mixtures far from both fixed choices' assumptions (NCSN's two modes at +-5; the narrow preset, a "
          "coordinate of scale 0.015), ancestral sampling at 25 and 50 steps with the exact model's optimal learned "
          "variance is closer to the exact marginal than beta_tilde and beta (KL between moment-matched Gaussians, "
          "paired bootstrap standard errors); at 100 steps (slow suite) still on the narrow preset, and at 1000 steps "
          "(slow suite) the three agree within the Monte Carlo error on the two modes",
)
def learned_variance_mixtures(closer: tuple = (("two_modes", 25, 8000), ("narrow", 25, 4000), ("narrow", 50, 4000)),
                              agree: tuple = (), seed: int = 64, alpha: float = 1e-3, n_boot: int = 200,
                              learned_model: LearnedModel | None = None) -> Outcome:
    """``closer`` and ``agree`` are (preset, steps, n) cases; ``learned_model`` replaces ``ExactLearnedVariance``."""
    tests = 2 * (len(closer) + len(agree))
    z_one = st.normal_quantile(1 - alpha / tests)
    z_two = st.normal_quantile(1 - alpha / (2 * tests))
    rows, failures = {}, []
    for kind, cases in (("closer", closer), ("agree", agree)):
        for preset, steps, n in cases:
            m, p = toy.preset(preset), DiscreteVP.cosine()
            runs = {v: (_model(v, m, p, noisy_grid(p, steps), learned_model), v) for v in VARIANCES}
            d = sampling_distances(runs, m, p, steps, n, seed, n_boot=n_boot)
            key = f"{preset}, {steps} steps, n={n}"
            rows[key] = {"KL": d.kl, "SE": d.se}
            for v in ("beta_tilde", "beta"):
                diff, se = d.difference(v, "learned")
                # a difference at the KLs' rounding is no difference: the SE is floored at 1e-9 of the larger KL
                z = diff / max(se, 1e-9 * max(d.kl[v], d.kl["learned"]))
                rows[key][f"z ({v} - learned)"] = z
                if kind == "closer" and not z > z_one:
                    failures.append(f"{key}: learned not closer than {v} (z = {z:.2f} <= {z_one:.2f})")
                if kind == "agree" and not abs(z) <= z_two:
                    failures.append(f"{key}: learned and {v} differ (|z| = {abs(z):.2f} > {z_two:.2f})")
    return Outcome({"closer": "KL(learned) < KL(beta_tilde), KL(beta)", "agree": "equal KLs"},
                   {k: {v: f"{r['KL'][v]:.3g} +- {r['SE'][v]:.2g}" for v in VARIANCES} for k, r in rows.items()},
                   {"closer: z >": z_one, "agree: |z| <=": z_two}, not failures,
                   f"z of each KL difference over its paired-bootstrap SE ({n_boot} resamples; the three samplers share "
                   f"x_T and the noise; SEs floored at 1e-9 of the KLs, their rounding); Bonferroni over {tests} tests "
                   f"at alpha={alpha:g}",
                   {"failures": failures, "cases": rows})
