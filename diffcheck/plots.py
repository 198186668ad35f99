"""Figures of exact answers: densities and score fields over t, schedules, forward-SDE marginals.

Every function draws headless (Agg) and writes a PNG atomically, returning its path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from toy.mixture import GaussianMixture  # noqa: E402

from .io import atomic_path  # noqa: E402
from .process import VE, VP, CosineVP, DiscreteVP, Process, SubVP  # noqa: E402

__all__ = ["style", "save", "density_grid", "plot_noised_densities", "plot_score_fields", "plot_schedules", "plot_forward_marginals", "plot_samples", "plot_trajectories"]


def style() -> None:
    """One consistent, publication-ready style for every figure."""
    plt.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 150, "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9,
        "legend.fontsize": 8, "axes.spines.top": False, "axes.spines.right": False, "image.cmap": "viridis",
    })


def save(fig: plt.Figure, path: str | os.PathLike) -> Path:
    """Save a figure atomically (PDF or SVG when the name says so, PNG otherwise) and close it."""
    suffix = Path(path).suffix.lower()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=suffix[1:] if suffix in (".pdf", ".svg") else "png", bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def density_grid(law, lim: float, n: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, Y, log p) of a 2D law on a square grid [-lim, lim]^2."""
    g = torch.linspace(-lim, lim, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], -1)
    lp = law.log_prob(pts).reshape(n, n)
    return xx.numpy(), yy.numpy(), lp.numpy()


def _lim(mixture: GaussianMixture, process: Process, t: float) -> float:
    m = mixture.noised(process.alpha(t), process.sigma(t))
    sd = float(torch.sqrt(m.covariance().diagonal().max()))
    return float(m.mean().abs().max()) + 3.2 * sd


def plot_noised_densities(mixture: GaussianMixture, process: Process, times: Sequence[float], path, title: str = "") -> Path:
    """Exact log-density of x_t for several t (one panel each)."""
    style()
    fig, axes = plt.subplots(1, len(times), figsize=(3.3 * len(times), 3.0), squeeze=False, layout="constrained")
    for ax, t in zip(axes[0], times):
        law = process.marginal(mixture, t)
        lim = _lim(mixture, process, t)
        xx, yy, lp = density_grid(law, lim)
        im = ax.contourf(xx, yy, np.exp(lp), levels=30)
        ax.set_title(f"t = {t:g}: $\\alpha$={float(process.alpha(t)):.3g}, $\\sigma$={float(process.sigma(t)):.3g}")
        ax.set_aspect("equal")
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        fig.colorbar(im, ax=ax, shrink=0.75, label="$p_t(x)$")
    fig.suptitle(title or f"Exact marginals $p_t$ of {process!r}")
    return save(fig, path)


def plot_score_fields(mixture: GaussianMixture, process: Process, times: Sequence[float], path, title: str = "") -> Path:
    """Exact score field over exact log-density contours for several t."""
    style()
    fig, axes = plt.subplots(1, len(times), figsize=(3.4 * len(times), 3.1), squeeze=False, layout="constrained")
    for ax, t in zip(axes[0], times):
        law = process.marginal(mixture, t)
        lim = _lim(mixture, process, t)
        xx, yy, lp = density_grid(law, lim, 160)
        ax.contour(xx, yy, lp, levels=np.quantile(lp, np.linspace(0.5, 0.995, 8)), linewidths=0.6, colors="0.55", linestyles="solid")
        g = torch.linspace(-lim, lim, 21, dtype=torch.float64)
        qx, qy = torch.meshgrid(g, g, indexing="xy")
        pts = torch.stack([qx.reshape(-1), qy.reshape(-1)], -1)
        s = law.score(pts)
        mag = s.norm(dim=-1)
        d = s / mag.clamp_min(1e-12)[:, None]
        q = ax.quiver(qx.reshape(-1), qy.reshape(-1), d[:, 0], d[:, 1], np.log10(mag.numpy() + 1e-12), scale=22, width=0.005, pivot="mid")
        ax.set_title(f"t = {t:g}")
        ax.set_aspect("equal")
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        fig.colorbar(q, ax=ax, shrink=0.75, label=r"$\log_{10} |\nabla \log p_t|$")
    fig.suptitle(title or "Exact score fields (direction; colour = magnitude)")
    return save(fig, path)


