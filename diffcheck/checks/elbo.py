"""Checks of the variational bound as a whole: its Monte Carlo value against the closed form, its gap to the entropy, the SDE bound.

The bound's terms as they are trained (reverse variances, Improved DDPM's learned range,
importance sampling of t, the decoder and prior terms) are checked in ``elbo_terms``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

import toy

from .. import elbo, vlb
from ..exact import ExactModel
from ..process import VE, VP, SubVP, discretize
from ..testing import stats as st
from ..variance import clipped_log_beta_tilde, log_beta
from . import Outcome, check, tour_plot

ORDER = 55  # position in the tour


def grid(p, T: int):
    """The process discretized on T equal steps of [0, 1]."""
    return discretize(p, torch.arange(T + 1, dtype=torch.float64) / T)


def isotropic(var: torch.Tensor, d: int) -> torch.Tensor:
    """var times the d x d identity (var broadcasts against it)."""
    return var * torch.eye(d, dtype=torch.float64)


def bonferroni_z(alpha: float, k: int, two_sided: bool = True) -> float:
    """The normal quantile for k tests at a total false-alarm rate alpha (Bonferroni)."""
    return st.normal_quantile(1.0 - alpha / ((2 if two_sided else 1) * k))


@check(
    "ddpm.vlb_monte_carlo",
    source="Ho et al. 2020, Eq. 3-5 and 13; Sohl-Dickstein et al. 2015",
    claim="Each term of the bound (L_T, every L_{t-1}, the decoder L_0) equals the Monte Carlo average of its log-ratio along forward trajectories, the bound equals the trajectory estimate, and the closed forms given (x_0, x_t) and given x_t agree",
)
def vlb_monte_carlo(n: int = 4000, T: int = 20, seed: int = 40, alpha: float = 1e-3, term_fn: Callable | None = None) -> Outcome:
    """``term_fn`` replaces ``vlb.vlb_term`` (to show the check can fail)."""
    term_fn = vlb.vlb_term if term_fn is None else term_fn
    gen = torch.Generator().manual_seed(seed)
    m, p = toy.anisotropic(), VP()
    d = m.dim
    sched = grid(p, T)
    S = elbo.optimal_covariance(m, sched, 2000, gen, kind="isotropic")
    var = S.diagonal(dim1=-2, dim2=-1).mean(-1)
    model = ExactModel(m, p, "eps")
    # forward trajectories x_0 -> x_1 -> ... -> x_N by the one-step kernels q(x_i | x_{i-1})
    x0 = m.sample(n, gen)
    xs = [x0]
    for i in range(1, T + 1):
        z = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
        xs.append(sched.transition_alpha[i - 1] * xs[-1] + sched.transition_var[i - 1].sqrt() * z)
    eye = torch.eye(d, dtype=torch.float64)
    sampled, closed = [], []
    trajectory = -toy.log_normal(xs[T], torch.zeros(d, dtype=torch.float64), p.prior_std**2 * eye)
    for i in range(1, T + 1):
        a, s = sched.alpha[i], sched.sigma[i]
        x0_hat = model.x0(xs[i], sched.t[i])
        mean_p = sched.posterior_mean_coef1[i - 1] * x0_hat + sched.posterior_mean_coef2[i - 1] * xs[i]
        log_p = toy.log_normal(xs[i - 1], mean_p, var[i - 1] * eye)
        trajectory = trajectory - log_p + toy.log_normal(xs[i], sched.transition_alpha[i - 1] * xs[i - 1], sched.transition_var[i - 1] * eye)
        if i == 1:
            sampled.append(-log_p)
        else:
            mean_q = sched.posterior_mean_coef1[i - 1] * x0 + sched.posterior_mean_coef2[i - 1] * xs[i]
            sampled.append(toy.log_normal(xs[i - 1], mean_q, sched.beta_tilde[i - 1] * eye) - log_p)
        closed.append(term_fn(model, sched, x0, i, variance=var, eps=(xs[i] - a * x0) / s))
    aN, sN = sched.alpha[T], sched.sigma[T]
    sampled_T = toy.log_normal(xs[T], aN * x0, sN**2 * eye) - toy.log_normal(xs[T], torch.zeros(d, dtype=torch.float64), p.prior_std**2 * eye)
    exact_T = elbo.prior_term(m, sched)
    rb = elbo.optimal_bound(m, sched, n, gen, covariances=isotropic(var[:, None, None], d))
    k = 2 * T + 2
    each = alpha / k
    tests = []
    for i in range(1, T + 1):
        name = "L_0 (decoder)" if i == 1 else f"L_{i - 1}"
        tests.append(st.zero_mean_test(sampled[i - 1] - closed[i - 1], alpha=each, name=f"{name}: sampled log-ratio - closed form given (x0, x_t)"))
        mean_c = closed[i - 1].mean()
        se_c = closed[i - 1].std() / math.sqrt(n)
        zc = float((mean_c - rb.terms[i - 1]) / (se_c**2 + rb.se[i - 1] ** 2).sqrt())
        tests.append(st.TestResult(f"{name}: given (x0, x_t) vs given x_t", abs(zc) <= bonferroni_z(each, 1), abs(zc), None, each, n,
                                   expected=float(rb.terms[i - 1]), measured=float(mean_c), threshold=bonferroni_z(each, 1)))
    tests.append(st.zero_mean_test(sampled_T - exact_T, alpha=each, name="L_T: sampled log-ratio - exact E L_T"))
    bound = torch.stack(closed).sum(0) + vlb.prior_kl(sched, x0)
    tests.append(st.zero_mean_test(trajectory - bound, alpha=each, name="trajectory bound - sum of closed-form terms"))
    failures = [str(r) for r in tests if not r.passed]
    details = {
        "failures": failures,
        "bound (closed form given x_t), nats": rb.total, "its SE": rb.total_se,
        "bound (trajectory estimate), nats": float(trajectory.mean()), "its SE": float(trajectory.std() / math.sqrt(n)),
        "L_T exact": exact_T, "L_T sampled": float(sampled_T.mean()),
        "terms (closed form given x_t)": rb.terms.tolist(),
    }
    return Outcome("zero mean differences", f"{len(failures)} rejections", f"alpha={alpha:g} overall", not failures,
                   f"paired and two-sample z-tests, n={n} trajectories, T={T} (VP, uniform grid), Bonferroni over {k}", details)


@check(
    "ddpm.vlb_entropy",
    source="Ho et al. 2020, Eq. 3 and 5; Kingma et al. 2021 (continuous-time limit)",
    claim="With the exact posterior mean and the optimal isotropic variance at every step (Gaussian decoder at t_1) the bound averaged over the data is at least the entropy E[-log p_0], and the gap shrinks as T grows (T = 10, 100, 1000)",
)
def vlb_entropy(n: int = 500, seed: int = 41, alpha: float = 1e-3, schedule_fn: Callable | None = None) -> Outcome:
    """``schedule_fn(schedule)`` replaces each schedule (to show the check can fail)."""
    gen = torch.Generator().manual_seed(seed)
    Ts = (10, 100, 1000)
    cases = [("anisotropic", toy.anisotropic()), ("narrow", toy.narrow())]
    k = len(cases) * (len(Ts) + len(Ts) - 1)
    thr = bonferroni_z(alpha, k, two_sided=False)
    failures, rows = [], {}
    for name, m in cases:
        H = elbo.entropy_grid(m)
        gaps, ses = [], []
        for T in Ts:
            sched = grid(VP(), T)
            sched = sched if schedule_fn is None else schedule_fn(sched)
            b = elbo.optimal_bound(m, sched, n, gen)
            gaps.append(b.total - H.value)
            ses.append(math.sqrt(b.total_se**2 + H.se**2))
            if gaps[-1] < -thr * ses[-1]:
                failures.append(f"{name}, T={T}: bound {b.total:.6g} below the entropy {H.value:.6g} by {-gaps[-1]:.3g} ({-gaps[-1] / ses[-1]:.1f} SE)")
        for j in range(len(Ts) - 1):
            diff, se = gaps[j] - gaps[j + 1], math.sqrt(ses[j] ** 2 + ses[j + 1] ** 2)
            if diff < thr * se:
                failures.append(f"{name}: gap at T={Ts[j]} ({gaps[j]:.3g}) not above the gap at T={Ts[j + 1]} ({gaps[j + 1]:.3g}) by {thr:.2f} SE")
        rows[name] = {"entropy (grid)": H.value, "entropy error estimate": H.se,
                      **{f"gap T={T}": g for T, g in zip(Ts, gaps)}, **{f"SE T={T}": s for T, s in zip(Ts, ses)}}
    return Outcome("bound >= entropy; gap decreasing in T", f"{len(failures)} violations", f"{thr:.2f} SE (one-sided)", not failures,
                   f"n={n} draws per step for each term and for the variances; one-sided z at alpha={alpha:g}, Bonferroni over {k}",
                   {"failures": failures, **rows})


def _cross_entropy_prior(law_mixture: toy.GaussianMixture, prior_std: float) -> float:
    d = law_mixture.dim
    second = float(law_mixture.covariance().trace() + law_mixture.mean().pow(2).sum())
    return 0.5 * d * math.log(2 * math.pi * prior_std**2) + 0.5 * second / prior_std**2


@check(
    "sde.bound_tight",
    source="Song et al. 2021b, Thm. 1-2; de Bruijn's identity",
    claim="The continuous-time bound of the reverse SDE with the exact score equals H(p_0) + KL(p_1 || prior): tight up to the prior mismatch (VP, sub-VP, VE)",
)
def bound_tight(n: int = 2000, seed: int = 42, alpha: float = 1e-3, processes: list | None = None) -> Outcome:
    """``processes`` replaces the (name, process) list (to show the check can fail)."""
    gen = torch.Generator().manual_seed(seed)
    procs = processes if processes is not None else [("VP", VP()), ("sub-VP", SubVP()), ("VE", VE(sigma_max=30.0))]
    cases = [("anisotropic", toy.anisotropic()), ("narrow", toy.narrow())]
    k = len(procs) * len(cases)
    thr = bonferroni_z(alpha, k)
    failures, rows = [], {}
    for mname, m in cases:
        H0 = elbo.entropy_grid(m)
        for pname, p in procs:
            p1 = p.marginal(m, 1.0).to_mixture()
            H1 = elbo.entropy_grid(p1)
            kl = _cross_entropy_prior(p1, p.prior_std) - H1.value
            b = elbo.sde_bound(m, p, n, gen, nodes=16)
            target = H0.value + kl
            se = math.sqrt(b.se**2 + H0.se**2 + H1.se**2)
            z = (b.value - target) / se
            if abs(z) > thr:
                failures.append(f"{mname}, {pname}: bound {b.value:.6g} vs H + KL {target:.6g} ({z:.1f} SE)")
            rows[f"{mname}, {pname}"] = {"bound": b.value, "SE": b.se, "H(p0) + KL(p1||prior)": target, "KL(p1||prior)": kl}
    return Outcome("bound = H(p0) + KL(p1 || prior)", f"{len(failures)} rejections", f"{thr:.2f} SE", not failures,
                   f"Monte Carlo n={n} per quadrature node (16-point Gauss-Legendre per piece, error below 2e-6 on Gaussian data); entropies by the trapezoid rule; two-sided z, alpha={alpha:g}, Bonferroni over {k}",
                   {"failures": failures, **rows})


@tour_plot("vlb_terms.png")
def _plot_vlb_terms(path):
    import matplotlib.pyplot as plt

    from ..plots import save, style

    style()
    gen = torch.Generator().manual_seed(0)
    m = toy.anisotropic()
    d = m.dim
    T = 50
    sched = grid(VP(), T)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9.0, 3.2))
    steps = torch.arange(1, T + 1).numpy()
    for label, cov in (("beta_tilde (fixed small)", isotropic(torch.exp(clipped_log_beta_tilde(sched))[:, None, None], d)),
                       ("beta (fixed large)", isotropic(torch.exp(log_beta(sched))[:, None, None], d)),
                       ("optimal isotropic", None)):
        b = elbo.optimal_bound(m, sched, 1000, gen, covariances=cov)
        ax0.semilogy(steps[1:], b.terms[1:-1].clamp_min(1e-12).numpy(), "o-", ms=2, lw=1, label=f"{label}: {b.total:.3f} nats")
    ax0.set_xlabel("step t")
    ax0.set_ylabel("L_{t-1} (nats), exact mean")
    ax0.set_title(f"Bound terms by reverse variance (anisotropic mixture, VP, T = {T})")
    ax0.legend()
    H = elbo.entropy_grid(m).value
    Ts = [5, 10, 30, 100, 300, 1000]
    gaps, ses = [], []
    for T in Ts:
        b = elbo.optimal_bound(m, grid(VP(), T), 200, gen)
        gaps.append(b.total - H)
        ses.append(b.total_se)
    ax1.errorbar(Ts, gaps, yerr=[2 * s for s in ses], fmt="o-", ms=3, lw=1, capsize=2, label="optimal isotropic variances")
    ax1.plot(Ts, [gaps[-1] * Ts[-1] / T for T in Ts], "k--", lw=0.8, label="slope -1")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("T")
    ax1.set_ylabel("bound - entropy (nats)")
    ax1.set_title("Gap to E[-log p_0] (2 SE bars)")
    ax1.legend()
    return save(fig, path)
