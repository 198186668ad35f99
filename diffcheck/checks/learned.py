"""Checks of learned toy models against the exact answers: a denoiser, a noisy classifier, a CFG network.

Each check trains a small network for a short, seeded run (deterministic: the same weights every time) and measures
it against closed forms under p_t at four noise levels sigma/alpha = (0.02, 0.1, 0.5, 2) x the data's standard
deviation. A relative L2 error is a Monte Carlo estimate from n draws with a delta-method standard error; it
passes when its upper confidence limit (estimate + 3 standard errors) is below the stated bound, and when the same
measure at the initial weights is at least a stated factor larger.

How many draws: n is the smallest round number for which, at an error equal to its bound, 3 standard errors are
at most a tenth of the bound. The standard error of a relative error e from n draws is about c e / sqrt(n), with c
the per-draw spread; c was measured at every noise level (and guidance weight) of each recipe, at most 4.5 for the
score (at the second-largest noise level), 2.4 for the classifier gradient and 1.0 for the guided eps, hence
n >= (30 c)^2: 20000, 5000 and 2000 draws.

How the bounds were set: a trained network is a random outcome of its seed, so each bound is 1.5 times the largest
error that the check's recipe reached over seeds 0-4, rounded up (``tests/learned``'s slow test reruns the checks
with every one of those seeds). At the smallest noise level the regression target eps has unit spread while
E[eps | x_t] is a few hundredths, so a short run resolves the score there only roughly and the bound is loose;
at the other levels it is tight. A network that has not learned (zero learning rate, trained on another preset,
no unconditional training for CFG) is far above them, and the tests show each check failing so.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np
import torch

import toy

from ..exact import ExactModel
from ..learned import (
    CFGRecipe,
    ClassifierRecipe,
    ContinuousVP,
    EVAL_LEVELS,
    Recipe,
    RelativeError,
    Trained,
    classifier_gradient_error,
    guided_eps_error,
    implicit_classifier_error,
    score_error,
    train_cfg,
    train_classifier,
    train_toy,
)
from ..learned.report import sample_test
from ..process import VP
from . import Outcome, check, tour_plot

ORDER = 58  # position in the tour: after the objectives, before the samplers

N_SCORE, N_CLASSIFIER, N_CFG = 20000, 5000, 2000  # draws per noise level (see the docstring)
Z = 3.0  # one-sided upper confidence limit of an error estimate: estimate + 3 s.e.

SCORE_RECIPE = Recipe(preset="two_modes", objective=ContinuousVP(), steps=1500, seed=0)
CLASSIFIER_RECIPE = ClassifierRecipe(preset="three_classes", process=VP(), steps=1500, seed=0)
CFG_RECIPE = CFGRecipe(preset="three_classes", process=VP(), p_uncond=0.1, steps=1500, seed=0)

# bounds at the four noise levels, smallest first (1.5 x the worst of seeds 0-4, rounded up; see the docstring)
SCORE_BOUNDS = (1.0, 0.12, 0.12, 0.05)
SCORE_FACTOR = 5.0
CLASSIFIER_BOUNDS = (0.25, 0.25, 0.25, 0.25)
CLASSIFIER_FACTOR = 3.0
CFG_BOUNDS = {0.0: (3.5, 0.45, 0.06, 0.035), 1.0: (4.5, 0.65, 0.18, 0.065), 4.0: (5.0, 0.9, 0.33, 0.12)}
CFG_FACTOR = 3.0


@functools.lru_cache(maxsize=8)
def _trained(recipe: Any) -> Trained:
    """Train once per recipe (the tour's figures reuse the checks' models; training is deterministic)."""
    if isinstance(recipe, Recipe):
        return train_toy(recipe, progress=False)
    if isinstance(recipe, ClassifierRecipe):
        return train_classifier(recipe, progress=False)
    return train_cfg(recipe, progress=False)


def _times(trained: Trained, mixture: toy.GaussianMixture) -> list[float]:
    """Times at noise levels EVAL_LEVELS x the data's standard deviation (snapped to DDPM steps when discrete)."""
    objective = getattr(trained.recipe, "objective", None)
    std = float(mixture.covariance().diagonal().mean().sqrt())
    if objective is not None:
        return objective.eval_times(trained.process, std).tolist()
    return trained.process.t_of_edm_sigma(torch.tensor(EVAL_LEVELS, dtype=torch.float64) * std).tolist()


