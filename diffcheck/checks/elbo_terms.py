"""Checks of the bound's terms as they are trained: reverse variances, Improved DDPM's learned range, importance sampling of t, the decoder and prior terms."""

from __future__ import annotations

import math
from typing import Callable

import torch

import toy

from .. import elbo, vlb
from ..exact import ExactModel
from ..importance import LossSecondMomentSampler
from ..process import VP, DiscreteVP
from ..variance import WithVariance, clipped_log_beta_tilde, learned_range, log_beta, optimal_v
from . import Outcome, check
from .elbo import bonferroni_z, grid, isotropic

ORDER = 56  # position in the tour: after the bound as a whole (elbo, 55)


def _standardized(m: toy.GaussianMixture) -> toy.GaussianMixture:
    """The mixture mapped affinely to mean 0 and covariance I."""
    L = torch.linalg.cholesky(m.covariance())
    Li = torch.linalg.inv(L)
    means = (m.means - m.mean()) @ Li.T
    covs = Li @ m.covs @ Li.T
    return toy.GaussianMixture(m.weights, means, 0.5 * (covs + covs.transpose(-1, -2)))


@check(
    "ddpm.reverse_variance",
    source="Ho et al. 2020, Sec. 3.2 and Eq. 7; Nichol & Dhariwal 2021, Sec. 3.1",
    claim="Cov(x_{t-1}|x_t) = beta_tilde I + c_t^2 Cov(x_0|x_t); on standardized data E Var(x_{t-1}|x_t) lies between beta_tilde_t and beta_t; the optimal learned-range v* is 1 for N(0, I) data and vanishes like s^2 for N(0, s^2 I) (steps >= 2, s^2 << beta_1)",
)
def reverse_variance(n: int = 200, seed: int = 43, alpha: float = 1e-3, cov_fn: Callable | None = None) -> Outcome:
    """``cov_fn(mixture, schedule, step, x)`` replaces ``elbo.reverse_covariance`` (to show the check can fail)."""
    cov_fn = elbo.reverse_covariance if cov_fn is None else cov_fn
    gen = torch.Generator().manual_seed(seed)
    failures, details = [], {}
    tables = [("linear", DiscreteVP.linear()), ("cosine", DiscreteVP.cosine())]
    # (i) pointwise: the posterior of x_{t-1} computed directly from the law of x_{t-1} and the one-step kernel
    worst = 0.0
    for mname, m in (("anisotropic", toy.anisotropic()), ("narrow", toy.narrow())):
        for tname, p in tables:
            sched = grid(p, p.T)
            for i in (1, 2, 10, 500, 1000):
                x = p.marginal(m, sched.t[i]).sample(64, gen)
                prev = m if i == 1 else p.marginal(m, sched.t[i - 1]).to_mixture()
                direct = prev.noised(sched.transition_alpha[i - 1], sched.transition_var[i - 1].sqrt()).posterior_cov(x)
                got = cov_fn(m, sched, i, x)
                worst = max(worst, float(((got - direct).abs().amax((-1, -2)) / direct.abs().amax((-1, -2))).max()))
    tol_identity = 1e-9
    if not worst <= tol_identity:
        failures.append(f"pointwise identity: relative error {worst:.3g} > {tol_identity:g}")
    details["pointwise identity, worst relative error"] = worst
    # (ii) beta_tilde <= E Var(x_{t-1}|x_t) <= beta on standardized data, every step and coordinate
    cases = [(mn, _standardized(m)) for mn, m in (("anisotropic", toy.anisotropic()), ("narrow", toy.narrow()), ("two_modes", toy.two_modes()))]
    k = len(cases) * len(tables) * 1000 * 2 * 2
    thr = bonferroni_z(alpha, k, two_sided=False)
    for mname, m in cases:
        for tname, p in tables:
            sched = grid(p, p.T)
            ev, se = elbo.reverse_variance(m, sched, n, gen)
            lo, hi = sched.beta_tilde[:, None], sched.beta[:, None]
            # equality is reached by Gaussian coordinates (zero SE): allow 1e-10 relative, the accuracy of
            # schedule coefficients computed from differences of log-SNRs in float64
            below = (ev < lo * (1 - 1e-10) - thr * se).any(-1)
            above = (ev > hi * (1 + 1e-10) + thr * se).any(-1)
            if bool(below.any() or above.any()):
                bad = int(torch.nonzero(below | above)[0]) + 1
                failures.append(f"{mname}, {tname}: step {bad} E Var {ev[bad - 1].tolist()} outside [{float(lo[bad - 1]):.4g}, {float(hi[bad - 1]):.4g}]")
            pos = (ev - lo) / (hi - lo)
            details[f"{mname}, {tname}: (E Var - beta_tilde)/(beta - beta_tilde), min and max over steps"] = [float(pos.min()), float(pos.max())]
    # (iii) v* for Gaussian data N(0, s^2 I), closed form Cov(x_0|x_t) = s^2 sigma^2/(alpha^2 s^2 + sigma^2) I
    for tname, p in tables:
        sched = grid(p, p.T)
        ev1, _ = elbo.reverse_variance(toy.single_gaussian([0.0, 0.0], 1.0), sched, 2, gen)
        v1 = optimal_v(ev1, sched, torch.arange(1, p.T + 1))
        # v* - 1 = log(E Var / beta) / log(beta / beta_tilde): a relative error r in the variance becomes
        # r / log(beta / beta_tilde) in v*, large where beta_tilde ~ beta (the last steps); r is held to 1e-10,
        # the accuracy of schedule coefficients computed from differences of log-SNRs in float64
        cond = (log_beta(sched) - clipped_log_beta_tilde(sched)).abs()
        err1 = float(((v1 - 1.0).abs()[:, 0] * cond).max())
        if not err1 <= 1e-10:
            failures.append(f"{tname}: v* for N(0, I) differs from 1 by {err1:.3g} in units of 1/log(beta/beta_tilde)")
        details[f"{tname}: max |v* - 1| for N(0, I)"] = float((v1 - 1.0).abs().max())
        details[f"{tname}: max |v* - 1| log(beta/beta_tilde) for N(0, I)"] = err1
        maxima = []
        for s in (1e-3, 1e-4, 1e-5):  # s^2 well below beta_1 = 1e-4 (linear), 4.1e-5 (cosine) from 1e-4 on
            ev, _ = elbo.reverse_variance(toy.single_gaussian([0.0, 0.0], s * s), sched, 2, gen)
            a2, sg2 = sched.alpha[1:] ** 2, sched.sigma[1:] ** 2
            closed = sched.beta_tilde + sched.posterior_mean_coef1**2 * s * s * sg2 / (a2 * s * s + sg2)
            if not float(((ev[:, 0] - closed).abs() / closed).max()) <= 1e-10:
                failures.append(f"{tname}, s={s}: E Var(x_(t-1)|x_t) differs from the closed form")
            v = optimal_v(closed[1:], sched, torch.arange(2, p.T + 1))
            maxima.append(float(v.max()))
            if bool((v < -1e-9).any()):
                failures.append(f"{tname}, s={s}: negative v*")
        details[f"{tname}: max over steps >= 2 of v* for s = 1e-3, 1e-4, 1e-5"] = maxima
        # v* ~ c s^2: a factor of 10 in s must shrink it by close to 100
        ratios = [maxima[j] / maxima[j + 1] for j in range(2)]
        details[f"{tname}: ratios of successive maxima"] = ratios
        if not all(95.0 <= r <= 105.0 for r in ratios[1:]) or not ratios[0] > 50.0:
            failures.append(f"{tname}: v* does not scale like s^2 (ratios {ratios})")
    return Outcome("identity, bounds and v* limits hold", f"{len(failures)} violations",
                   f"identity {tol_identity:g} relative; bounds {thr:.2f} SE one-sided (+1e-10 relative)", not failures,
                   f"n={n} draws per step; one-sided z at alpha={alpha:g}, Bonferroni over {k}; closed forms to 1e-10 relative",
                   {"failures": failures, **details})


