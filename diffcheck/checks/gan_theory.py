"""Checks of Diffusion-GAN's theory (Wang et al. 2022): its two theorems and the adaptive T, against exact answers.

Theorem 1's JSD between noised point masses and Theorem 2's non-leaking noise are
one-dimensional integrals done by quadrature (or Monte Carlo with its standard error);
the adaptive T is driven by the exact optimal discriminator of a Gaussian pair.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np
import torch

import toy

from ..gan.controller import AdaptiveT, discriminator_rd, official_step
from ..gan.divergence import jsd_gaussian_shift, jsd_monte_carlo, jsd_quadrature, point_mass_jsd, point_mass_jsd_grad
from ..gan.noise import InstanceNoise
from ..gan.optimal import optimal_logit, rd_gaussians, rd_gaussians_mixed
from ..gan.timesteps import TimestepSampler, t_probs
from . import Outcome, check, tour_plot
from .gan import COV, MEAN_FAKE, MEAN_REAL, PAPER, discriminator_pair, gaussian

ORDER = 81  # position in the tour: after the noise and the discriminator (gan, 80)

_LOG2 = math.log(2.0)
# The controller's pair: 0.3 apart, standard deviation 0.1 (r_d = 0.866 without noise).
_CR, _CG, _CS = [0.15, 0.0], [-0.15, 0.0], 0.01


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
        ("three classes vs rotated by 60 degrees", *discriminator_pair(), False),
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
    real, fake = gaussian(_CR, _CS), gaussian(_CG, _CS)
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
    ax.set_title(f"{PAPER}, Theorem 1: noise makes the JSD smooth")
    ax.legend(loc="center right", fontsize=6, framealpha=0.9)
    ax = axes[1]
    ts = torch.arange(1001)
    ax.plot(ts, rd_gaussians(MEAN_REAL, MEAN_FAKE, COV, *noise.scales(ts)), label=r"$2\Phi(\Delta_t/2)-1$")
    gen = torch.Generator().manual_seed(0)
    real, fake = gaussian(MEAN_REAL, COV), gaussian(MEAN_FAKE, COV)
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
