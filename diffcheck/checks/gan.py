"""Checks of Diffusion-GAN (Wang et al. 2022) against exact answers on Gaussian mixtures.

Under the instance noise y = sqrt(abar_t) x + sqrt(1 - abar_t) sigma_noise eps a mixture stays a mixture,
so the noised laws, the optimal discriminator D*, its r_d and the Jensen-Shannon divergences of the
paper's two theorems are all closed form (or one-dimensional integrals done by quadrature).
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np
import torch

import toy

from ..gan.controller import AdaptiveT, discriminator_rd, official_step
from ..gan.divergence import (
    jsd_gaussian_shift,
    jsd_monte_carlo,
    jsd_quadrature,
    point_mass_jsd,
    point_mass_jsd_grad,
)
from ..gan.fit import discriminator_error, fit_discriminator
from ..gan.noise import InstanceNoise
from ..gan.optimal import gaussian_logit, optimal_logit, rd_gaussians, rd_gaussians_mixed
from ..gan.timesteps import TimestepSampler, t_probs
from ..testing import stats as st
from . import Outcome, check, tour_plot

ORDER = 80  # position in the tour

_LOG2 = math.log(2.0)
PAPER = "Wang et al. 2022 (Diffusion-GAN)"

# Two equal-covariance Gaussians (real, generated) with an anisotropic shared covariance.
_MR, _MG = [0.6, -0.2], [-0.4, 0.5]
_S = [[1.0, 0.3], [0.3, 0.5]]
# The controller's pair: 0.3 apart, standard deviation 0.1 (r_d = 0.866 without noise).
_CR, _CG, _CS = [0.15, 0.0], [-0.15, 0.0], 0.01


def _gauss(mean, cov) -> toy.GaussianMixture:
    return toy.GaussianMixture([1.0], [mean], cov if isinstance(cov, float) else [cov])


def _rotated(m: toy.GaussianMixture, degrees: float, weights) -> toy.GaussianMixture:
    a = math.radians(degrees)
    R = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
    return toy.GaussianMixture(weights, m.means @ R.T, R @ m.covs @ R.T)


def _discriminator_pair() -> tuple[toy.GaussianMixture, toy.GaussianMixture]:
    """p_r: the three-class mixture; p_g: the same rotated by 60 degrees with unequal weights."""
    real = toy.three_classes()
    return real, _rotated(real, 60.0, [0.5, 0.3, 0.2])


# -- instance noise and step distributions ------------------------------------------------


@check(
    "gan.instance_noise",
    source=f"{PAPER} (instance noise); official diffusion.py (linear betas over the current T, noise_sd 0.05)",
    claim="abar_t = prod(1 - beta_s) with betas linear over the current T, and y = sqrt(abar_t) x + sqrt(1 - abar_t) 0.05 eps has the law mixture.noised(sqrt(abar_t), sqrt(1 - abar_t) 0.05), also with a per-sample t",
)
def instance_noise(n: int = 20000, seed: int = 80, alpha: float = 1e-3, diffuse_fn: Callable | None = None) -> Outcome:
    """``diffuse_fn(noise, x, t, generator)`` replaces ``InstanceNoise.diffuse`` (to show the check can fail)."""
    diffuse = diffuse_fn or (lambda noise, x, t, g: noise.diffuse(x, t, g))
    # (a) the table, against a plain-Python product of an independently written linear schedule
    table_err = 0.0
    for T in (1, 2, 10, 137, 1000):
        noise = InstanceNoise(T)
        betas = [1e-4 + (0.02 - 1e-4) * s / (T - 1) for s in range(T)] if T > 1 else [1e-4]
        prod, ref = 1.0, [1.0]
        for b in betas:
            prod *= 1.0 - b
            ref.append(prod)
        ref_t = torch.tensor(ref, dtype=torch.float64)
        table_err = max(table_err, float(((noise.alpha_bar - ref_t).abs() / ref_t).max()))
    table_tol = 2 * 1000 * 2.2e-16
    # (b) samples against the exact noised law
    gen = torch.Generator().manual_seed(seed)
    m = toy.anisotropic()
    cases = [(1000, 1), (1000, 300), (1000, 1000), (50, 50)]
    each = alpha / (3 * len(cases) + 1)
    failures, measured = [], {}
    for T, t in cases:
        noise = InstanceNoise(T)
        law = noise.law(m, t)
        y = diffuse(noise, m.sample(n, gen), torch.full((n,), t), gen)
        tests = [st.mean_test(y, law.mean(), law.covariance(), alpha=each),
                 st.covariance_test(y, law.covariance(), mean=law.mean(), alpha=each),
                 st.two_sample_test(y, law.sample(n, gen), alpha=each, features=law.log_prob, generator=gen)]
        measured[f"T={T} t={t}"] = {"noise std": float(noise.scales(t)[1]), "sample cov trace": float(torch.cov(y.T).trace()),
                                    "exact cov trace": float(law.covariance().trace())}
        failures += [f"T={T} t={t}: {r}" for r in tests if not r.passed]
    noise = InstanceNoise(1000)
    t = torch.multinomial(t_probs(1000), n, replacement=True, generator=gen)
    y = diffuse(noise, m.sample(n, gen), t, gen)
    exact = noise.law(m, t).sample(generator=gen)  # one exact draw per per-sample (alpha, sigma)
    r = st.two_sample_test(y, exact, alpha=each, generator=gen)
    if not r.passed:
        failures.append(f"per-sample t: {r}")
    ok = table_err <= table_tol and not failures
    return Outcome({"abar error": 0.0, "rejections": 0}, {"abar error": table_err, "rejections": len(failures)},
                   {"abar": table_tol, "alpha": alpha}, ok,
                   f"abar: relative, 2 T eps for a product of T = 1000 factors; samples: n={n}, Bonferroni over {3 * len(cases) + 1} tests",
                   {"failures": failures, **measured})


@check(
    "gan.timesteps",
    source=f"{PAPER} (p_pi); official diffusion.py update_T (priority weights arange(T), a pool of 64 slots with 32 draws)",
    claim="Paper priority p(t) = 2t/(T(T+1)) with E t = (2T+1)/3; the code's weights are 2(t-1)/(T(T-1)) (t = 1 never drawn, E t = 2(T+1)/3) and its pool makes t = 0 half of all draws; the samplers draw these laws",
)
def timesteps(n: int = 20000, n_pools: int = 6000, seed: int = 81, alpha: float = 1e-3, sampler_fn: Callable | None = None) -> Outcome:
    """``sampler_fn(sampler, T, n, generator)`` replaces the draws (to show the check can fail)."""
    worst = 0.0
    for T in (2, 10, 1000):
        t = torch.arange(T + 1, dtype=torch.float64)
        paper = t_probs(T, "priority", "paper")
        code = t_probs(T, "priority", "official")
        exact_paper = 2.0 * t / (T * (T + 1))
        exact_code = (2.0 * (t - 1) / (T * (T - 1))).clamp_min(0.0)
        uniform = (t >= 1).to(torch.float64) / T
        errs = [(paper - exact_paper).abs().max(), (code - exact_code).abs().max(), code[1].abs(),
                (t_probs(T, "uniform", "paper") - uniform).abs().max(), (t_probs(T, "uniform", "official") - uniform).abs().max(),
                abs((paper * t).sum() - (2 * T + 1) / 3) / T, abs((code * t).sum() - 2 * (T + 1) / 3) / T,
                abs(TimestepSampler("priority", "official").probs(T)[0] - 0.5)]
        worst = max(worst, max(float(e) for e in errs))
    tol = 1e-14
    gen = torch.Generator().manual_seed(seed)
    T = 10
    samplers = [TimestepSampler(k, c) for c in ("paper", "official") for k in ("priority", "uniform")]
    each = alpha / len(samplers)

    def draw(s: TimestepSampler, count: int) -> torch.Tensor:
        if sampler_fn is not None:
            return sampler_fn(s, T, count, gen)
        if s.convention == "paper":
            return s.sample(s.refresh(T, gen), count, gen)
        # one draw per freshly drawn pool: independent draws from the pool's marginal law
        return torch.cat([s.sample(s.refresh(T, gen), 1, gen) for _ in range(count)])

    failures, shares = [], {}
    for s in samplers:
        count = n if s.convention == "paper" else n_pools
        tt = draw(s, count)
        counts = torch.bincount(tt, minlength=T + 1)[: T + 1]
        r = st.proportions_test(counts, s.probs(T), alpha=each)
        shares[f"{s.kind}/{s.convention}: P(t=0), P(t=1)"] = [float(counts[0]) / count, float(counts[1]) / count]
        if not r.passed or int(tt.max()) > T:
            failures.append(f"{s.kind}/{s.convention}: {r}")
    ok = worst <= tol and not failures
    return Outcome({"pmf error": 0.0, "rejections": 0}, {"pmf error": worst, "rejections": len(failures)},
                   {"pmf": tol, "alpha": alpha}, ok,
                   f"pmfs: float64 rounding of sums of T+1 terms; draws: Clopper-Pearson per step at T={T}, Bonferroni",
                   {"failures": failures, **shares})


# -- the optimal discriminator --------------------------------------------------------------


@check(
    "gan.optimal_discriminator",
    source=f"{PAPER} (D* per step t); Goodfellow et al. 2014, Prop. 1 and Thm. 1",
    claim="D*(y,t) = p_r,t/(p_r,t + p_g,t) from the noised densities equals the logistic-linear closed form for equal-covariance Gaussians, attains E log D* + E log(1 - D*) = 2 JSD_t - 2 log 2, and beats a perturbed discriminator",
)
def optimal_discriminator(n: int = 40000, seed: int = 82, alpha: float = 1e-3, logit_fn: Callable | None = None) -> Outcome:
    """``logit_fn(real_law, fake_law, y)`` replaces ``optimal_logit`` (to show the check can fail)."""
    logit = logit_fn or optimal_logit
    noise = InstanceNoise(1000)
    gen = torch.Generator().manual_seed(seed)
    real, fake = _gauss(_MR, _S), _gauss(_MG, _S)
    worst = 0.0
    for t in (0, 1, 100, 500, 1000):
        a, s = noise.scales(t)
        y = torch.cat([noise.law(real, t).sample(250, gen), noise.law(fake, t).sample(250, gen)])
        got = logit(noise.law(real, t), noise.law(fake, t), y)
        ref = gaussian_logit(y, _MR, _MG, _S, float(a), float(s))
        worst = max(worst, float(((got - ref).abs() / (1.0 + ref.abs())).max()))
    tol = 1e-11
    # the value of the game at D*, in one dimension where JSD_t is a quadrature
    r1, g1, var = _gauss([0.3], 0.25), _gauss([-0.2], 0.25), 0.25
    times = (0, 300, 1000)
    each = alpha / (2 * len(times))
    failures, rows = [], {}
    for t in times:
        a, s = (float(v) for v in noise.scales(t))
        lr_, lf_ = noise.law(r1, t), noise.law(g1, t)
        yr, yf = lr_.sample(n, gen), lf_.sample(n, gen)
        lr, lf = logit(lr_, lf_, yr), logit(lr_, lf_, yf)
        vals_r, vals_f = torch.nn.functional.logsigmoid(lr), torch.nn.functional.logsigmoid(-lf)
        value = float(vals_r.mean() + vals_f.mean())
        se = math.sqrt(float(vals_r.var() + vals_f.var()) / n)
        delta = a * 0.5 / math.sqrt(a * a * var + s * s)
        jsd, _ = jsd_gaussian_shift(delta)
        z = st.normal_quantile(1 - each / 2)
        rows[f"t={t}"] = {"V(D*) Monte Carlo": value, "2 JSD - 2 log 2": 2 * jsd - 2 * _LOG2, "se": se}
        if abs(value - (2 * jsd - 2 * _LOG2)) > z * se:
            failures.append(f"t={t}: V(D*) = {value:.6f} vs {2 * jsd - 2 * _LOG2:.6f} (se {se:.2g})")
        # a perturbed discriminator sigmoid(l + 0.3) must do worse: paired differences, one-sided
        d = torch.cat([vals_r - torch.nn.functional.logsigmoid(lr + 0.3), vals_f - torch.nn.functional.logsigmoid(-(lf + 0.3))])
        gain, gse = 2 * float(d.mean()), 2 * float(d.std()) / math.sqrt(2 * n)
        rows[f"t={t}"]["V(D*) - V(perturbed)"] = gain
        if gain - st.normal_quantile(1 - each) * gse <= 0:
            failures.append(f"t={t}: the perturbed discriminator is not worse ({gain:.3g} +- {gse:.2g})")
    ok = worst <= tol and not failures
    return Outcome({"logit error": 0.0, "rejections": 0}, {"logit error": worst, "rejections": len(failures)},
                   {"logit": tol, "alpha": alpha}, ok,
                   f"logit: relative to 1 + |logit|, float64 solves; values: n={n} per law, Bonferroni over {2 * len(times)}",
                   {"failures": failures, **rows})


@functools.lru_cache(maxsize=2)
def _trained_discriminator(seed: int, steps: int, hidden: int):
    from ..nets.gan import MLPDiscriminator

    real, fake = _discriminator_pair()
    noise = InstanceNoise(1000)
    probs = t_probs(1000, "priority", "paper")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        D = MLPDiscriminator(2, hidden, 3)
    losses = fit_discriminator(D, real, fake, noise, probs, steps=steps, batch_size=512, lr=3e-3,
                               generator=torch.Generator().manual_seed(seed + 1))
    return D, losses


@check(
    "gan.trained_discriminator",
    source=f"{PAPER} (D* per step t); Goodfellow et al. 2014, Prop. 1",
    claim="An MLP D(y,t) trained by logistic regression on fixed noised mixtures (T=1000, paper priority t) approaches the exact D*: RMS |D - D*| under (p_r,t + p_g,t)/2 <= 0.05, within the Pinsker bound sqrt(excess loss / 4), and no lower loss than D*",
)
def trained_discriminator(n: int = 20000, seed: int = 83, steps: int = 1200, hidden: int = 64, rms_bound: float = 0.05,
                          discriminator=None, noise_std: float = 0.05) -> Outcome:
    """``discriminator`` replaces the trained network; ``noise_std`` sets the reference D*'s noise (to show failures)."""
    real, fake = _discriminator_pair()
    D = discriminator if discriminator is not None else _trained_discriminator(seed, steps, hidden)[0]
    noise = InstanceNoise(1000, noise_std=noise_std)
    probs = t_probs(1000, "priority", "paper")
    err = discriminator_error(D, real, fake, noise, probs, n=n, generator=torch.Generator().manual_seed(seed + 2))
    pinsker = math.sqrt(max(err["excess"] + 3 * err["excess_se"], 0.0) / 4)
    checks = {"RMS <= bound": err["rms"] <= rms_bound,
              "RMS <= Pinsker": err["rms"] <= pinsker,
              "loss >= optimal loss": err["excess"] + 3 * err["excess_se"] >= 0}
    ok = all(checks.values())
    return Outcome({"rms": f"<= {rms_bound}"}, {"rms": err["rms"], "max": err["max"], "excess loss": err["excess"]},
                   {"rms": rms_bound, "pinsker": pinsker}, ok,
                   f"stated RMS bound; Pinsker: sqrt((excess + 3 se)/4); n={n} evaluation draws per law",
                   {"checks": checks, **err})