@check(
    "iddpm.learned_range",
    source="Nichol & Dhariwal 2021, Eq. 15",
    claim="The learned range is exp(v log beta + (1-v) log beta_tilde) with v = (out+1)/2: out = -1, 1 give beta_tilde, beta and out = 0 their geometric mean; a learned-variance model with out = 2v* - 1 reproduces the optimal-variance bound; interpolating beta itself gives other variances",
)
def learned_range_check(n: int = 2000, seed: int = 44, range_fn: Callable | None = None) -> Outcome:
    """``range_fn`` replaces ``variance.learned_range`` (to show the check can fail)."""
    range_fn = learned_range if range_fn is None else range_fn
    gen = torch.Generator().manual_seed(seed)
    failures, details = [], {}
    worst = 0.0
    for tname, p in (("linear", DiscreteVP.linear()), ("cosine", DiscreteVP.cosine()), ("linear T=50", DiscreteVP.linear(50, rescale=True))):
        sched = grid(p, p.T)
        steps = torch.arange(1, p.T + 1)
        lo, hi = clipped_log_beta_tilde(sched), log_beta(sched)
        for out, want in ((-1.0, lo), (1.0, hi), (0.0, 0.5 * (lo + hi)), (0.5, 0.75 * hi + 0.25 * lo)):
            got = range_fn(torch.full((p.T, 1), out, dtype=torch.float64), sched, steps)[:, 0]
            worst = max(worst, float((got - want).abs().max()))
    tol = 1e-12
    if not worst <= tol:
        failures.append(f"log-variance endpoints/interpolation off by {worst:.3g}")
    details["worst log-variance error"] = worst
    cos = grid(DiscreteVP.cosine(), 1000)
    b, bt = float(cos.beta[1]), float(cos.beta_tilde[1])
    details["cosine step 2: log-space midpoint / beta-space midpoint"] = math.sqrt(b * bt) / (0.5 * (b + bt))
    # a learned-variance model with the optimal isotropic variances
    m, p = toy.anisotropic(), VP()
    sched = grid(p, 20)
    var = elbo.optimal_covariance(m, sched, 2000, gen).diagonal(dim1=-2, dim2=-1).mean(-1)
    v_star = optimal_v(var, sched, torch.arange(1, 21))
    exact = ExactModel(m, p, "eps")
    times = sched.t

    def v_raw(x, t):
        idx = torch.searchsorted(times, torch.as_tensor(t, dtype=torch.float64).reshape(-1).contiguous())
        return (2.0 * v_star[idx - 1] - 1.0)[:, None].expand_as(x)

    learned = WithVariance(exact, v_raw)
    x0 = m.sample(n, gen)
    worst_model, linear_excess = 0.0, []
    for i in range(1, 21):
        eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
        xt = sched.alpha[i] * x0 + sched.sigma[i] * eps
        a = vlb.vlb_term(exact, sched, x0, i, variance=var, eps=eps)
        pred = exact(xt, sched.t[i])
        log_var = range_fn(v_raw(xt, sched.t[i].expand(n)), sched, i)
        x0_hat = (xt - sched.sigma[i] * pred) / sched.alpha[i]
        c = vlb.bound_term(sched, x0, xt, i, x0_hat, log_var)
        b = vlb.vlb_term(learned, sched, x0, i, variance="learned", eps=eps)  # the library's learned-variance path
        for got in (b, c):
            worst_model = max(worst_model, float(((got - a).abs() / a.abs().clamp_min(1e-12)).max()))
        v = v_star[i - 1]  # the same v, interpolating beta instead of log beta
        lin_var = v * sched.beta[i - 1] + (1 - v) * torch.exp(clipped_log_beta_tilde(sched)[i - 1])
        linear_excess.append(float(lin_var / var[i - 1]))
    details["learned-variance model vs fixed optimal variances, worst relative difference per sample"] = worst_model
    details["beta-space interpolation at v*: variance / optimal variance, steps 1..20"] = linear_excess
    if not worst_model <= 1e-10:
        failures.append(f"learned-variance model differs from the optimal-variance terms by {worst_model:.3g} (relative)")
    return Outcome("log-space interpolation", f"{len(failures)} violations", f"{tol:g} absolute in log-variance; 1e-10 relative per term", not failures,
                   "deterministic identities in float64", {"failures": failures, **details})


