"""Checks of the samplers on exact models: their laws on three presets, Song & Ermon 2019, Fig. 3 and Song & Ermon 2020, technique 4
through the Langevin samplers, the predictor-corrector's corrector, and batch independence.

Convergence orders are in ``orders``, DDIM's identities in ``ddim``, the likelihood in ``likelihood``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

import toy

from .. import samplers as S
from ..exact import ExactModel
from ..process import VE, VP, DiscreteVP, Process, SubVP, ddim_grid, geometric_sigmas, iddpm_grid, sigma_grid, uniform_grid
from ..testing import stats as st
from . import Outcome, check, tour_plot
from .orders import GAUSS_COV, GAUSS_MEAN

ORDER = 60  # position in the tour


@dataclass(frozen=True)
class Case:
    """A sampler configuration: how to run it on an exact model, its process and its grid."""

    name: str
    process: Process
    grid: torch.Tensor
    run: Callable[..., torch.Tensor]  # run(model, process, x, grid, generator)
    prediction: str = "eps"
    affine: bool = True  # affine in its start and noise on a Gaussian target (the batch-averaged corrector is not)


# Step counts of the law check (see samplers_exact_law and sampler_steps): the smallest of 50, 100, 250, 500, 1000
# at which the sampler's exact discretisation KL on every preset component is within the check's resolution.
STEPS = {"ddpm_ancestral beta_tilde": 1000, "ddpm_ancestral beta": 250, "ddim eta=0": 250, "ddim eta=0.5": 100,
         "euler_maruyama VP": 250, "reverse_diffusion VE": 100, "vp_ancestral": 250, "ve_ancestral": 100,
         "predictor_corrector VE": 50, "predictor_corrector VP": 50, "predictor_corrector sub-VP": 100,
         "euler_ode VP": 250, "heun_ode VE": 50}


REFERENCE_PER_SAMPLE = 10  # exact draws per sample in the mode-share test (see samplers_exact_law)


def _grids() -> dict[str, Callable[[int], torch.Tensor]]:
    """The grid of each configuration as a function of its step count."""
    ddpm = DiscreteVP.linear()
    sde = lambda k: uniform_grid(k, 1.0, 1e-3)
    return {"ddpm_ancestral beta_tilde": lambda k: iddpm_grid(ddpm, [k]), "ddpm_ancestral beta": lambda k: iddpm_grid(ddpm, [k]),
            "ddim eta=0": lambda k: ddim_grid(ddpm, k, "uniform"), "ddim eta=0.5": lambda k: ddim_grid(ddpm, k, "quadratic"),
            **{k: sde for k in STEPS if not k.startswith(("ddpm", "ddim"))}}


def _cases(steps: dict[str, int] | None = None) -> list[Case]:
    """The sampler configurations, each on its grid of ``steps[label]`` steps (default ``STEPS``)."""
    steps = {**STEPS, **(steps or {})}
    ddpm = DiscreteVP.linear()
    vp, ve = VP(), VE(sigma_max=20.0)
    grids = _grids()
    batch_pc = dict(norm="batch")
    rows = [
        ("ddpm_ancestral beta_tilde", "respaced steps", ddpm, lambda m, p, x, g, gen: S.ddpm_ancestral(m, p, x, g, generator=gen), "eps"),
        ("ddpm_ancestral beta", "respaced steps", ddpm, lambda m, p, x, g, gen: S.ddpm_ancestral(m, p, x, g, generator=gen, variance="beta"), "eps"),
        ("ddim eta=0", "uniform skips", ddpm, lambda m, p, x, g, gen: S.ddim(m, p, x, g), "v"),
        ("ddim eta=0.5", "quadratic skips", ddpm, lambda m, p, x, g, gen: S.ddim(m, p, x, g, eta=0.5, generator=gen), "x0"),
        ("euler_maruyama VP", "steps", vp, lambda m, p, x, g, gen: S.euler_maruyama(m, p, x, g, generator=gen), "score"),
        ("reverse_diffusion VE", "steps", ve, lambda m, p, x, g, gen: S.reverse_diffusion(m, p, x, g, generator=gen), "eps"),
        ("vp_ancestral", "steps", vp, lambda m, p, x, g, gen: S.vp_ancestral(m, p, x, g, generator=gen), "eps"),
        ("ve_ancestral", "steps", ve, lambda m, p, x, g, gen: S.ve_ancestral(m, p, x, g, generator=gen), "score"),
        ("predictor_corrector VE", "steps (batch norms)", ve, lambda m, p, x, g, gen: S.predictor_corrector(m, p, x, g, generator=gen, **batch_pc), "eps"),
        ("predictor_corrector VP", "steps (batch norms)", vp, lambda m, p, x, g, gen: S.predictor_corrector(m, p, x, g, generator=gen, **batch_pc), "v"),
        ("predictor_corrector sub-VP", "steps (batch norms)", SubVP(), lambda m, p, x, g, gen: S.predictor_corrector(m, p, x, g, generator=gen, **batch_pc), "x0"),
        ("euler_ode VP", "steps", vp, lambda m, p, x, g, gen: S.euler_ode(m, p, x, g), "score"),
        ("heun_ode VE", "steps", ve, lambda m, p, x, g, gen: S.heun_ode(m, p, x, g), "x0"),
    ]
    cases = [Case(f"{label}, {steps[label]} {kind}", process, grids[label](steps[label]), run, pred, "batch norms" not in kind)
             for label, kind, process, run, pred in rows]
    return cases + [Case("adaptive_ode VP, RK45 1e-5", vp, uniform_grid(1, 1.0, 1e-3), lambda m, p, x, g, gen: S.adaptive_ode(m, p, x, g))]


def _presets() -> list[tuple[str, toy.GaussianMixture]]:
    return [("two_modes", toy.two_modes()), ("ring", toy.ring()), ("anisotropic", toy.anisotropic())]


@check(
    "samplers.exact_law",
    source="Ho et al. 2020; Song et al. 2020; Song et al. 2021 (every sampler)",
    claim="Every sampler, run on the exact model from the exact x_T, samples the exact law at its last time (two-sample test and mode weights) on three presets",
)
def samplers_exact_law(n: int = 2000, seed: int = 40, alpha: float = 1e-3, cases: list[Case] | None = None,
                       presets: tuple[str, ...] | None = None) -> Outcome:
    """``cases`` replaces the sampler configurations (to show the check can fail); ``presets`` picks presets by name.

    Step counts (``STEPS``) follow from the tolerance: with 2 tests per configuration and preset at level
    alpha / (2 x 14 x 3) and n samples, the smallest KL any test could resolve is law_resolution(2, n, that level),
    about 0.0064 nats at n = 2000; each configuration gets the smallest count of 50, 100, 250, 500, 1000 at which
    its discretisation KL on every preset component alone is below that (``sampler_steps``), so the bias is beneath
    what the check can see. Worst component over the resolution at the chosen count (and at the next smaller one):
    DDPM beta_tilde 1000: 0.43 (500: 1.3), DDPM beta 250: 0.67 (100: 5.1), DDIM eta 0 250: 0.85 (4.5), DDIM eta 0.5
    100: 0.48 (50: 1.4), Euler-Maruyama 250: 0.20 (4.1), reverse diffusion 100: 0.47, VP ancestral 250: 0.84 (5.5),
    VE ancestral 100: 0.52, Euler ODE 250: 0.27 (1.6), Heun 50, PC VE 50: 0.42, PC VP 50: 0.87, PC sub-VP 100: 0.55
    (50: 5.1); the worst component is a narrow one (ring, std 0.1, or anisotropic's 0.1-wide axis).

    The mode-share test compares the n samples' counts with those of REFERENCE_PER_SAMPLE x n exact draws: the
    difference of two shares has standard deviation sqrt(p (1 - p) (1/n + 1/m)), so m = 10 n widens the smallest
    detectable shift by sqrt(1.1), 5 % over an exactly known share, at a tenth of the default reference's cost.
    """
    gen = torch.Generator().manual_seed(seed)
    cases = cases if cases is not None else _cases()
    chosen = [(name, m) for name, m in _presets() if presets is None or name in presets]
    if not chosen:
        raise ValueError(f"presets must name some of {[name for name, _ in _presets()]}, got {presets!r}")
    presets = chosen
    each = alpha / (2 * len(cases) * len(presets))
    failures, table = [], {}
    for case in cases:
        row = {}
        for pname, m in presets:
            model = ExactModel(m, case.process, case.prediction)
            x_T = model.law(case.grid[0]).sample(n, gen)
            x = case.run(model, case.process, x_T, case.grid, gen)
            target = model.law(case.grid[-1])
            ref = target.sample(n, gen)
            two = st.two_sample_test(x, ref, alpha=each, generator=gen, features=target.log_prob)
            modes = st.mode_weights_test(x, m, alpha=each, generator=gen, reference_n=REFERENCE_PER_SAMPLE * n)
            row[pname] = {"two_sample_p": two.p_value, "mode_weights_p": modes.p_value}
            failures += [f"{case.name} on {pname}: {r}" for r in (two, modes) if not r.passed]
        table[case.name] = row
    return Outcome("no rejection", f"{len(failures)} rejections", f"alpha={alpha:g} overall", not failures,
                   f"Bonferroni over {2 * len(cases) * len(presets)} tests (sliced KS with the exact log-density; chi-square mode shares), n={n} each",
                   {"failures": failures, "p_values": table})


# -- Song & Ermon 2019, Fig. 3 and Song & Ermon 2020, technique 4, through the samplers ----------------------------------


def _basin_share(m: toy.GaussianMixture, lim: float = 8.0, n: int = 160) -> float:
    """Share of a uniform start on [-lim, lim]^2 whose gradient flow of log p ends at the (5, 5) mode (midpoint grid)."""
    g = -lim + (torch.arange(n, dtype=torch.float64) + 0.5) * (2 * lim / n)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    x = torch.stack([xx.reshape(-1), yy.reshape(-1)], -1)
    for _ in range(600):  # 30 time units of gradient flow: far past the unit relaxation time of each mode
        x = x + 0.05 * m.score(x)
    return float((S_assign(x, m) == 1).double().mean())


@check(
    "ncsn.figure3",
    source="Song & Ermon 2019, Fig. 3 and App. B.1 (toy_runner)",
    claim="On 1/5 N((-5,-5), I) + 4/5 N((5,5), I) from uniform starts, plain Langevin (eps 0.1, 1000 steps) keeps each sample in its start basin (about half on each mode) while annealed Langevin (sigma 20 -> 1, L = 10, 100 steps each) recovers the 0.8 weight",
)
def ncsn_figure3(n: int = 1280, seed: int = 44, alpha: float = 1e-3) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    m = toy.two_modes()
    ve = VE(sigma_min=0.01, sigma_max=50.0)
    model = ExactModel(m, ve, "score")
    x = (16.0 * torch.rand(n, 2, generator=gen, dtype=torch.float64) - 8.0)
    plain = S.langevin(model, ve, x, 0.0, step_size=0.1, n_steps=1000, generator=gen, convention="half")
    annealed = S.annealed_langevin(model, ve, x, sigma_grid(ve, geometric_sigmas(20.0, 1.0, 10)), eps=0.1,
                                   steps_per_level=100, generator=gen, convention="half")
    share = lambda y: int((S_assign(y, m) == 1).sum())
    k_plain, k_ann = share(plain), share(annealed)
    basin = _basin_share(m)
    lo_p, hi_p = st.binomial_interval(k_plain, n, alpha / 2)
    lo_a, hi_a = st.binomial_interval(k_ann, n, alpha / 2)
    ok = lo_p <= basin <= hi_p and lo_a <= 0.8 <= hi_a
    return Outcome(
        {"plain Langevin share at (5,5)": basin, "annealed share at (5,5)": 0.8},
        {"plain Langevin share at (5,5)": k_plain / n, "annealed share at (5,5)": k_ann / n},
        {"plain": [lo_p, hi_p], "annealed": [lo_a, hi_a]}, ok,
        f"Clopper-Pearson intervals of the measured shares at alpha={alpha / 2:g} each (n={n}); the plain-Langevin expectation is the basin share of the uniform start under gradient flow",
    )


def S_assign(x: torch.Tensor, m: toy.GaussianMixture) -> torch.Tensor:
    """Component with the largest responsibility."""
    return m.responsibilities(x).argmax(-1)


@check(
    "ncsnv2.sampler_technique4",
    source="Song & Ermon 2020, Sec. 3.3 (Technique 4) with the sampler itself",
    claim="Running the NCSNv2 sampler's Langevin steps on data at one point, the variance ratio after T steps equals technique 4's formula",
)
def ncsnv2_sampler_variance(seed: int = 45, n: int = 4000, D: int = 64, alpha: float = 1e-3) -> Outcome:
    from ..process import ncsnv2_variance_ratio

    gen = torch.Generator().manual_seed(seed)
    point = toy.GaussianMixture([1.0], torch.zeros(1, D, dtype=torch.float64), 0.0)
    ve = VE(sigma_min=0.001, sigma_max=2.0)
    sigmas = geometric_sigmas(1.0, 0.01, 12)
    gamma = float(sigmas[0] / sigmas[1])
    grid = sigma_grid(ve, sigmas)
    model = ExactModel(point, ve, "score")
    T, eps = 5, 6.2e-6
    # start at level i-1 = 0 from N(0, sigma_0^2 I) and run level 1 only (grid[1:2] with the last level's sigma for the step)
    i = 6
    x = float(sigmas[i - 1]) * torch.randn(n, D, generator=gen, dtype=torch.float64)
    res = S.annealed_langevin(model, ve, x, torch.stack([grid[i], grid[-1]]), eps=eps, steps_per_level=T, generator=gen,
                              convention="full", full=True)
    after = res.trajectory[1]
    ratio = (after**2).reshape(-1) / float(sigmas[i]) ** 2
    want = ncsnv2_variance_ratio(eps, gamma, float(sigmas[-1]), T)
    test = st.zero_mean_test(ratio - want, alpha=alpha, name="variance ratio")
    return Outcome(want, float(ratio.mean()), f"|z| <= {test.threshold:.2f}", test.passed,
                   f"z-score of the mean over {n} x {D} coordinates at alpha={alpha:g}", {"test": str(test)})


# -- predictor-corrector ------------------------------------------------------------------------------


@check(
    "pc.corrector_helps",
    source="Song et al. 2021, Sec. 4.2 and Table 1 (PC beats the predictor alone at equal predictor steps)",
    claim="With few predictor steps, adding the Langevin corrector brings the sampled law closer to the exact one",
)
def pc_corrector_helps(n: int = 20000, steps: int = 20, seed: int = 48, alpha: float = 1e-3) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    m = toy.single_gaussian(GAUSS_MEAN, GAUSS_COV)
    p = VE(sigma_max=20.0)
    model = ExactModel(m, p, "score")
    grid = uniform_grid(steps, 1.0, 1e-3)
    target = model.law(grid[-1])
    x_T = model.law(1.0).sample(n, gen)
    alone = S.reverse_diffusion(model, p, x_T, grid, generator=gen)
    pc = S.predictor_corrector(model, p, x_T, grid, generator=gen, snr=0.16, norm="batch")
    # Gaussian KL of fitted moments; its sampling error is estimated by bootstrap
    def kl(y):
        mu, c = y.mean(0), torch.cov(y.T)
        return float(toy.kl_gaussian(mu, c, target.mean(), target.covariance()))

    boot = []
    for _ in range(50):
        i = torch.randint(0, n, (n,), generator=gen)
        boot.append(kl(alone[i]) - kl(pc[i]))
    diff = kl(alone) - kl(pc)
    se = float(torch.tensor(boot).std())
    z = st.normal_quantile(1 - alpha)
    ok = diff > z * se
    return Outcome("KL(predictor alone) > KL(predictor + corrector)",
                   {"KL alone": kl(alone), "KL with corrector": kl(pc)}, f"difference > {z:.2f} bootstrap SE ({se:.2e})", ok,
                   f"one-sided at alpha={alpha:g}; {steps} reverse-diffusion steps on VE, n={n}; the official batch-averaged corrector (per-sample norms are unstable in 2D: see pc.per_sample_norms_low_dim)")


@check(
    "pc.per_sample_norms_low_dim",
    source="Song et al. 2021, Algorithm 4 (per-sample step 2(r|z|/|s|)^2) vs the official code's batch-averaged norms",
    claim="In 2D the per-sample Langevin step size depends on the state and biases the two-mode weights, while batch-averaged norms do not; in 64 dimensions the per-sample step keeps the weights",
)
def pc_norms(n: int = 2000, seed: int = 49, alpha: float = 1e-3) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    p = VE(sigma_max=50.0)
    grid = uniform_grid(200, 1.0, 1e-3)
    results = {}
    for label, m in (("2D two_modes", toy.two_modes()),
                     ("64D two modes", toy.GaussianMixture([0.2, 0.8], torch.cat([torch.full((1, 64), -5 / 8), torch.full((1, 64), 5 / 8)]).double(), 1.0))):
        model = ExactModel(m, p, "score")
        x_T = model.law(1.0).sample(n, gen)
        # in 64D only the per-sample run is asked about (its norms concentrate); the batch run would repeat the 2D one's point
        for norm in ("per_sample", "batch") if label.startswith("2D") else ("per_sample",):
            y = S.predictor_corrector(model, p, x_T, grid, generator=gen, norm=norm)
            share = float((S_assign(y, m) == 1).double().mean())
            results[f"{label}, {norm}"] = share
    lo, hi = st.binomial_interval(int(0.8 * n), n, alpha)
    width = (hi - lo) / 2
    biased_2d = abs(results["2D two_modes, per_sample"] - 0.8) > width
    ok = biased_2d and abs(results["2D two_modes, batch"] - 0.8) <= width and abs(results["64D two modes, per_sample"] - 0.8) <= width
    return Outcome({"2D per_sample": "biased", "2D batch": 0.8, "64D per_sample": 0.8}, results,
                   f"+-{width:.3f} (binomial half-width at n={n}, alpha={alpha:g})", ok,
                   "the share of samples at the 0.8 mode")


# -- batch independence ---------------------------------------------------------------------------------


@check(
    "samplers.batch_independence",
    source="DESIGN: per-sample seeds (Karras et al. 2022's stacked generators)",
    claim="With per-sample noise, a sample does not depend on the others in its batch, for every sampler (the official batch-averaged corrector is the exception, by design)",
)
def batch_independence(n: int = 6, seed: int = 50, steps: int = 16) -> Outcome:
    """Every configuration on a ``steps``-step grid: a step either couples the batch or not, so a short grid that
    runs every step kind (first, middle and last) shows it as well as the law check's long ones."""
    m = toy.anisotropic()
    worst, coupled = 0.0, {}
    for case in _cases(dict.fromkeys(STEPS, steps)):
        if case.name.startswith("adaptive"):
            continue
        model = ExactModel(m, case.process, case.prediction)
        x = model.law(case.grid[0]).sample(n, torch.Generator().manual_seed(seed))
        together = case.run(model, case.process, x, case.grid, S.PerSampleNoise(range(n)))
        alone = case.run(model, case.process, x[:1], case.grid, S.PerSampleNoise(range(1)))
        diff = float((together[0] - alone[0]).abs().max())
        if "batch norms" in case.name:
            coupled[case.name] = diff
        else:
            worst = max(worst, diff)
    tol = 1e-12
    ok = worst <= tol and all(v > 1e-6 for v in coupled.values())
    return Outcome({"independent samplers": 0.0, "batch-norm corrector": "> 0"}, {"independent samplers": worst, **coupled},
                   tol, ok, "bitwise up to the rounding of batched arithmetic")


@tour_plot("sampler_clouds.png")
def _plot_clouds(path):
    import matplotlib.pyplot as plt

    from ..plots import density_grid, save, style

    style()
    gen = torch.Generator().manual_seed(0)
    # at most 100 steps and 600 points a panel: the clouds sit on the same contours (the law check measures them)
    cases = [c for c in _cases({k: min(v, 100) for k, v in STEPS.items()}) if c.name.split()[0] in ("ddpm_ancestral", "ddim", "euler_maruyama", "predictor_corrector", "heun_ode", "adaptive_ode")]
    cases = [c for i, c in enumerate(cases) if c.name.split()[0] not in [d.name.split()[0] for d in cases[:i]]]
    presets = _presets()
    fig, axes = plt.subplots(len(presets), len(cases), figsize=(2.3 * len(cases), 2.3 * len(presets)), layout="constrained", squeeze=False)
    for r, (pname, m) in enumerate(presets):
        for c, case in enumerate(cases):
            model = ExactModel(m, case.process, case.prediction)
            x = case.run(model, case.process, model.law(case.grid[0]).sample(600, gen), case.grid, gen)
            lim = float(m.means.abs().max()) + 3.0 * float(m.covs.diagonal(dim1=-2, dim2=-1).max().sqrt()) + 0.5
            xx, yy, lp = density_grid(model.law(case.grid[-1]), lim, 150)
            ax = axes[r][c]
            ax.contour(xx, yy, lp, levels=sorted(set(float(v) for v in torch.quantile(torch.from_numpy(lp).reshape(-1), torch.tensor([0.8, 0.9, 0.97, 0.995], dtype=torch.float64)))), colors="0.4", linewidths=0.6)
            ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.5)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(case.name.split(",")[0], fontsize=8)
            if c == 0:
                ax.set_ylabel(pname)
    fig.suptitle("Samples from the exact model over the exact density contours")
    return save(fig, path)