@check(
    "gan.rd_closed_form",
    source=f"{PAPER} (r_d); official loss.py (mean sign of the real logits)",
    claim="r_d = E_{p_r,t}[sign(D* - 1/2)] of the exact D* equals 2 Phi(Delta_t/2) - 1 for equal-covariance Gaussians at each t, and its average over t under the paper's and the code's step laws",
)
def rd_closed_form(n: int = 20000, seed: int = 84, alpha: float = 1e-3, rd_fn: Callable | None = None) -> Outcome:
    """``rd_fn(mean_r, mean_g, cov, alpha, sigma)`` replaces the closed form (to show the check can fail)."""
    rd = rd_fn or rd_gaussians
    noise = InstanceNoise(1000)
    gen = torch.Generator().manual_seed(seed)
    real, fake = _gauss(_MR, _S), _gauss(_MG, _S)
    times = (0, 1, 200, 400, 700, 1000)
    laws = [("paper priority", TimestepSampler("priority", "paper").probs(1000)),
            ("official priority (with its t = 0 half)", TimestepSampler("priority", "official").probs(1000))]
    each = alpha / (len(times) + len(laws))
    failures, rows = [], {}
    all_t = torch.arange(1001)
    rd_all = rd(_MR, _MG, _S, *noise.scales(all_t))
    for label, t in [(f"t={t}", torch.full((n,), t)) for t in times] + [(name, torch.multinomial(p, n, replacement=True, generator=gen)) for name, p in laws]:
        y = noise.diffuse(real.sample(n, gen), t, gen)
        k = int((optimal_logit(noise.law(real, t), noise.law(fake, t), y) > 0).sum())
        if label.startswith("t="):
            expected = float(rd_all[int(t[0])])
        else:
            p = dict(laws)[label]
            expected = float((p * rd_all).sum())
        lo, hi = st.binomial_interval(k, n, each)
        rows[label] = {"r_d closed form": expected, "r_d Monte Carlo": 2 * k / n - 1}
        if not lo <= (1 + expected) / 2 <= hi:
            failures.append(f"{label}: closed form {expected:.4f}, Monte Carlo {2 * k / n - 1:.4f}, interval [{2 * lo - 1:.4f}, {2 * hi - 1:.4f}]")
    return Outcome("closed form inside every interval", f"{len(failures)} outside", f"alpha={alpha:g}", not failures,
                   f"Clopper-Pearson interval for P(D* > 1/2), n={n}, Bonferroni over {len(times) + len(laws)}",
                   {"failures": failures, **rows})


