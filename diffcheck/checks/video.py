"""Checks of conditional video diffusion against the exact conditionals of Gaussian videos: VDM's conditioning schemes.

The AR(1) videos, the process and the samplers shared by the video checks live here; the
exact denoisers of RaMViD and MCVD are checked in ``video_denoisers``, the trained toy
models in ``video_trained``.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch

import toy
from toy.gaussian import complement

from .. import samplers as S
from ..exact import ExactModel
from ..impute import replacement
from ..process import DiscreteVP, iddpm_grid
from ..testing import stats as st
from ..video import (
    Blocks,
    ExactConditional,
    RaMViDExact,
    conditional_draws,
    conditional_kl,
    conditional_sample,
    exact_conditional_sample,
    conditioning,
    log_known_given_noisy,
    ramvid_sample,
)
from . import Outcome, check, tour_plot

ORDER = 90  # position in the tour

FRAMES, FRAME_DIM, RHO = 6, 2, 0.9
BLOCKS = Blocks(past=2, current=2, future=1)
W_SWEEP = (1.0, 2.0, 3.0, 4.0, 6.0)


def ar1(frames: int = FRAMES) -> toy.SequenceMixture:
    """The Gaussian video: stationary AR(1) frames of 2-D points, rho = 0.9, unit variance."""
    return toy.ar1_video(frames, FRAME_DIM, rho=RHO)


def ar1_mixture(frames: int = FRAMES) -> toy.SequenceMixture:
    """A mixture of two AR(1) videos with different offsets and correlations (not Gaussian)."""
    return toy.ar1_video(frames, FRAME_DIM, rho=[0.9, 0.6], offsets=[[1.5, -1.0], [-1.5, 1.0]], weights=[0.6, 0.4])


def ddpm_process() -> DiscreteVP:
    """The DDPM process of the video checks: linear betas, T = 1000 (Ho et al. 2020)."""
    return DiscreteVP.linear()


def samplers(p: DiscreteVP) -> dict[str, tuple[Callable, Callable, torch.Tensor]]:
    """name -> (full sampler(model, x, noise, **kw), step, grid): DDPM ancestral over 100 respaced steps, DDIM over 50."""
    g_ddpm, g_ddim = iddpm_grid(p, [100]), iddpm_grid(p, "ddim50")
    return {
        "DDPM (100 steps)": (lambda model, x, noise, **kw: S.ddpm_ancestral(model, p, x, g_ddpm, generator=noise, **kw), S.ancestral_step, g_ddpm),
        "DDIM (50 steps)": (lambda model, x, noise, **kw: S.ddim(model, p, x, g_ddim, **kw), S.ddim_step, g_ddim),
    }


# -- the identity behind reconstruction guidance ----------------------------------------------------------------


def _identity_gap(m, p, known, t: float, n: int, gen: torch.Generator, grad_fn: Callable | None) -> tuple[float, float]:
    """(max relative gap of the identity, relative error of the w_r = 1 Gaussian approximation) at time t."""
    tt = torch.tensor(t, dtype=torch.float64)
    a, s = p.alpha(tt), p.sigma(tt)
    x0 = m.sample(n, gen)
    z = a * x0 + s * torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    x_a = x0[:, known]
    ec = ExactConditional(m, p, known, "x0")
    free = ec.free
    lhs = ec(z[:, free], tt, cond=x_a)
    zr = z.clone().requires_grad_(True)
    if grad_fn is None:
        (g,) = torch.autograd.grad(log_known_given_noisy(m, p, zr, tt, known, x_a).sum(), zr)
    else:
        g = grad_fn(m, p, z, tt, known, x_a)
    base = ExactModel(m, p, "x0").x0(z, tt)
    rhs = base[:, free] + (s * s / a) * g[:, free]
    gap = float(((lhs - rhs).norm(dim=1) / (1.0 + lhs.norm(dim=1))).max())
    # Ho et al.'s approximation q(x^a | z_t) ~ N(x^a(z_t), sigma^2/alpha^2 I): its correction against the exact one
    approx = (s * s / a) * log_q_grad_gaussian_approx(m, p, z, tt, known, x_a)[:, free]
    exact_corr = lhs - base[:, free]
    rel = float((approx - exact_corr).norm() / exact_corr.norm())
    return gap, rel


def log_q_grad_gaussian_approx(m, p, z, t, known, x_a):
    """grad_z log N(x^a; x^a(z_t), sigma²/alpha² I): what reconstruction guidance uses at w_r = 1 for grad log q(x^a | z_t)."""
    a, s = p.alpha(t), p.sigma(t)
    with torch.enable_grad():
        zg = z.clone().requires_grad_(True)
        err = ((x_a - ExactModel(m, p, "x0").x0(zg, t)[:, known]) ** 2).sum()
        (g,) = torch.autograd.grad(err, zg)
    return -(a * a / (2 * s * s)) * g


@check(
    "vdm.guidance_identity",
    source="Ho et al. 2022, Sec. 3.1",
    claim="E[x^b | z_t, x^a] = E[x^b | z_t] + (sigma_t^2 / alpha_t) grad_{z^b} log q(x^a | z_t), exactly, on a Gaussian video and a mixture of them (prediction and interpolation masks)",
)
def guidance_identity(n: int = 128, seed: int = 900, grad_fn: Callable | None = None,
                      times: tuple[float, ...] = (0.02, 0.2, 0.5, 0.8, 0.95)) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    p = ddpm_process()
    worst, approx = 0.0, {}
    for label, m in (("AR(1)", ar1()), ("mixture of AR(1)", ar1_mixture())):
        for mask_name, frames in (("prediction", [0, 1]), ("interpolation", [0, 5])):
            known = m.frame_coords(frames)
            for t in times:
                gap, rel = _identity_gap(m, p, known, t, n, gen, grad_fn)
                worst = max(worst, gap)
                if label == "AR(1)" and mask_name == "prediction":
                    approx[f"t={t:g}"] = rel
    tol = 1e-10
    return Outcome(0.0, worst, tol, worst <= tol, "float64 identity; gap relative to 1 + |E[x^b | z_t, x^a]| per sample",
                   {"relative error of the w_r = 1 Gaussian approximation of the correction (AR(1), prediction)": approx})


# -- the table of conditioning schemes against the exact conditional ------------------------------------------------


def _table_runs(p, m, known_frames, w_sweep) -> dict[str, dict[str, Callable]]:
    known = m.frame_coords(known_frames)
    ex = ExactModel(m, p, "eps")
    ram = RaMViDExact(m, p, m.frames)
    mask = torch.zeros(m.frames, dtype=torch.bool)
    mask[list(known_frames)] = True
    out: dict[str, dict[str, Callable]] = {}
    for name, (full, step, grid) in samplers(p).items():
        ddpm = step is S.ancestral_step
        runs: dict[str, Callable] = {}

        def exact(x_T, x_a, noise, full=full, grid=grid):
            def sampler(model, process, x, grid, **kw):
                return full(model, x, noise, **kw)  # ``full`` holds the process and the grid

            return exact_conditional_sample(m, p, known, x_a, x_T, grid, sampler=sampler)

        def ramvid(x_T, x_a, noise, step=step, grid=grid, ddpm=ddpm):
            b = x_T.shape[0]
            clean = torch.zeros(b, m.dim, dtype=x_T.dtype)
            clean[:, known] = x_a
            shape = (b, m.frames, m.frame_dim)
            return ramvid_sample(ram, p, clean.reshape(shape), mask, x_T.reshape(shape), grid, step=step,
                                 generator=noise if ddpm else None).reshape(b, -1)

        def noised(x_T, x_a, noise, step=step, grid=grid):
            rows = mask[None].expand(x_T.shape[0], -1)
            return replacement(ram, p, x_a, known, x_T, grid, step=step, generator=noise, mask=rows)

        runs["exact conditional sampler"] = exact
        runs["RaMViD reset, exact denoiser"] = ramvid
        runs["replacement"] = lambda x_T, x_a, noise, step=step, grid=grid: conditional_sample(ex, p, x_a, known, x_T, grid, step=step, generator=noise)
        for w in w_sweep:
            runs[f"reconstruction guidance w_r={w:g}"] = (
                lambda x_T, x_a, noise, step=step, grid=grid, w=w: conditional_sample(ex, p, x_a, known, x_T, grid, step=step, generator=noise, w_r=w))
        runs["RaMViD with noised conditioning frames"] = noised
        out[name] = runs
    return out


@functools.lru_cache(maxsize=4)
def conditioning_kls(known_frames: tuple[int, ...] = (0, 1), w_sweep: tuple[float, ...] = W_SWEEP) -> dict[str, dict[str, float]]:
    """E_{x^a} KL(sampler || exact conditional) in nats for every scheme and sampler on the AR(1) video (exact laws)."""
    p, m = ddpm_process(), ar1()
    known = m.frame_coords(list(known_frames))
    return {name: {scheme: conditional_kl(run, m, p, known, verify=False) for scheme, run in runs.items()}
            for name, runs in _table_runs(p, m, known_frames, w_sweep).items()}


@check(
    "vdm.conditioning_table",
    source="Ho et al. 2022, Sec. 3.1; Höppe et al. 2022 (sampling code)",
    claim="On a Gaussian video, replacement is biased (KL to the exact conditional > 0.3 nats for DDPM and DDIM); reconstruction guidance lowers that KL, best at some w_r > 1; RaMViD's reset sampler with the exact denoiser is the exact conditional sampler, and resetting to noised frames is not",
)
def conditioning_table(kls: dict | None = None, bound: float = 0.3) -> Outcome:
    kls = conditioning_kls() if kls is None else kls
    failures, table, best = [], {}, {}
    for name, row in kls.items():
        guided = {k: v for k, v in row.items() if k.startswith("reconstruction guidance")}
        w_best = min(guided, key=guided.get)
        best[name] = {"w_r": float(w_best.split("=")[1]), "KL": guided[w_best]}
        rep, exact, ram = row["replacement"], row["exact conditional sampler"], row["RaMViD reset, exact denoiser"]
        w1 = row.get("reconstruction guidance w_r=1")
        if not rep > bound:
            failures.append(f"{name}: replacement KL {rep:.4g} is not above {bound}")
        if not guided[w_best] < rep:
            failures.append(f"{name}: no guidance weight beats replacement")
        if w1 is not None and not w1 < rep:
            failures.append(f"{name}: guidance at w_r = 1 does not beat replacement")
        if w1 is not None and not (best[name]["w_r"] > 1.0 and guided[w_best] < w1):
            failures.append(f"{name}: no w_r > 1 beats w_r = 1")
        if abs(ram - exact) > 1e-9 * (1.0 + exact):
            failures.append(f"{name}: RaMViD with the exact denoiser ({ram:.6g}) differs from the exact conditional sampler ({exact:.6g})")
        if not exact < min(v for k, v in row.items() if k not in ("exact conditional sampler", "RaMViD reset, exact denoiser")):
            failures.append(f"{name}: an approximate scheme is closer than the exact conditional sampler")
        if not row["RaMViD with noised conditioning frames"] > exact + 0.1:
            failures.append(f"{name}: resetting to noised frames is not measurably worse than resetting to clean ones")
        table[name] = row
    expected = {"replacement KL": f"> {bound}", "best guidance": "< replacement, at w_r > 1", "RaMViD reset": "= exact conditional sampler"}
    measured = {f"{n} replacement": r["replacement"] for n, r in kls.items()}
    measured.update({f"{n} best guidance (w_r={b['w_r']:g})": b["KL"] for n, b in best.items()})
    measured.update({f"{n} exact conditional sampler": r["exact conditional sampler"] for n, r in kls.items()})
    return Outcome(expected, measured, bound, not failures,
                   "exact Gaussian laws of the samplers (no Monte Carlo); KL averaged over x^a ~ q; the exact sampler's KL is its discretisation error",
                   {"table (nats)": table, "best w_r": best, "failures": failures,
                    "setting": f"AR(1) video, {FRAMES} frames x {FRAME_DIM}-D, rho={RHO}; frames 0, 1 given; linear DDPM table"})


# -- exact conditional sampler on a mixture video (Monte Carlo) -------------------------------------------------------


@check(
    "vdm.exact_sampler_two_sample",
    source="Ho et al. 2022, Sec. 3.1",
    claim="DDPM run on the exact conditional model passes a two-sample test against exact conditional draws, on the AR(1) video (x^a ~ data) and on a mixture of AR(1) videos (x^a = 0), while replacement is rejected at the same sample size",
)
def exact_sampler_two_sample(n: int = 1000, seed: int = 901, alpha: float = 1e-3, model: Callable | None = None, steps: int = 1000) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    p = ddpm_process()
    grid = iddpm_grid(p, [steps])
    sampler = lambda model_, p_, x, g, **kw: S.ddpm_ancestral(model_, p_, x, g, generator=gen, **kw)  # noqa: E731
    results = {}
    for label, m in (("AR(1), x^a ~ data", ar1()), ("mixture of AR(1), x^a = 0", ar1_mixture())):
        known = m.frame_coords([0, 1])
        free = complement(known, m.dim)
        if m.num_components == 1:
            x_a = m.sample(n, gen)[:, known]
            ref = m.sample(n, gen)  # the joint (x^a, x^b): x^b | x^a exact, averaged over x^a ~ data
            features = m.log_prob
        else:  # x^a = 0 lies between the two components
            x_a = torch.zeros(n, known.numel(), dtype=torch.float64)
            ref = conditional_draws(m, known, x_a, gen)
            features = lambda x, law=m.condition(known, x_a[0]), free=free: law.log_prob(x[:, free])
        x_T = p.prior_sample((n, m.dim), gen)
        if model is None:
            exact = exact_conditional_sample(m, p, known, x_a, x_T, grid, sampler=sampler)
        else:  # a given conditional model (a deliberately wrong one, in the tests)
            exact = torch.empty(n, m.dim, dtype=torch.float64)
            exact[:, free] = sampler(model(m, known), p, x_T[:, free], grid, cond=x_a)
            exact[:, known] = x_a
        results[f"exact conditional sampler, {label}"] = (exact, ref, features)
        if m.num_components > 1:
            rep = conditional_sample(ExactModel(m, p, "eps"), p, x_a, known, x_T, grid, step=S.ancestral_step, generator=gen)
            results[f"replacement, {label}"] = (rep, ref, features)
    k = len(results)
    tests = {name: st.two_sample_test(x, r, alpha=alpha / k, generator=gen, features=f) for name, (x, r, f) in results.items()}
    ok = all(t.passed for name, t in tests.items() if name.startswith("exact")) and not any(
        t.passed for name, t in tests.items() if name.startswith("replacement"))
    return Outcome({name: "rejected" if name.startswith("replacement") else "not rejected" for name in tests},
                   {name: t.p_value for name, t in tests.items()}, f"alpha={alpha:g} split over {k} tests", ok,
                   f"n={n}; sliced KS of whole videos with the exact log-density as a slice; {steps} DDPM steps (the exact sampler's "
                   "discretisation KL there is ~1e-3 nats on the AR(1) video, far below this resolution)",
                   {name: str(t) for name, t in tests.items()})


# -- tour figures ----------------------------------------------------------------------------------------------------


@tour_plot("video_conditioning.png")
def _plot_conditioning(path):
    import matplotlib.pyplot as plt

    from ..plots import save, style

    style()
    kls = conditioning_kls()
    fig, axes = plt.subplots(1, len(kls), figsize=(5.2 * len(kls), 3.8), layout="constrained", squeeze=False)
    for ax, (name, row) in zip(axes[0], kls.items()):
        ws = [float(k.split("=")[1]) for k in row if k.startswith("reconstruction guidance")]
        vals = [row[f"reconstruction guidance w_r={w:g}"] for w in ws]
        ax.plot(ws, vals, "o-", color="C0", label="reconstruction guidance")
        for key, color, style_ in (("replacement", "C3", "--"), ("RaMViD with noised conditioning frames", "C1", ":"),
                                   ("exact conditional sampler", "C2", "-")):
            ax.axhline(row[key], color=color, linestyle=style_, label=key)
        ax.set_yscale("log")
        ax.set_xlabel(r"guidance weight $w_r$")
        ax.set_ylabel(r"$E_{x^a}$ KL to the exact conditional (nats)")
        ax.set_title(name)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle("Conditioning schemes on an AR(1) video (frames 0-1 given, 2-5 sampled): exact sampler laws")
    return save(fig, path)