def _below(err: RelativeError, bound: float) -> bool:
    return err.value + Z * err.se < bound


def _improved(init: RelativeError, err: RelativeError, factor: float) -> bool:
    return (init.value - Z * init.se) >= factor * (err.value + Z * err.se)


def _rows(times, errors, initial, bounds, factor) -> tuple[dict, list[str]]:
    rows, failures = {}, []
    for t, e, e0, b in zip(times, errors, initial, bounds):
        key = f"t={t:.4g}"
        rows[key] = {"error": str(e), "initial": str(e0), "bound": b, "ratio": e0.value / e.value}
        if not _below(e, b):
            failures.append(f"{key}: error {e} not below {b}")
        if not _improved(e0, e, factor):
            failures.append(f"{key}: initial {e0} is not {factor}x the trained {e}")
    return rows, failures


@check(
    "learned.score",
    source="Song et al. 2021, Eq. 7 and 13 (a noise-conditional MLP, EMA weights)",
    claim="An MLP trained 1500 steps with denoising score matching on the VP SDE on NCSN's two-mode toy approaches the "
          "exact score: relative L2 error under p_t below a stated bound at four noise levels, 5x below its initial "
          "error, and its probability-flow samples pass a two-sample test against the data (as the exact model's do)",
)
def learned_score(recipe: Recipe = SCORE_RECIPE, preset: str = "two_modes", n: int = N_SCORE, n_samples: int = 2000,
                  alpha: float = 0.01, seed: int = 580) -> Outcome:
    """``recipe`` is trained and compared with ``preset`` (train on another preset, compare with another, or train with lr = 0, to see it fail)."""
    trained = _trained(recipe)
    mixture = toy.preset(preset)
    measured = dataclasses.replace(trained, mixture=mixture)
    gen = torch.Generator().manual_seed(seed)
    times = _times(trained, mixture)
    errors = [score_error(trained.model, mixture, trained.process, t, n, gen) for t in times]
    initial = [score_error(trained.initial, mixture, trained.process, t, n, gen) for t in times]
    rows, failures = _rows(times, errors, initial, SCORE_BOUNDS, SCORE_FACTOR)
    learned = sample_test(trained.model, measured, n_samples, alpha / 2, gen)
    control = sample_test(ExactModel(mixture, trained.process, "eps"), measured, n_samples, alpha / 2, gen)
    for name, r in (("learned samples", learned), ("exact-model samples (control)", control)):
        if not r.passed:
            failures.append(f"{name}: {r}")
    return Outcome(
        expected={f"t={t:.3g}": f"< {b}" for t, b in zip(times, SCORE_BOUNDS)},
        measured={f"t={t:.3g}": round(e.value, 4) for t, e in zip(times, errors)},
        tolerance=f"error + {Z:g} s.e. < bound; initial/trained >= {SCORE_FACTOR:g}; two-sample alpha={alpha:g}",
        passed=not failures,
        tolerance_note=(f"bounds = 1.5x the worst error of seeds 0-4, rounded up; n={n} draws per t "
                        f"(s.e. by the delta method; 3 s.e. <= bound/10 at an error at the bound); sliced KS with the exact log-density, {n_samples} samples, "
                        f"alpha/2 each for the learned and the exact model"),
        details={"failures": failures, **rows, "learned samples": str(learned), "control": str(control),
                 "train_seconds": round(trained.seconds, 2), "final_loss": float(np.mean(trained.losses[-100:]))},
    )