# -- the two theorems ---------------------------------------------------------------------


@check(
    "gan.theorem1",
    source=f"{PAPER}, Theorem 1 and its example (point masses delta_0, delta_theta)",
    claim="The JSD between noised delta_0 and delta_theta is continuous in theta with a nonzero derivative for theta != 0 at every t > 0 (JSD ~ Delta^2/8 near 0), while at t = 0 it jumps from 0 to log 2 and is flat elsewhere",
)
def theorem1(shift_jsd: Callable | None = None) -> Outcome:
    """``shift_jsd(delta)`` replaces the quadrature of JSD(N(0,1), N(delta,1)) (to show the check can fail)."""
    jsd = shift_jsd or (lambda d: jsd_gaussian_shift(d)[0])
    noise = InstanceNoise(1000)
    hx, hw = np.polynomial.hermite_e.hermegauss(200)
    hw = hw / math.sqrt(2 * math.pi)
    failures, rows = [], {}
    deltas = (0.01, 0.1, 0.5, 1.0, 2.0, 4.0, 8.0)
    for t in (1, 10, 100, 1000):
        a, s = (float(v) for v in noise.scales(t))
        row = {}
        for d in deltas:
            theta = d * s / a  # the same separation in units of the noise at every t
            value = point_mass_jsd(theta, t, noise)[0] if shift_jsd is None else jsd(d)
            # independent: Gauss-Hermite of log 2 - E_{u~N(0,1)} softplus(delta u - delta^2/2)
            gh = _LOG2 - float(np.sum(hw * np.logaddexp(0.0, d * hx - 0.5 * d * d)))
            grad, gerr = point_mass_jsd_grad(theta, t, noise)
            h = 1e-4 * min(d, 1.0)  # central difference in Delta = sqrt(abar_t) theta / s_t
            fd = (jsd(d + h) - jsd(d - h)) / (2 * h) * a / s
            row[f"Delta={d}"] = {"theta": theta, "JSD": value, "dJSD/dtheta": grad}
            if abs(value - gh) > 1e-9:
                failures.append(f"t={t} Delta={d}: quadrature {value:.12g} vs Gauss-Hermite {gh:.12g}")
            if d <= 0.1 and abs(value / (d * d / 8) - 1) > d * d:
                failures.append(f"t={t} Delta={d}: JSD {value:.6g} is not Delta^2/8 = {d * d / 8:.6g} to O(Delta^2)")
            if not (grad > 100 * gerr and grad > 0):
                failures.append(f"t={t} theta={theta:.3g}: derivative {grad:.3g} not above its error {gerr:.2g}")
            if abs(fd - grad) > (1e-6 * abs(grad) + 2e-13 / h) * a / s:
                failures.append(f"t={t} theta={theta:.3g}: derivative {grad:.10g} vs finite difference {fd:.10g}")
        # continuity at theta -> 0: a fixed tiny theta gives a tiny JSD at every t > 0
        row["theta=1e-9"] = point_mass_jsd(1e-9, t, noise)[0]
        if not row["theta=1e-9"] < 1e-6:
            failures.append(f"t={t}: JSD at theta=1e-9 is {row['theta=1e-9']:.3g}, not near 0")
        rows[f"t={t}"] = row
    # t = 0: the point masses stay point masses
    at0 = [point_mass_jsd(th, 0, noise)[0] for th in (1e-12, 1e-3, 0.5, -2.0)]
    flat = [point_mass_jsd_grad(th, 0, noise)[0] for th in (1e-12, 0.5)]
    rows["t=0"] = {"JSD(theta != 0)": at0, "JSD(0)": point_mass_jsd(0.0, 0, noise)[0], "derivative": flat}
    if any(v != _LOG2 for v in at0) or point_mass_jsd(0.0, 0, noise)[0] != 0.0 or any(g != 0.0 for g in flat):
        failures.append(f"t=0: expected log 2 off 0 with zero derivative, got {at0}, {flat}")
    return Outcome("continuous, increasing JSD for t > 0; a jump to log 2 at t = 0", f"{len(failures)} violations",
                   "1e-9 against Gauss-Hermite (200 nodes); derivative > 100 x its quadrature error; finite differences within 1e-6 relative + 2e-13/h",
                   not failures, "quadrature error estimates of scipy.integrate.quad are ~1e-13", {"failures": failures, **rows})