@check(
    "iddpm.importance_sampling",
    source="Nichol & Dhariwal 2021, Sec. 3.3 and official resample.py",
    claim="The loss-aware sampler is uniform until 10 losses per step are held, then p_t is proportional to sqrt(E[L_t^2]) mixed with 0.001 uniform, and sum_t L_t is estimated without bias by L_t/p_t",
)
def importance_sampling(n: int = 20000, T: int = 50, seed: int = 45, alpha: float = 1e-3, sampler_factory: Callable | None = None) -> Outcome:
    """``sampler_factory(T)`` replaces the sampler (to show the check can fail)."""
    gen = torch.Generator().manual_seed(seed)
    sampler = LossSecondMomentSampler(T) if sampler_factory is None else sampler_factory(T)
    m, p = toy.anisotropic(), VP()
    sched = grid(p, T)
    model = ExactModel(m, p, "eps")
    failures, details = [], {}
    history: dict[int, list[float]] = {i: [] for i in range(1, T + 1)}

    def losses(steps: torch.Tensor) -> torch.Tensor:
        return vlb.vlb_term(model, sched, m.sample(steps.numel(), gen), steps, gen, variance="small")

    rounds = 0
    while not sampler.warmed_up:
        if not torch.allclose(sampler.probabilities(), torch.full((T,), 1.0 / T, dtype=torch.float64), rtol=0, atol=1e-15):
            failures.append("not uniform before warm-up")
            break
        steps, _ = sampler.sample(256, gen)
        vals = losses(steps)
        sampler.update(steps, vals)
        for s_, v_ in zip(steps.tolist(), vals.tolist()):
            history[s_] = (history[s_] + [v_])[-10:]
        rounds += 1
        if rounds > 1000:
            failures.append("never warmed up")
            break
    rms = torch.tensor([math.sqrt(sum(v * v for v in history[i]) / len(history[i])) for i in range(1, T + 1)], dtype=torch.float64)
    want = 0.999 * rms / rms.sum() + 0.001 / T
    probs = sampler.probabilities()
    err = float((probs - want).abs().max())
    if not err <= 1e-12:
        failures.append(f"probabilities differ from sqrt(E[L^2]) mixed with 0.001 uniform by {err:.3g}")
    steps, weights = sampler.sample(n, gen)
    w_err = float((weights - 1.0 / (T * probs[steps - 1])).abs().max() / weights.abs().max())
    if not w_err <= 1e-12:
        failures.append(f"weights differ from 1/(N p) by {w_err:.3g} (relative)")
    est = T * weights * losses(steps)
    # reference: every step with n/T independent draws and the fixed-small variances, averaged given x_t
    small = torch.exp(clipped_log_beta_tilde(sched))
    ref = elbo.optimal_bound(m, sched, max(2, n // T), gen, covariances=isotropic(small[:, None, None], m.dim))
    ref_total, ref_se = float(ref.terms[:-1].sum()), float(ref.se[:-1].pow(2).sum().sqrt())
    est_se = float(est.std() / math.sqrt(n))
    z = (float(est.mean()) - ref_total) / math.sqrt(est_se**2 + ref_se**2)
    thr = bonferroni_z(alpha, 1)
    if abs(z) > thr:
        failures.append(f"importance-sampled estimate {float(est.mean()):.6g} vs sum of terms {ref_total:.6g} ({z:.1f} SE)")
    uniform_sd = float(torch.sqrt((T * ref.terms[:-1]).pow(2).mean() - ref.terms[:-1].sum() ** 2).clamp_min(0.0))
    details.update({"failures": failures, "warm-up rounds of 256": rounds, "sum of L_t (reference)": ref_total, "its SE": ref_se,
                    "importance-sampled estimate": float(est.mean()), "its SE": est_se,
                    "sd of the importance-sampled estimator": float(est.std()),
                    "sd of the uniform estimator from step means alone (a lower bound)": uniform_sd,
                    "p_t range": [float(probs.min()), float(probs.max())]})
    return Outcome("unbiased, p from the loss history", f"{len(failures)} violations", f"|z| <= {thr:.2f}; identities to 1e-12", not failures,
                   f"n={n} importance-sampled steps vs an independent reference with {max(2, n // T)} draws per step; alpha={alpha:g}", details)


@check(
    "ddpm.discretized_decoder",
    source="Ho et al. 2020, Eq. 13 and Sec. 4 (L_T)",
    claim="The discretized decoder's 256 bin probabilities sum to one, and L_T of the linear schedule (T = 1000) is about 1e-5 bits per dimension for 8-bit data",
)
def discretized_decoder(cdf: str = "exact", prior_fn: Callable | None = None) -> Outcome:
    """``cdf`` picks the CDF convention; ``prior_fn`` replaces ``vlb.prior_kl`` (to show the check can fail)."""
    prior_fn = vlb.prior_kl if prior_fn is None else prior_fn
    values = torch.arange(256, dtype=torch.float64) * 2.0 / 255.0 - 1.0
    means = torch.linspace(-1.5, 1.5, 61, dtype=torch.float64)
    log_scales = torch.linspace(-9.0, 2.0, 45, dtype=torch.float64)
    mu, ls = torch.meshgrid(means, log_scales, indexing="ij")
    mu, ls = mu.reshape(-1, 1), ls.reshape(-1, 1)
    x = values[None, :].expand(mu.shape[0], 256).contiguous()
    total = vlb.discretized_log_likelihood(x, mu.expand_as(x), ls.expand_as(x), cdf=cdf).exp().sum(-1)
    sum_err = float((total - 1.0).abs().max())
    exact_ll = vlb.discretized_log_likelihood(x, mu.expand_as(x), ls.expand_as(x), cdf="exact")
    tanh_ll = vlb.discretized_log_likelihood(x, mu.expand_as(x), ls.expand_as(x), cdf="tanh")
    sched = grid(DiscreteVP.linear(), 1000)
    lt = vlb.bits_per_dim(prior_fn(sched, values[:, None]), values[:, None])
    ab = float(sched.alpha[-1] ** 2)
    ex2 = float((values**2).mean())
    closed = 0.5 * (ab * (ex2 - 1.0) - math.log1p(-ab)) / math.log(2.0)
    lt_uniform = float(lt.mean())
    rel = abs(lt_uniform - closed) / closed
    ok = sum_err <= 1e-12 and rel <= 1e-10 and abs(math.log10(lt_uniform) + 5.0) < 0.5
    return Outcome({"sum of bin probabilities": 1.0, "L_T bits/dim (uniform 8-bit data)": closed},
                   {"sum of bin probabilities": 1.0 + sum_err, "L_T bits/dim (uniform 8-bit data)": lt_uniform},
                   "1e-12 on the sums; 1e-10 relative on L_T; L_T within half a decade of 1e-5", ok,
                   "telescoping bins in float64 with log-CDF differences; closed form 1/2 (abar (E x^2 - 1) - log(1 - abar))",
                   {"max |sum - 1|": sum_err, "L_T bits/dim range over 8-bit values": [float(lt.min()), float(lt.max())],
                    "max |P tanh - P exact| (the official code's approximate CDF)": float((tanh_ll.exp() - exact_ll.exp()).abs().max()),
                    "max |log P tanh - log P exact| where P exact >= 1e-6": float((tanh_ll - exact_ll).abs()[exact_ll >= math.log(1e-6)].max()),
                    "L_T relative error": rel})
