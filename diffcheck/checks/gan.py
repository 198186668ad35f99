"""Checks of Diffusion-GAN (Wang et al. 2022), the noise and the discriminator, against exact answers on Gaussian mixtures.

Under the instance noise y = sqrt(abar_t) x + sqrt(1 - abar_t) sigma_noise eps a mixture stays a mixture,
so the noised laws, the optimal discriminator D*, its r_d and the Jensen-Shannon divergences of the
paper's two theorems are all closed form (or one-dimensional integrals done by quadrature). The
theorems and the adaptive T are checked in ``gan_theory``.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import torch

import toy

from ..gan.divergence import jsd_gaussian_shift
from ..gan.fit import discriminator_error, fit_discriminator
from ..gan.noise import InstanceNoise
from ..gan.optimal import gaussian_logit, optimal_logit, rd_gaussians
from ..gan.timesteps import TimestepSampler, t_probs
from ..testing import stats as st
from . import Outcome, check, tour_plot

ORDER = 80  # position in the tour

_LOG2 = math.log(2.0)
PAPER = "Wang et al. 2022 (Diffusion-GAN)"

# Two equal-covariance Gaussians (real, generated) with an anisotropic shared covariance.
MEAN_REAL, MEAN_FAKE = [0.6, -0.2], [-0.4, 0.5]
COV = [[1.0, 0.3], [0.3, 0.5]]


def gaussian(mean, cov) -> toy.GaussianMixture:
    """A single Gaussian as a mixture of one component."""
    return toy.GaussianMixture([1.0], [mean], cov if isinstance(cov, float) else [cov])


def _rotated(m: toy.GaussianMixture, degrees: float, weights) -> toy.GaussianMixture:
    a = math.radians(degrees)
    R = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
    return toy.GaussianMixture(weights, m.means @ R.T, R @ m.covs @ R.T)


def discriminator_pair() -> tuple[toy.GaussianMixture, toy.GaussianMixture]:
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
    real, fake = gaussian(MEAN_REAL, COV), gaussian(MEAN_FAKE, COV)
    worst = 0.0
    for t in (0, 1, 100, 500, 1000):
        a, s = noise.scales(t)
        y = torch.cat([noise.law(real, t).sample(250, gen), noise.law(fake, t).sample(250, gen)])
        got = logit(noise.law(real, t), noise.law(fake, t), y)
        ref = gaussian_logit(y, MEAN_REAL, MEAN_FAKE, COV, float(a), float(s))
        worst = max(worst, float(((got - ref).abs() / (1.0 + ref.abs())).max()))
    tol = 1e-11
    # the value of the game at D*, in one dimension where JSD_t is a quadrature
    r1, g1, var = gaussian([0.3], 0.25), gaussian([-0.2], 0.25), 0.25
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
def trained_discriminator_net(seed: int, steps: int, hidden: int):
    """The MLP discriminator trained on the noised discriminator pair (cached), and its training losses."""
    from ..nets.gan import MLPDiscriminator

    real, fake = discriminator_pair()
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
    real, fake = discriminator_pair()
    D = discriminator if discriminator is not None else trained_discriminator_net(seed, steps, hidden)[0]
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
    real, fake = gaussian(MEAN_REAL, COV), gaussian(MEAN_FAKE, COV)
    times = (0, 1, 200, 400, 700, 1000)
    laws = [("paper priority", TimestepSampler("priority", "paper").probs(1000)),
            ("official priority (with its t = 0 half)", TimestepSampler("priority", "official").probs(1000))]
    each = alpha / (len(times) + len(laws))
    failures, rows = [], {}
    all_t = torch.arange(1001)
    rd_all = rd(MEAN_REAL, MEAN_FAKE, COV, *noise.scales(all_t))
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


# -- figures -------------------------------------------------------------------------------


@tour_plot("gan_discriminator.png")
def _plot_discriminator(path):
    import matplotlib.pyplot as plt

    from ..plots import save, style

    style()
    real, fake = discriminator_pair()
    D, _ = trained_discriminator_net(83, 1200, 64)
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