def _pairs_1d() -> list[tuple[str, toy.GaussianMixture, toy.GaussianMixture, bool]]:
    a = toy.GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], 0.09)
    return [
        ("two modes vs its moment-matched Gaussian", a, toy.GaussianMixture([1.0], [[0.0]], 1.09), False),
        ("weights 0.5/0.5 vs 0.3/0.7", a, toy.GaussianMixture([0.3, 0.7], [[-1.0], [1.0]], 0.09), False),
        ("components listed in another order", a, a.permuted([1, 0]), True),
        ("one component split in two halves", a, toy.GaussianMixture([0.25, 0.25, 0.5], [[-1.0], [-1.0], [1.0]], 0.09), True),
    ]


def _pairs_2d() -> list[tuple[str, toy.GaussianMixture, toy.GaussianMixture, bool]]:
    ring = toy.ring()
    return [
        ("ring of 8 vs radius 2.1", ring, toy.ring(radius=2.1), False),
        ("three classes vs rotated by 60 degrees", *_discriminator_pair(), False),
        ("ring of 8 in another order", ring, ring.permuted(list(range(7, -1, -1))), True),
    ]


@check(
    "gan.theorem2",
    source=f"{PAPER}, Theorem 2 (non-leaking: p_t = p_g,t implies p = p_g)",
    claim="Different mixtures keep a positive noised JSD at every t of the longest chain (T = 1000) and beyond (abar = 1e-6): 1D by quadrature above its error, 2D by a nonnegative Monte Carlo estimator above 3 standard errors; equal mixtures give 0",
)
def theorem2(n: int = 4000, seed: int = 85, law_fn: Callable | None = None) -> Outcome:
    """``law_fn(mixture, t)`` replaces ``InstanceNoise.law`` (e.g. a leaking augmentation, to show the check can fail)."""
    noise = InstanceNoise(1000)
    law = law_fn or (lambda m, t: m.noised(math.sqrt(1e-6), math.sqrt(1 - 1e-6) * 0.05) if t == "beyond" else noise.law(m, t))
    gen = torch.Generator().manual_seed(seed)
    failures, rows = [], {}
    steps = (0, 1, 10, 100, 300, 600, 1000, "beyond")
    for name, p, q, equal in _pairs_1d():
        row = {}
        for t in steps:
            lp, lq = law(p, t), law(q, t)
            lf = lambda L: (lambda y: float(L.log_prob(torch.tensor([[y]], dtype=torch.float64))[0]))
            sd = float(lp.covariance().sqrt())
            c = float(lp.mean())
            pts = [float(v) for v in (getattr(lp, "alpha", 1.0) * p.means[:, 0])]
            value, err = jsd_quadrature(lf(lp), lf(lq), c - 16 * sd, c + 16 * sd, pts, epsabs=1e-30, epsrel=1e-9)
            row[f"t={t}"] = {"JSD": value, "error": err}
            if equal and not abs(value) <= 1e-20:
                failures.append(f"{name}, t={t}: JSD {value:.3g} for equal laws")
            if not equal and not (value > 10 * err and value > 0):
                failures.append(f"{name}, t={t}: JSD {value:.3g} not above 10 x its error {err:.2g}")
        rows[name] = row
    for name, p, q, equal in _pairs_2d():
        row = {}
        for t in (0, 10, 100, 300, 1000, "beyond"):
            value, se = jsd_monte_carlo(law(p, t), law(q, t), n, gen)
            row[f"t={t}"] = {"JSD": value, "se": se}
            if equal and not abs(value) <= 1e-20:
                failures.append(f"{name}, t={t}: JSD {value:.3g} for equal laws")
            if not equal and not value - 3 * se > 0:
                failures.append(f"{name}, t={t}: JSD {value:.3g} not 3 standard errors ({se:.2g}) above 0")
        rows[name] = row
    return Outcome("JSD > 0 for different, 0 for equal mixtures, at every t", f"{len(failures)} violations",
                   "1D: 10 x scipy's error estimate; 2D: 3 standard errors; equal laws: 1e-20", not failures,
                   f"Monte Carlo n={n} per law of the nonnegative integrand g(log p - log q)", {"failures": failures, **rows})