@check(
    "learned.classifier_gradient",
    source="Dhariwal & Nichol 2021, Sec. 4 and Algorithm 1 (a noisy classifier)",
    claim="A time-conditional MLP classifier trained 1500 steps with cross-entropy on noised three-class data gives "
          "grad log p(y|x_t) within a stated relative L2 error of the exact one at four noise levels, 3x below its initial error",
)
def learned_classifier(recipe: ClassifierRecipe = CLASSIFIER_RECIPE, preset: str = "three_classes", n: int = N_CLASSIFIER,
                       seed: int = 581) -> Outcome:
    """``recipe`` is trained and compared with ``preset``."""
    trained = _trained(recipe)
    mixture = toy.preset(preset)
    gen = torch.Generator().manual_seed(seed)
    times = _times(trained, mixture)
    errors = [classifier_gradient_error(trained.model, mixture, trained.process, t, n, gen) for t in times]
    initial = [classifier_gradient_error(trained.initial, mixture, trained.process, t, n, gen) for t in times]
    rows, failures = _rows(times, errors, initial, CLASSIFIER_BOUNDS, CLASSIFIER_FACTOR)
    kl = _classifier_kl(trained, mixture, times, n, gen)
    return Outcome(
        expected={f"t={t:.3g}": f"< {b}" for t, b in zip(times, CLASSIFIER_BOUNDS)},
        measured={f"t={t:.3g}": round(e.value, 4) for t, e in zip(times, errors)},
        tolerance=f"error + {Z:g} s.e. < bound; initial/trained >= {CLASSIFIER_FACTOR:g}",
        passed=not failures,
        tolerance_note=f"bounds = 1.5x the worst error of seeds 0-4, rounded up; n={n} draws of (x_t, y) per t "
                       f"(3 s.e. <= bound/10 at an error at the bound)",
        details={"failures": failures, **rows, "KL(exact || learned) of p(y|x_t) in nats": kl,
                 "train_seconds": round(trained.seconds, 2)},
    )


@torch.no_grad()
def _classifier_kl(trained: Trained, mixture, times, n, gen) -> dict[str, float]:
    """E KL(p(.|x_t) || p_theta(.|x_t)) under p_t, for the record."""
    out = {}
    for t in times:
        law = trained.process.marginal(mixture, t)
        x = law.sample(n, gen)
        exact = law.log_class_posterior(x)
        learned = torch.log_softmax(trained.model(x, t), dim=-1)
        out[f"t={t:.4g}"] = float((exact.exp() * (exact - learned)).sum(-1).mean())
    return out


@check(
    "learned.cfg_guidance",
    source="Ho & Salimans 2021, Algorithm 1 and Eq. 6 (label dropout 0.1)",
    claim="One MLP trained 1500 steps with label dropout p = 0.1 gives the guided eps~ = (1+w) eps(z,c) - w eps(z) within "
          "stated relative L2 errors of the exact one for w = 0, 1, 4 at four noise levels, 3x below its initial error",
)
def learned_cfg(recipe: CFGRecipe = CFG_RECIPE, preset: str = "three_classes", n: int = N_CFG, seed: int = 582) -> Outcome:
    """``recipe`` is trained and compared with ``preset`` (train with p_uncond = 0 to see it fail)."""
    trained = _trained(recipe)
    mixture = toy.preset(preset)
    gen = torch.Generator().manual_seed(seed)
    times = _times(trained, mixture)
    rows, failures, measured = {}, [], {}
    for w, bounds in CFG_BOUNDS.items():
        errors = [guided_eps_error(trained.model, mixture, trained.process, t, w, n, gen) for t in times]
        initial = [guided_eps_error(trained.initial, mixture, trained.process, t, w, n, gen) for t in times]
        r, f = _rows(times, errors, initial, bounds, CFG_FACTOR)
        rows.update({f"w={w:g} {k}": v for k, v in r.items()})
        failures += [f"w={w:g} {x}" for x in f]
        measured[f"w={w:g}"] = [round(e.value, 4) for e in errors]
    implicit = {f"t={t:.4g}": str(implicit_classifier_error(trained.model, mixture, trained.process, t, n, gen)) for t in times}
    return Outcome(
        expected={f"w={w:g}": [f"< {b}" for b in bounds] for w, bounds in CFG_BOUNDS.items()},
        measured=measured,
        tolerance=f"error + {Z:g} s.e. < bound at every w; initial/trained >= {CFG_FACTOR:g}",
        passed=not failures,
        tolerance_note=f"bounds = 1.5x the worst error of seeds 0-4, rounded up; n={n} draws of (z, c) per (t, w) "
                       f"(3 s.e. <= bound/10 at an error at the bound)",
        details={"failures": failures, **rows, "implicit classifier gradient error (for the record)": implicit,
                 "train_seconds": round(trained.seconds, 2)},
    )


