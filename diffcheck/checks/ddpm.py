"""Checks of DDPM tables, the cosine schedule, respacing and the VP <-> DDPM map."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import integrate

from ..process import (
    VE,
    VP,
    DiscreteVP,
    Schedule,
    cosine_alpha_bar,
    ddim_steps,
    discretize,
    iddpm_steps,
    vp_to_ddpm_betas,
)
from ..testing import stats as st
from . import Outcome, check

ORDER = 30  # position in the tour


def _ddpm_schedule(p: DiscreteVP) -> Schedule:
    return discretize(p, torch.arange(p.T + 1, dtype=torch.float64) / p.T)


@check(
    "ddpm.kernel_composition",
    source="Ho et al. 2020, Eq. 2 and 4",
    claim="Composing the per-step kernels N(sqrt(1 - beta_t) x, beta_t) gives q(x_t|x_0) = N(sqrt(alpha_bar_t) x_0, 1 - alpha_bar_t)",
)
def kernel_composition() -> Outcome:
    worst, where = 0.0, ""
    tables = [("linear", DiscreteVP.linear()), ("cosine", DiscreteVP.cosine()), ("linear T=50", DiscreteVP.linear(50, rescale=True))]
    for name, p in tables:
        sched = _ddpm_schedule(p)
        mean, var = 1.0, 0.0
        means, variances = [1.0], [0.0]
        for beta in p.betas.tolist():  # the recursion, step by step
            mean = math.sqrt(1.0 - beta) * mean
            var = (1.0 - beta) * var + beta
            means.append(mean)
            variances.append(var)
        err = max(float((torch.tensor(means, dtype=torch.float64) - sched.alpha).abs().max()),
                  float((torch.tensor(variances, dtype=torch.float64) - sched.sigma**2).abs().max()))
        if err > worst:
            worst, where = err, name
    tol = 1e-12
    return Outcome(0.0, worst, tol, worst <= tol,
                   "absolute; a recursion of 1000 float64 steps accumulates at most ~1000 ulp", {"worst_table": where})


def _bayes_posterior(sched: Schedule, step: int, x0: float, z: float) -> tuple[float, float, float, float]:
    """Posterior mean/variance of x_{i-1} given x_i, x_0 by quadrature, and the closed form."""
    i = step
    a_prev, s_prev = float(sched.alpha[i - 1]), float(sched.sigma[i - 1])
    a_i, s_i = float(sched.alpha[i]), float(sched.sigma[i])
    ta, tv = float(sched.transition_alpha[i - 1]), float(sched.transition_var[i - 1])
    xi = a_i * x0 + s_i * z
    c_prior, c_lik = a_prev * x0, xi / ta
    width = max(s_prev, math.sqrt(tv) / ta)
    u = np.linspace(min(c_prior, c_lik) - 14 * width, max(c_prior, c_lik) + 14 * width, 400001)
    logw = -0.5 * (u - c_prior) ** 2 / s_prev**2 - 0.5 * (xi - ta * u) ** 2 / tv
    w = np.exp(logw - logw.max())
    norm = integrate.simpson(w, x=u)
    mean = integrate.simpson(u * w, x=u) / norm
    var = integrate.simpson((u - mean) ** 2 * w, x=u) / norm
    closed_mean = float(sched.posterior_mean_coef1[i - 1]) * x0 + float(sched.posterior_mean_coef2[i - 1]) * xi
    return mean, var, closed_mean, float(sched.beta_tilde[i - 1])


@check(
    "ddpm.posterior_bayes",
    source="Ho et al. 2020, Eq. 6-7 (and its alpha/sigma form for any process)",
    claim="q(x_{t-1}|x_t, x_0) has the closed-form mean coefficients and variance beta_tilde: Bayes' rule by quadrature agrees",
)
def posterior_bayes(x0: float = 0.7, z: float = 0.8) -> Outcome:
    lin, cos = DiscreteVP.linear(), DiscreteVP.cosine()
    cases = [
        ("DDPM-linear", _ddpm_schedule(lin), (2, 10, 500, 1000)),
        ("DDPM-cosine", _ddpm_schedule(cos), (2, 10, 999, 1000)),
        ("respaced 50", discretize(lin, torch.cat([torch.zeros(1, dtype=torch.long), iddpm_steps(1000, "50")]) / 1000.0), (2, 25, 50)),
        ("VE SMLD", discretize(VE(), torch.linspace(0.0, 1.0, 11, dtype=torch.float64)), (2, 5, 10)),
        ("VP uniform", discretize(VP(), torch.linspace(1e-3, 1.0, 21, dtype=torch.float64)), (1, 10, 20)),
    ]
    worst, where = 0.0, ""
    for name, sched, steps in cases:
        for i in steps:
            if float(sched.sigma[i - 1]) == 0.0:
                continue  # x_{i-1} is x_0 itself; checked below
            m, v, cm, cv = _bayes_posterior(sched, i, x0, z)
            err = max(abs(m - cm) / math.sqrt(v), abs(v - cv) / v)
            if err > worst:
                worst, where = err, f"{name} step {i}"
    first = _ddpm_schedule(lin)
    exact_first = (float(first.beta_tilde[0]) == 0.0 and abs(float(first.posterior_mean_coef1[0]) - 1.0) < 1e-15
                   and float(first.posterior_mean_coef2[0]) == 0.0)
    tol = 1e-8
    return Outcome(0.0, worst, tol, worst <= tol and exact_first,
                   "mean error in posterior standard deviations and relative variance error; Simpson's rule on 400001 points",
                   {"worst_case": where, "step_1_is_x0": exact_first})


@check(
    "iddpm.cosine_table",
    source="Nichol & Dhariwal 2021, Eq. 17 and Sec. 3.2",
    claim="The cosine table's alpha_bar equals f(t)/f(0) at every step but the clipped ones; only beta_T is clipped at T=1000; beta_1 is about 4.1e-5",
)
def cosine_table(T: int = 1000) -> Outcome:
    p = DiscreteVP.cosine(T)
    ab = p.alphas_cumprod
    formula = cosine_alpha_bar(torch.arange(T + 1, dtype=torch.float64) / T)
    raw = 1.0 - formula[1:] / formula[:-1]
    clipped = (raw > 0.999).nonzero().reshape(-1) + 1
    first_clip = int(clipped[0]) if clipped.numel() else T + 1
    err = float(((ab[:first_clip] - formula[:first_clip]).abs() / formula[:first_clip]).max())
    beta1 = float(p.betas[0])
    ok = err <= 1e-12 and clipped.tolist() == [T] and abs(beta1 - 4.1e-5) <= 0.05e-5
    return Outcome(
        {"alpha_bar rel. error": 0.0, "clipped steps": [T], "beta_1": 4.1e-5},
        {"alpha_bar rel. error": err, "clipped steps": clipped.tolist(), "beta_1": beta1},
        {"alpha_bar": 1e-12, "beta_1": 0.05e-5}, ok,
        "cumulative product of 1000 factors (~1000 ulp); beta_1 to the 2 digits the paper states",
    )


@check(
    "iddpm.beta_tilde_ratio",
    source="Nichol & Dhariwal 2021, Fig. 1 and Sec. 3.1",
    claim="beta_tilde_t / beta_t is near 1 except in the first steps: about 0.47 at t = 2 and 0.87 at t = 10 (cosine, T = 1000)",
)
def beta_tilde_ratio() -> Outcome:
    sched = _ddpm_schedule(DiscreteVP.cosine())
    ratio = sched.beta_tilde / sched.beta
    r2, r10 = float(ratio[1]), float(ratio[9])
    ok = abs(r2 - 0.47) <= 0.005 and abs(r10 - 0.87) <= 0.005
    above = int((ratio[1:] < 0.99).nonzero().max()) + 2
    return Outcome({"t=2": 0.47, "t=10": 0.87}, {"t=2": r2, "t=10": r10}, 0.005, ok,
                   "half a unit in the last digit the paper states",
                   {"ratio stays >= 0.99 from step": above, "ratio at t=1000": float(ratio[-1])})


@check(
    "ddpm.alpha_bar_T",
    source="Ho et al. 2020, Sec. 4 (linear betas 1e-4 to 0.02, T = 1000)",
    claim="The linear schedule leaves alpha_bar_T about 4.0e-5 of the signal",
)
def alpha_bar_T() -> Outcome:
    ab = float(DiscreteVP.linear().alphas_cumprod[-1])
    # independent: exp(sum log(1 - beta)) with the closed-form betas of np.linspace
    betas = np.linspace(1e-4, 0.02, 1000)
    ref = float(np.exp(np.log1p(-betas).sum()))
    ok = abs(ab - 4.0e-5) <= 0.05e-5 and abs(ab - ref) <= 1e-12 * ref
    return Outcome(4.0e-5, ab, 0.05e-5, ok, "half a unit in the last digit stated; and equal to an independent numpy sum to 1e-12")


def _vp_gap(N: int, beta_min: float = 0.1, beta_max: float = 20.0) -> tuple[float, float, float]:
    """Max |discrete alpha_bar - exp(-int beta)| and its second-order asymptotic prediction with error bound."""
    b = vp_to_ddpm_betas(beta_min, beta_max, N)
    i = torch.arange(1, N + 1, dtype=torch.float64)
    t = i / N
    cont_log = -(beta_min * t + 0.5 * (beta_max - beta_min) * t * t)
    disc = torch.exp(torch.cumsum(torch.log1p(-b), 0))
    gap = (disc - cont_log.exp()).abs()
    d = beta_max - beta_min
    # log disc - log cont = (int beta - sum beta) - sum beta^2/2 - sum beta^3/3 - R, 0 <= R <= sum beta^4 / (4 (1 - beta)^4)
    lead = d * i * (N - i) / (2.0 * N * N * (N - 1)) - 0.5 * torch.cumsum(b**2, 0) - torch.cumsum(b**3, 0) / 3.0
    rem = torch.cumsum(b**4, 0) / (4.0 * (1.0 - b.max()) ** 4)
    pred = cont_log.exp() * torch.expm1(lead).abs()
    k = int(gap.argmax())
    bound = float(cont_log.exp()[k] * torch.exp(lead[k].abs() + rem[k]) * rem[k])
    return float(gap.max()), float(pred[k]), bound


@check(
    "sde.vp_ddpm_gap",
    source="Song et al. 2021, App. B (beta_i = beta_min/N + (i-1)(beta_max - beta_min)/(N(N-1)))",
    claim="DDPM's discrete alpha_bar converges to the VP SDE's exp(-int beta) at first order in 1/N; the largest gap at N = 1000 is about 8e-4",
)
def vp_ddpm_gap() -> Outcome:
    Ns = [250, 500, 1000, 2000, 4000, 8000]
    rows = [_vp_gap(N) for N in Ns]
    gaps = [r[0] for r in rows]
    fit = st.fit_order(Ns, gaps)
    g1000, pred1000, bound1000 = rows[2]
    ok = abs(fit.order - 1.0) <= 0.05 and abs(g1000 - pred1000) <= bound1000 + 1e-15 and abs(g1000 - 8e-4) <= 0.5e-4
    return Outcome(
        {"order": 1.0, "gap at N=1000": pred1000, "about": 8e-4},
        {"order": fit.order, "gap at N=1000": g1000},
        {"order": 0.05, "gap": bound1000},
        ok,
        "expected gap from the second/third-order expansion of log(1 - beta) with its fourth-order remainder as tolerance; order from a log-log fit over N = 250..8000",
        {"gaps": dict(zip(map(str, Ns), gaps))},
    )


@check(
    "ddpm.respacing",
    source="Nichol & Dhariwal 2021, App. B; Song et al. 2020 (DDIM), App. D.2",
    claim="A respaced sub-grid keeps alpha_bar on kept steps, with betas 1 - alpha_bar_t/alpha_bar_t' in (0, 1) whose product recovers alpha_bar",
)
def respacing() -> Outcome:
    p = DiscreteVP.linear()
    ab = p.alphas_cumprod
    worst, valid = 0.0, True
    subsets = {
        "iddpm 250": iddpm_steps(1000, [250]),
        "iddpm 10,15,20": iddpm_steps(1000, "10,15,20"),
        "ddim uniform 50": ddim_steps(1000, 50, "uniform"),
        "ddim quadratic 50": ddim_steps(1000, 50, "quadratic"),
    }
    for steps in subsets.values():
        sched = discretize(p, torch.cat([torch.zeros(1, dtype=torch.long), steps]).to(torch.float64) / 1000.0)
        worst = max(worst, float(((sched.alpha_bar[1:] - ab[steps]).abs() / ab[steps]).max()))
        beta = sched.beta
        valid &= bool(((beta > 0) & (beta < 1)).all())
        prod = torch.cumprod(1.0 - beta, 0)
        worst = max(worst, float(((prod - ab[steps]).abs() / ab[steps]).max()))
    dup = ddim_steps(1000, 50, "quadratic", unique=False)
    repeats = dup.numel() - dup.unique().numel()
    tol = 1e-12
    return Outcome(0.0, worst, tol, worst <= tol and valid,
                   "relative; products of at most 1000 float64 factors",
                   {"ddim quadratic S=50 repeated steps (wasted evaluations in the reference code)": repeats,
                    "steps kept": {k: int(v.numel()) for k, v in subsets.items()}})