# -- the adaptive T ------------------------------------------------------------------------


def _rd_estimator(sampler: TimestepSampler, real: toy.GaussianMixture, fake: toy.GaussianMixture, n: int,
                  train: torch.Tensor | None = None) -> Callable[[int, torch.Generator], float]:
    """r_d of the exact discriminator on n real draws (of ``train`` if given: D is then the Bayes classifier of the training set)."""
    memorised = None
    if train is not None:
        memorised = toy.GaussianMixture(torch.full((train.shape[0],), 1.0 / train.shape[0], dtype=torch.float64), train, 0.0)

    def estimate(T: int, gen: torch.Generator) -> float:
        noise = InstanceNoise(T)
        t = sampler.sample(sampler.refresh(T, gen), n, gen)
        x = real.sample(n, gen) if train is None else train[torch.randint(train.shape[0], (n,), generator=gen)]
        y = noise.diffuse(x, t, gen)
        target = real if memorised is None else memorised
        return discriminator_rd(optimal_logit(noise.law(target, t), noise.law(fake, t), y))

    return estimate


@functools.lru_cache(maxsize=4)
def _rd_table(kind: str, convention: str) -> np.ndarray:
    """Closed-form E_t r_d(T) of the controller's Gaussian pair for T = 10..1000."""
    sampler = TimestepSampler(kind, convention)
    return np.array([rd_gaussians_mixed(InstanceNoise(T), sampler.probs(T), _CR, _CG, _CS) for T in range(10, 1001)])