# -- tour figures ------------------------------------------------------------------------------


@tour_plot("learned_score_fields.png")
def _plot_fields(path):
    from ..param import predict
    from ..plots import density_grid, plt, save, style

    style()
    trained = _trained(SCORE_RECIPE)
    mixture, process = trained.mixture, trained.process
    times = _times(trained, mixture)[1:]
    fig, axes = plt.subplots(len(times), 3, figsize=(10.2, 3.2 * len(times)), layout="constrained", squeeze=False)
    for row, t in zip(axes, times):
        law = process.marginal(mixture, t)
        sd = float(law.covariance().diagonal().max().sqrt())
        c = law.mean()
        lim = float(c.abs().max()) + 2.6 * sd
        xx, yy, lp = density_grid(law, lim, 160)
        g = torch.linspace(-lim, lim, 21, dtype=torch.float64)
        qx, qy = torch.meshgrid(g, g, indexing="xy")
        pts = torch.stack([qx.reshape(-1), qy.reshape(-1)], -1)
        exact = law.score(pts)
        with torch.no_grad():
            learned = predict(trained.model, process, pts, torch.full((pts.shape[0],), t, dtype=torch.float64), "score")
        levels = np.quantile(lp, np.linspace(0.5, 0.995, 8))
        scale = float(exact.norm(dim=-1).quantile(0.9)) * 12
        for ax, field, title in ((row[0], exact, "exact"), (row[1], learned, "learned (EMA)")):
            ax.contour(xx, yy, lp, levels=levels, linewidths=0.6, colors="0.6", linestyles="solid")
            ax.quiver(qx.reshape(-1), qy.reshape(-1), field[:, 0], field[:, 1], color="C0" if title == "exact" else "C3",
                      scale=scale, width=0.004, pivot="mid")
            ax.set_title(f"{title} score, t = {t:.3g} ($\\sigma/\\alpha$ = {float(process.edm_sigma(torch.tensor(t))):.3g})")
        ff = torch.stack([torch.as_tensor(xx).reshape(-1), torch.as_tensor(yy).reshape(-1)], -1)
        ex = law.score(ff)
        with torch.no_grad():
            le = predict(trained.model, process, ff, torch.full((ff.shape[0],), t, dtype=torch.float64), "score")
        rel = ((le - ex).norm(dim=-1) / ex.norm(dim=-1).clamp_min(1e-12)).reshape(xx.shape)
        im = row[2].pcolormesh(xx, yy, np.log10(rel.numpy() + 1e-6), vmin=-3, vmax=0.5, shading="auto", cmap="magma")
        row[2].contour(xx, yy, lp, levels=levels, linewidths=0.6, colors="w", linestyles="solid")
        row[2].set_title("local error $|s_\\theta - s|/|s|$")
        fig.colorbar(im, ax=row[2], shrink=0.8, label="log$_{10}$ relative error")
        for ax in row:
            ax.set_aspect("equal")
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
    fig.suptitle(f"Learned vs exact score: {SCORE_RECIPE.objective.name} on {SCORE_RECIPE.preset}, "
                 f"{SCORE_RECIPE.steps} steps (density contours of $p_t$)")
    return save(fig, path)


