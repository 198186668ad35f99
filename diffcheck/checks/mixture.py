"""Checks of the answer key itself: mixture scores, push-forwards, posteriors, conditionals."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

import toy
from toy.mixture import GaussianMixture, NoisedMixture

from ..testing import stats as st
from . import Outcome, check, tour_plot

ORDER = 10  # position in the tour

# (alpha, sigma) pairs from clean data to mostly noise
_SCALES = ((1.0, 0.0), (0.9, 0.3), (0.5, 0.8), (0.05, 1.0), (1.0, 5.0))


def _presets() -> list[tuple[str, GaussianMixture]]:
    return [
        ("two_modes", toy.two_modes()),
        ("anisotropic", toy.anisotropic()),
        ("ring", toy.ring()),
        ("narrow", toy.narrow()),
        ("ar1_video", toy.ar1_video(frames=4, frame_dim=2, offsets=[[0.0, 0.0], [2.0, -1.0]], rho=[0.9, 0.5])),
    ]


def _laws(m: GaussianMixture) -> list[tuple[str, NoisedMixture | GaussianMixture]]:
    out: list[tuple[str, NoisedMixture | GaussianMixture]] = [("data", m)]
    out += [(f"a={a:g},s={s:g}", m.noised(a, s)) for a, s in _SCALES[1:]]
    return out


def _points(law, n: int, gen: torch.Generator) -> torch.Tensor:
    """Draws from the law plus a few points far out in the tails."""
    x = law.sample(n, gen)
    far = 30.0 * torch.randn(8, x.shape[1], generator=gen, dtype=x.dtype)
    return torch.cat([x, far])


@check(
    "mixture.score_autograd",
    source="closed form; Song & Ermon 2019",
    claim="The mixture score (and every noised score) equals the autograd gradient of its log-density",
)
def score_matches_autograd(n: int = 256, seed: int = 0, score_fn: Callable | None = None) -> Outcome:
    """``score_fn(law, x)`` replaces the closed-form score (to show the check can fail)."""
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    where = ""
    for name, m in _presets():
        for lname, law in _laws(m):
            x = _points(law, n, gen).requires_grad_(True)
            (g,) = torch.autograd.grad(law.log_prob(x).sum(), x)
            s = law.score(x.detach()) if score_fn is None else score_fn(law, x.detach())
            err = float(((s - g).norm(dim=-1) / (1.0 + g.norm(dim=-1))).max())
            if err > worst:
                worst, where = err, f"{name} {lname}"
    tol = 1e-10
    return Outcome(0.0, worst, tol, worst <= tol,
                   "float64 rounding (2.2e-16) amplified by log-sum-exp and eigenbasis rotations stays far below 1e-10",
                   {"worst_case": where})


@check(
    "mixture.noised_density",
    source="closed form: alpha X + sigma Z of a mixture is sum_k pi_k N(alpha mu_k, alpha^2 S_k + sigma^2 I)",
    claim="The batched eigenbasis evaluation of noised densities equals the explicit mixture with Cholesky factors",
)
def noised_density_matches_explicit(n: int = 256, seed: int = 1) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for _, m in _presets():
        for a, s in _SCALES[1:]:
            law = m.noised(a, s)
            x = _points(law, n, gen)
            eye = torch.eye(m.dim, dtype=m.dtype)
            comp = toy.log_normal(x[:, None, :], a * m.means, a * a * m.covs + s * s * eye)
            ref = torch.logsumexp(torch.log(m.weights) + comp, -1)
            worst = max(worst, float(((law.log_prob(x) - ref).abs() / (1.0 + ref.abs())).max()))
        # per-sample (alpha, sigma): each row must equal its own scalar law
        a = torch.rand(64, generator=gen, dtype=torch.float64)
        s = 0.05 + torch.rand(64, generator=gen, dtype=torch.float64)
        x = m.noised(a, s).sample(generator=gen)
        batched = m.noised(a, s).log_prob(x)
        single = torch.stack([m.noised(a[i], s[i]).log_prob(x[i : i + 1])[0] for i in range(64)])
        worst = max(worst, float(((batched - single).abs() / (1.0 + single.abs())).max()))
    tol = 1e-11
    return Outcome(0.0, worst, tol, worst <= tol, "two float64 routes to the same Gaussian log-densities; rounding only")


@check(
    "mixture.noised_sampling",
    source="closed form: law of alpha X + sigma Z",
    claim="Samples of alpha X + sigma Z follow the noised mixture: exact mean, covariance and a two-sample test",
)
def noised_sampling(
    n: int = 2000, seed: int = 2, alpha: float = 1e-3, sampler: Callable | None = None
) -> Outcome:
    """``sampler(mixture, a, s, n, gen)`` replaces alpha X + sigma Z (to show the check can fail)."""
    gen = torch.Generator().manual_seed(seed)
    cases = [(name, m, a, s) for name, m in _presets()[:3] for a, s in ((0.9, 0.3), (0.5, 0.8))]
    each = alpha / (3 * len(cases))
    failures, pvals = [], []
    for name, m, a, s in cases:
        law = m.noised(a, s)
        if sampler is None:
            y = a * m.sample(n, gen) + s * torch.randn(n, m.dim, generator=gen, dtype=m.dtype)
        else:
            y = sampler(m, a, s, n, gen)
        ref = law.to_mixture().sample(n, gen)
        tests = [
            st.mean_test(y, law.mean(), law.covariance(), alpha=each),
            st.covariance_test(y, law.covariance(), alpha=each),
            st.two_sample_test(y, ref, alpha=each, generator=gen, features=law.log_prob),
        ]
        pvals.append(min((t.p_value for t in tests if t.p_value is not None), default=1.0))
        failures += [f"{name} a={a} s={s}: {t}" for t in tests if not t.passed]
    return Outcome(
        "no rejection", f"{len(failures)} rejections", f"alpha={alpha:g} overall", not failures,
        f"Bonferroni over {3 * len(cases)} tests (mean chi-square, covariance z-scores, sliced KS with the exact log-density as a slice), n={n} each",
        {"failures": failures, "smallest_p": min(pvals)},
    )


@check(
    "mixture.tweedie",
    source="Tweedie's formula (Efron 2011); Kingma et al. 2021",
    claim="The exact posterior mean E[x0|xt] equals (xt + sigma^2 grad log p_t(xt)) / alpha",
)
def tweedie(n: int = 256, seed: int = 3) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for _, m in _presets():
        for a, s in _SCALES[1:]:
            law = m.noised(a, s)
            x = _points(law, n, gen)
            direct = law.posterior_mean(x)
            via_score = (x + s * s * law.score(x)) / a
            worst = max(worst, float(((direct - via_score).norm(dim=-1) / (1.0 + x.norm(dim=-1) / a)).max()))
    tol = 1e-10
    return Outcome(0.0, worst, tol, worst <= tol,
                   "relative to |x|/alpha, the size of the terms Tweedie's formula subtracts; float64 rounding")


@check(
    "mixture.tweedie_second_order",
    source="second-order Tweedie formula",
    claim="Cov[x0|xt] equals (sigma^2/alpha^2)(I + sigma^2 Hessian log p_t(xt)), Hessian by autograd",
)
def tweedie_second_order(n: int = 64, seed: int = 4) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for _, m in _presets()[:4]:
        for a, s in _SCALES[1:]:
            law = m.noised(a, s)
            x = _points(law, n, gen)
            hess = _hessian_log_prob(law, x)
            eye = torch.eye(m.dim, dtype=m.dtype)
            via = (s * s / (a * a)) * (eye + s * s * hess)
            direct = law.posterior_cov(x)
            # the Hessian of a log-sum-exp is a difference of terms as large as |score|^2
            big = hess.abs().amax((-1, -2)) + law.score(x).pow(2).sum(-1)
            scale = s * s / (a * a) * (1.0 + s * s * big)
            worst = max(worst, float(((direct - via).abs().amax((-1, -2)) / scale).max()))
    tol = 1e-9
    return Outcome(0.0, worst, tol, worst <= tol,
                   "relative to the size of the terms (the log-sum-exp Hessian subtracts terms of size |score|^2); float64 rounding")


def _hessian_log_prob(law, x: torch.Tensor) -> torch.Tensor:
    """Per-point Hessians of log p by double backward through ``log_prob`` (points are independent)."""
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(law.log_prob(x).sum(), x, create_graph=True)
    rows = [torch.autograd.grad(g[:, d].sum(), x, retain_graph=True)[0] for d in range(x.shape[1])]
    return torch.stack(rows, 1)


def _orthogonality_values(law: NoisedMixture, x0: torch.Tensor, xt: torch.Tensor, mean_fn, cov_fn) -> torch.Tensor:
    m = mean_fn(xt)
    r = x0 - m
    scale = xt.std(0)
    hs = [torch.ones_like(xt[:, :1]), xt / scale, torch.tanh(xt / scale)]
    cols = [r[:, :, None] * h[:, None, :] for h in hs]  # E[(x0 - m) h] = 0
    c = cov_fn(xt)
    cols.append((r[:, :, None] * r[:, None, :] - c).reshape(len(xt), -1, 1))  # E[(x0 - m)(x0 - m)^T - C] = 0
    return torch.cat([v.reshape(len(xt), -1) for v in cols], 1)


@check(
    "mixture.posterior_monte_carlo",
    source="definition of conditional expectation",
    claim="E[(x0 - m(xt)) h(xt)] = 0 and E[(x0 - m)(x0 - m)^T - C(xt)] = 0 for the exact posterior mean m and covariance C",
)
def posterior_monte_carlo(
    n: int = 20000, seed: int = 5, alpha: float = 1e-3, mean_fn: Callable | None = None, cov_fn: Callable | None = None
) -> Outcome:
    """``mean_fn(law)``/``cov_fn(law)`` return replacement posterior functions (to show the check can fail)."""
    gen = torch.Generator().manual_seed(seed)
    cases = [(name, m, a, s) for name, m in _presets()[:4] for a, s in ((0.9, 0.3), (0.5, 0.8))]
    each = alpha / len(cases)
    failures, worst = [], 0.0
    for name, m, a, s in cases:
        law = m.noised(a, s)
        x0 = m.sample(n, gen)
        xt = a * x0 + s * torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
        mf = law.posterior_mean if mean_fn is None else mean_fn(law)
        cf = law.posterior_cov if cov_fn is None else cov_fn(law)
        res = st.zero_mean_test(_orthogonality_values(law, x0, xt, mf, cf), alpha=each)
        worst = max(worst, res.statistic)
        if not res.passed:
            failures.append(f"{name} a={a} s={s}: {res}")
    thr = st.normal_quantile(1 - each / 2)
    return Outcome(
        0.0, worst, f"|z| per moment, Bonferroni alpha={alpha:g}", not failures,
        f"{len(cases)} cases, n={n} each; z-scores of Monte Carlo means with plug-in standard errors (threshold about {thr:.2f} before the per-moment split)",
        {"failures": failures},
    )


@check(
    "mixture.class_posterior",
    source="Bayes' rule",
    claim="p(y|x) from the mixture equals p(x|y) p(y) / p(x) built from the class-conditional mixtures",
)
def class_posterior(n: int = 256, seed: int = 6) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for _, m in [("three_classes", toy.three_classes()), ("anisotropic", toy.anisotropic()), ("ring", toy.ring(n=5, std=0.5))]:
        for a, s in _SCALES:
            law = m if s == 0.0 else m.noised(a, s)
            x = _points(law, n, gen)
            prior = m.class_prior()
            parts = []
            for c in m.classes.tolist():
                given = m.given(c) if s == 0.0 else m.given(c).noised(a, s)
                parts.append(given.log_prob(x) + torch.log(prior[int((m.classes == c).nonzero())]))
            bayes = torch.stack(parts, -1) - law.log_prob(x)[:, None]
            worst = max(worst, float((law.log_class_posterior(x) - bayes).abs().max()))
    tol = 1e-10
    return Outcome(0.0, worst, tol, worst <= tol, "absolute error of log-probabilities of order one; float64 rounding")


@check(
    "mixture.conditioning",
    source="Gaussian conditioning (Schur complement)",
    claim="The mixture conditioned on some coordinates has density p(x) / p(x_observed), and its samples its moments",
)
def conditioning(seed: int = 7, n: int = 20000, alpha: float = 1e-3) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    failures = []
    cases = [
        ("anisotropic", toy.anisotropic(), [1]),
        ("ar1_video", toy.ar1_video(frames=4, frame_dim=2, offsets=[[0.0, 0.0], [2.0, -1.0]], rho=[0.9, 0.5]), [0, 1, 4]),
    ]
    for name, m, obs in cases:
        obs_t = torch.tensor(obs)
        free = toy.complement(obs_t, m.dim)
        x = m.sample(16, gen)
        marg = m.marginal(obs_t)
        for row in x:
            cond = m.condition(obs_t, row[obs_t])
            lhs = cond.log_prob(row[free][None])[0]
            rhs = m.log_prob(row[None])[0] - marg.log_prob(row[obs_t][None])[0]
            worst = max(worst, float((lhs - rhs).abs() / (1.0 + rhs.abs())))
        # batched exact draws at one observed value: moments of the conditional mixture
        v = x[0, obs_t].expand(n, -1)
        draws = m.conditional_sample(obs_t, v, gen)
        cond = m.condition(obs_t, x[0, obs_t])
        for t in (st.mean_test(draws[:, free], cond.mean(), cond.covariance(), alpha=alpha / 4),
                  st.covariance_test(draws[:, free], cond.covariance(), alpha=alpha / 4)):
            if not t.passed:
                failures.append(f"{name}: {t}")
        if not torch.equal(draws[:, obs_t], v):
            failures.append(f"{name}: observed coordinates changed")
    tol = 1e-10
    return Outcome(0.0, worst, tol, worst <= tol and not failures,
                   "log-density identity in float64 (rounding); sample moments at Bonferroni alpha", {"failures": failures})


@check(
    "video.ar1_markov",
    source="AR(1) process: x_f = rho x_{f-1} + sqrt(1 - rho^2) std e_f",
    claim="Conditioning the AR(1) video on its past gives mean rho x_{f-1} and variance std^2 (1 - rho^2) per coordinate",
)
def ar1_markov(frames: int = 6, frame_dim: int = 3, rho: float = 0.8, std: float = 1.5, seed: int = 8) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    v = toy.ar1_video(frames=frames, frame_dim=frame_dim, rho=rho, std=std)
    x = v.sample(4, gen)
    worst = 0.0
    for f in range(1, frames):
        past = v.frame_coords(list(range(f)))
        nxt = v.frame_coords([f])
        for row in x:
            mean, cov, free = toy.condition_gaussian(v.means[0], v.covs[0], past, row[past])
            pick = torch.isin(free, nxt)
            err_m = (mean[pick] - rho * row[v.frame_coords([f - 1])]).abs().max()
            err_c = (cov[pick][:, pick] - std**2 * (1 - rho**2) * torch.eye(frame_dim, dtype=v.dtype)).abs().max()
            worst = max(worst, float(err_m), float(err_c))
    tol = 1e-12
    return Outcome(0.0, worst, tol, worst <= tol, "Markov property; float64 rounding of a Cholesky solve")


@tour_plot("densities.png")
def _plot_densities(path):
    from ..plots import plot_noised_densities
    from ..process import VP

    return plot_noised_densities(toy.anisotropic(), VP(), (0.0, 0.1, 0.3, 0.6, 1.0), path, "Exact VP marginals of the anisotropic mixture")


@tour_plot("score_fields.png")
def _plot_scores(path):
    from ..plots import plot_score_fields
    from ..process import VP

    return plot_score_fields(toy.two_modes(), VP(), (0.0, 0.2, 0.5, 0.9), path, "Exact scores of NCSN's two-mode mixture under VP noise")