def _controller_setup(sampler: TimestepSampler, n: int):
    """Closed-form E_t r_d(T), its settling point, and the +-2 standard error band in T."""
    ctrl = AdaptiveT(step=official_step(64))
    table = _rd_table(sampler.kind, sampler.convention)
    rd_of_T = lambda T: float(table[int(T) - 10])
    star = ctrl.settle_point(rd_of_T)
    T0 = int(round(star))
    # batch standard error of r_hat near the settling point; the official pool adds the variance of its mean
    se2 = (1 - ctrl.target**2) / n
    if sampler.convention == "official":
        noise = InstanceNoise(T0)
        p = t_probs(T0, sampler.kind, "official")
        r = rd_gaussians(_CR, _CG, _CS, *noise.scales(torch.arange(T0 + 1)))
        var_t = float((p * r * r).sum() - (p * r).sum() ** 2)
        se2 += sampler.drawn * var_t / sampler.slots**2
    se = math.sqrt(se2)
    hi_rd, lo_rd = ctrl.target + 2 * se, ctrl.target - 2 * se
    band = (AdaptiveT(hi_rd if hi_rd <= 1 else 1.0, 10, 1000).settle_point(rd_of_T),
            AdaptiveT(lo_rd, 10, 1000).settle_point(rd_of_T))
    return ctrl, rd_of_T, star, band, se