def plot_schedules(path) -> Path:
    """alpha^2(t) and log-SNR(t) of every process, continuous and tabulated."""
    style()
    t = torch.linspace(0.0, 1.0, 1001, dtype=torch.float64)
    procs = [("VP (0.1, 20)", VP()), ("sub-VP", SubVP()), ("VE exact (0.01, 50)", VE()), ("VE official", VE(kernel="official")),
             ("cosine (continuous)", CosineVP()), ("DDPM linear table", DiscreteVP.linear()), ("DDPM cosine table", DiscreteVP.cosine())]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.5, 3.4), layout="constrained")
    for name, p in procs:
        ls = "--" if "table" in name else "-"
        if not isinstance(p, VE):
            a1.plot(t, p.alpha(t) ** 2, ls, label=name)
        lam = p.log_snr(t[1:])
        a2.plot(t[1:], lam, ls, label=name)
    a1.set_xlabel("t")
    a1.set_ylabel(r"$\alpha(t)^2$ ($\bar\alpha$)")
    a1.set_title("Signal kept")
    a1.legend()
    a2.set_xlabel("t")
    a2.set_ylabel(r"$\lambda(t) = \log \alpha^2/\sigma^2$")
    a2.set_title("Log signal-to-noise ratio")
    a2.legend(ncol=1)
    return save(fig, path)


def plot_forward_marginals(samples: dict[str, np.ndarray], exact: dict[str, tuple[np.ndarray, np.ndarray]], path, title: str) -> Path:
    """Histograms of simulated first coordinates beside the exact marginal density, one panel per case."""
    style()
    keys = list(samples)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8), squeeze=False, layout="constrained")
    for ax, k in zip(axes[0], keys):
        ax.hist(samples[k], bins=60, density=True, alpha=0.55, label="Euler-Maruyama")
        gx, gy = exact[k]
        ax.plot(gx, gy, "k", lw=1.2, label="exact")
        ax.set_title(k)
        ax.set_xlabel("$x_1$")
    axes[0][0].set_ylabel("density")
    axes[0][0].legend()
    fig.suptitle(title)
    return save(fig, path)


def plot_samples(law, samples: dict, path, title: str = "") -> Path:
    """Sample clouds (one panel per entry of ``samples``) over the exact density contours of ``law``."""
    style()
    names = list(samples)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False, layout="constrained")
    pts = torch.cat([torch.as_tensor(v, dtype=torch.float64) for v in samples.values()])
    lim = float(pts.abs().quantile(0.995)) * 1.1 + 0.1
    xx, yy, lp = density_grid(law, lim, 160)
    levels = np.quantile(lp, [0.75, 0.85, 0.93, 0.98, 0.995])
    for ax, name in zip(axes[0], names):
        x = torch.as_tensor(samples[name])
        ax.contour(xx, yy, lp, levels=np.unique(levels), colors="0.4", linewidths=0.6, linestyles="solid")
        ax.scatter(x[:, 0], x[:, 1], s=1.5, alpha=0.4)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(name)
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
    fig.suptitle(title or "Samples over the exact density contours")
    return save(fig, path)


def plot_trajectories(law_end, trajectories: dict, path, title: str = "") -> Path:
    """Paths of a few samples (one panel per sampler in ``trajectories``: name -> list of (B, 2) states)."""
    style()
    names = list(trajectories)
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.5), squeeze=False, layout="constrained")
    for ax, name in zip(axes[0], names):
        states = torch.stack([torch.as_tensor(s) for s in trajectories[name]])  # (steps + 1, B, 2)
        lim = float(states.abs().max()) * 1.05
        xx, yy, lp = density_grid(law_end, lim, 150)
        ax.contour(xx, yy, lp, levels=np.unique(np.quantile(lp, [0.8, 0.9, 0.97, 0.995])), colors="0.5", linewidths=0.6, linestyles="solid")
        for b in range(states.shape[1]):
            ax.plot(states[:, b, 0], states[:, b, 1], lw=0.7, alpha=0.8)
            ax.plot(states[-1, b, 0], states[-1, b, 1], "k.", ms=3)
        ax.set_aspect("equal")
        ax.set_title(name)
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
    fig.suptitle(title or "Sampler trajectories from the same starting points (dots: ends)")
    return save(fig, path)