def _dsm_minimum(trained: Trained, n: int, gen: torch.Generator) -> float:
    """E over t ~ U(t_eps, 1) of the smallest sigma^2-weighted DSM loss, alpha^2 tr Cov(x0|x_t) / (2 sigma^2), by Monte Carlo."""
    process = trained.process
    t = process.t_eps + (1 - process.t_eps) * torch.rand(n, generator=gen, dtype=torch.float64)
    law = process.marginal(trained.mixture, t)
    x = law.sample(None, gen)
    a, s = process.alpha(t), process.sigma(t)
    return float((0.5 * (a / s) ** 2 * law.posterior_cov(x).diagonal(dim1=-2, dim2=-1).sum(-1)).mean())


def _entropy_minimum(trained: Trained, n: int, gen: torch.Generator) -> float:
    """E H(p(y | x_t)) over t ~ U(t_eps, 1): the smallest expected cross-entropy, by Monte Carlo."""
    process = trained.process
    t = process.t_eps + (1 - process.t_eps) * torch.rand(n, generator=gen, dtype=torch.float64)
    law = process.marginal(trained.mixture, t)
    lp = law.log_class_posterior(law.sample(None, gen))
    return float(-(lp.exp() * lp).sum(-1).mean())


def _cfg_minimum(trained: Trained, n: int, gen: torch.Generator) -> float:
    """E |eps - E[eps | x_t, c']|^2 = E (alpha/sigma)^2 tr Cov(x0 | x_t, c'), c' the label or (with p_uncond) none."""
    process, mixture = trained.process, trained.mixture
    t = process.t_eps + (1 - process.t_eps) * torch.rand(n, generator=gen, dtype=torch.float64)
    x0, comp = mixture.sample(n, gen, return_components=True)
    y = mixture.labels[comp]
    a, s = process.alpha(t), process.sigma(t)
    x = a[:, None] * x0 + s[:, None] * torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    law = process.marginal(mixture, t)
    cond = law.posterior_cov(x, y).diagonal(dim1=-2, dim2=-1).sum(-1)
    uncond = law.posterior_cov(x).diagonal(dim1=-2, dim2=-1).sum(-1)
    p = trained.recipe.p_uncond
    return float(((a / s) ** 2 * ((1 - p) * cond + p * uncond)).mean())


@tour_plot("learned_loss_curves.png")
def _plot_losses(path):
    from ..plots import plt, save, style

    style()
    gen = torch.Generator().manual_seed(5)
    runs = [("DSM on the VP SDE, two_modes", _trained(SCORE_RECIPE), _dsm_minimum),
            ("cross-entropy, noisy classifier", _trained(CLASSIFIER_RECIPE), _entropy_minimum),
            ("eps-MSE with label dropout (CFG)", _trained(CFG_RECIPE), _cfg_minimum)]
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.3), layout="constrained")
    k = 50
    for ax, (title, trained, minimum) in zip(axes, runs):
        loss = np.asarray(trained.losses)
        steps = np.arange(1, loss.size + 1)
        ax.plot(steps, loss, lw=0.4, alpha=0.35, color="C0", label="per step")
        if loss.size >= k:
            ax.plot(steps[k - 1:], np.convolve(loss, np.ones(k) / k, mode="valid"), lw=1.4, color="C0", label=f"mean of {k}")
        ax.axhline(minimum(trained, 20000, gen), color="C3", lw=1.0, ls="--", label="exact model's expected loss")
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.set_yscale("log")
        ax.legend()
    fig.suptitle("Training losses of the learned toy models")
    return save(fig, path)