@check(
    "gan.controller",
    source=f"{PAPER} (adaptive T); official training_loop.py (ada_interval 4, ada_kimg 100, target 0.6, T in [10, 1000])",
    claim="Driven by the exact D*, T <- T + sign(r_d - 0.6) C settles inside the T-band where E_t r_d is within 2 batch standard errors of 0.6, from T_min and from T_max, under the paper's and the code's step laws; once p_g = p_r the exact D* holds T at T_min while a discriminator memorising its training set drives T up",
)
def controller(updates: int = 700, burn_in: int = 400, batch: int = 64, seed: int = 86, update_fn: Callable | None = None) -> Outcome:
    """``update_fn(ctrl, level, rd)`` replaces ``AdaptiveT.update`` (to show the check can fail).

    With the official step C = 2.53 (batch 64) T climbs from 10 to the code's settling point near 911 in
    about 356 updates, so averages are taken after ``burn_in`` = 400 updates.
    """
    if update_fn is None:
        return _controller_outcome(updates, burn_in, batch, seed, None)
    return _controller_outcome.__wrapped__(updates, burn_in, batch, seed, update_fn)


@functools.lru_cache(maxsize=2)
def _controller_outcome(updates: int, burn_in: int, batch: int, seed: int, update_fn: Callable | None) -> Outcome:
    n = batch * 4  # r_d accumulates over ada_interval = 4 iterations
    real, fake = _gauss(_CR, _CS), _gauss(_CG, _CS)
    gen = torch.Generator().manual_seed(seed)
    failures, rows = [], {}
    runs = {}
    for conv, starts in (("paper", (10.0, 1000.0)), ("official", (10.0,))):
        sampler = TimestepSampler("priority", conv)
        ctrl, rd_of_T, star, band, se = _controller_setup(sampler, n)
        if update_fn is not None:
            ctrl = _Patched(ctrl, update_fn)
        for start in starts:
            out = ctrl.simulate(_rd_estimator(sampler, real, fake, n), updates, gen, start=start)
            tail = out["T"][burn_in:]
            mean_T = float(np.mean(tail))
            rd_at = rd_of_T(int(round(mean_T)))
            key = f"{conv}, from T={int(start)}"
            runs[key] = out["T"]
            rows[key] = {"settle point T*": star, "band": list(band), "mean T after burn-in": mean_T,
                         "E_t r_d at mean T": rd_at, "mean r_hat after burn-in": float(np.mean(out["rd"][burn_in:])), "batch se": se}
            if not band[0] <= mean_T <= band[1]:
                failures.append(f"{key}: mean T {mean_T:.1f} outside the band [{band[0]:.1f}, {band[1]:.1f}] (T* = {star:.1f})")
            if abs(rd_at - ctrl.target) > 2 * se:
                failures.append(f"{key}: E_t r_d = {rd_at:.3f} at the settled T, target 0.6 +- {2 * se:.3f}")
    # once G matches the data (p_g = p_r) the exact D* is 1/2 everywhere (r_d = 0) and holds T at t_min; a discriminator
    # that memorises 16 training points is confident on them (r_d near 1 at small T), so T must rise off t_min
    sampler = TimestepSampler("priority", "paper")
    ctrl = AdaptiveT(step=official_step(batch))
    if update_fn is not None:
        ctrl = _Patched(ctrl, update_fn)
    exact = ctrl.simulate(_rd_estimator(sampler, real, real, n), 100, gen)
    train = real.sample(16, gen)
    out = ctrl.simulate(_rd_estimator(sampler, real, real, n, train=train), 300, gen)
    mem_T = float(np.mean(out["T"][100:]))
    runs["p_g = p_r, memorising D"] = out["T"]
    rows["p_g = p_r"] = {"exact D*: largest T": max(exact["T"]), "memorising D: mean T (updates 100-300)": mem_T,
                         "memorising D: mean r_hat (updates 100-300)": float(np.mean(out["rd"][100:]))}
    if max(exact["T"]) != ctrl.t_min:
        failures.append(f"p_g = p_r: the exact D* let T leave t_min (largest T {max(exact['T'])})")
    if not mem_T >= ctrl.t_min + 4 * ctrl.step:
        failures.append(f"p_g = p_r: with a memorising D the mean T {mem_T:.1f} did not rise 4 steps above t_min")
    # the degenerate discriminators: always sure (r_d = 1) climbs by C to t_max, never sure (r_d = -1) falls to t_min
    up = ctrl.simulate(lambda T, g: 1.0, 500, gen)
    down = ctrl.simulate(lambda T, g: -1.0, 500, gen, start=1000.0)
    C = ctrl.step
    exp_up = [min(10.0 + (k + 1) * C, 1000.0) for k in range(500)]
    exp_down = [max(1000.0 - (k + 1) * C, 10.0) for k in range(500)]
    drift = max(max(abs(a - b) for a, b in zip(up["level"], exp_up)), max(abs(a - b) for a, b in zip(down["level"], exp_down)))
    rows["degenerate D"] = {"level error": drift, "C": C}
    if drift > 1e-9:
        failures.append(f"r_d = +-1: levels deviate from t_min + kC / t_max - kC by {drift:.3g}")
    return Outcome("settled inside the band", f"{len(failures)} violations", "E_t r_d within 2 batch standard errors of 0.6",
                   not failures, f"{updates} updates of {n} real draws; the mean of T after {burn_in} updates", {"failures": failures, **rows, "runs": runs})


class _Patched:
    """A controller whose update rule is replaced (for failure demonstrations)."""

    def __init__(self, ctrl: AdaptiveT, update_fn: Callable) -> None:
        self._c, self._f = ctrl, update_fn

    def __getattr__(self, name):
        return getattr(self._c, name)

    def update(self, level, rd):
        return self._f(self._c, level, rd)

    def simulate(self, estimate_rd, updates, generator, start=None):
        return AdaptiveT.simulate(self, estimate_rd, updates, generator, start)


# -- figures -------------------------------------------------------------------------------


@tour_plot("gan_theory.png")
def _plot_theory(path):
    import matplotlib.pyplot as plt

    from ..plots import save, style

    style()
    noise = InstanceNoise(1000)
    fig, axes = plt.subplots(1, 3, figsize=(12.5, 3.4), layout="constrained")
    ax = axes[0]
    thetas = 0.005 * np.arange(-60, 61)  # theta = 0 exactly at the centre
    for t in (1, 100, 300, 600, 1000):
        ax.plot(thetas, [point_mass_jsd(float(th), t, noise)[0] for th in thetas], label=f"t = {t}")
    ax.plot(thetas[thetas != 0], [point_mass_jsd(float(th), 0, noise)[0] for th in thetas[thetas != 0]], "k.", ms=2,
            label="t = 0 (point masses)")
    ax.plot([0.0], [0.0], "ko", ms=4, mfc="none")
    ax.set_xlabel(r"$\theta$")
    ax.set_ylabel(r"JSD($q_t * \delta_0$, $q_t * \delta_\theta$)")
    ax.set_title("Theorem 1: noise makes the JSD smooth")
    ax.legend(loc="center right", fontsize=6, framealpha=0.9)
    ax = axes[1]
    ts = torch.arange(1001)
    ax.plot(ts, rd_gaussians(_MR, _MG, _S, *noise.scales(ts)), label=r"$2\Phi(\Delta_t/2)-1$")
    gen = torch.Generator().manual_seed(0)
    real, fake = _gauss(_MR, _S), _gauss(_MG, _S)
    pts = list(range(0, 1001, 100))
    mc = []
    for t in pts:
        y = noise.diffuse(real.sample(4000, gen), t, gen)
        mc.append(discriminator_rd(optimal_logit(noise.law(real, t), noise.law(fake, t), y)))
    ax.plot(pts, mc, "o", ms=3, label="Monte Carlo with exact D*")
    ax.set_xlabel("t (T = 1000)")
    ax.set_ylabel(r"$r_d$")
    ax.set_title("r_d of the optimal discriminator")
    ax.legend()
    ax = axes[2]
    rec = controller()
    for key, Ts in rec.details["runs"].items():
        ax.plot(Ts, lw=0.8, label=key)
    for key in ("paper, from T=10", "official, from T=10"):
        lo, hi = rec.details[key]["band"]
        ax.axhspan(lo, hi, alpha=0.12, color="C0" if key.startswith("paper") else "C2")
    ax.set_xlabel("controller update")
    ax.set_ylabel("T")
    ax.set_title("Adaptive T driven by the exact D* (bands: E r_d = 0.6 ± 2 se)")
    ax.legend(fontsize=6)
    fig.suptitle("Diffusion-GAN on Gaussian toys: exact answers")
    return save(fig, path)


@tour_plot("gan_discriminator.png")
def _plot_discriminator(path):
    import matplotlib.pyplot as plt

    from ..plots import save, style

    style()
    real, fake = _discriminator_pair()
    D, _ = _trained_discriminator(83, 1200, 64)
    noise = InstanceNoise(1000)
    times = (0, 300, 600, 1000)
    fig, axes = plt.subplots(2, len(times), figsize=(3.0 * len(times), 5.6), layout="constrained")
    for j, t in enumerate(times):
        # the window follows the noised data: 3.5 standard deviations of the noised real law
        lim = 3.5 * float(noise.law(real, t).covariance().diagonal().max().sqrt())
        g = torch.linspace(-lim, lim, 121, dtype=torch.float64)
        xx, yy = torch.meshgrid(g, g, indexing="xy")
        pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], -1)
        exact = torch.sigmoid(optimal_logit(noise.law(real, t), noise.law(fake, t), pts)).reshape(121, 121)
        with torch.no_grad():
            learned = torch.sigmoid(D(pts.float(), torch.full((pts.shape[0],), t))).double().reshape(121, 121)
        for i, (img, name) in enumerate(((exact, "exact D*"), (learned, "trained D"))):
            im = axes[i, j].pcolormesh(xx.numpy(), yy.numpy(), img.numpy(), vmin=0, vmax=1, cmap="RdBu_r", shading="auto")
            axes[i, j].set_title(f"{name}, t = {t}")
            axes[i, j].set_aspect("equal")
    fig.colorbar(im, ax=axes, shrink=0.6, label="D(y, t)")
    fig.suptitle("Optimal vs trained discriminator on y ~ q(y | x, t), T = 1000 (p_r: three classes; p_g: rotated 60°, reweighted)")
    return save(fig, path)
