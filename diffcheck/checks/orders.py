"""Checks of the samplers' convergence orders: noise-free exact output laws on a Gaussian target, and strong errors
of the probability-flow solvers against a tight adaptive solve on a mixture."""

from __future__ import annotations

from typing import Callable

import torch

import toy

from .. import samplers as S
from ..exact import ExactModel
from ..process import VE, VP, Process, uniform_grid
from ..testing import stats as st
from ..testing.gaussian_law import affine_law
from . import Outcome, check, tour_plot

ORDER = 61  # position in the tour: after the sampler laws

# the Gaussian target of the noise-free order fits (and of the corrector check)
GAUSS_MEAN = torch.tensor([1.0, -0.5], dtype=torch.float64)
GAUSS_COV = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=torch.float64)


def _order_cases() -> list[tuple[str, Callable, Process, str, float, float]]:
    """(name, sampler, process, prediction, t_start, t_end) for the order fits."""
    vp, ve = VP(), VE(sigma_max=20.0)
    gen_free = lambda fn, **kw: (lambda m, p, x, g, nz: fn(m, p, x, g, **kw))
    noisy = lambda fn, **kw: (lambda m, p, x, g, nz: fn(m, p, x, g, generator=nz, **kw))
    return [
        ("euler_ode", gen_free(S.euler_ode), vp, "score", 1.0, 1e-3),
        ("heun_ode", gen_free(S.heun_ode), ve, "eps", 1.0, 1e-3),
        ("ddim", gen_free(S.ddim), vp, "v", 1.0, 1e-3),
        ("euler_maruyama", noisy(S.euler_maruyama), vp, "score", 1.0, 1e-3),
        ("reverse_diffusion", noisy(S.reverse_diffusion), ve, "eps", 1.0, 1e-3),
        ("ddpm_ancestral", noisy(S.ddpm_ancestral), vp, "x0", 1.0, 1e-3),
        ("vp_ancestral", noisy(S.vp_ancestral), vp, "eps", 1.0, 1e-3),
    ]


def law_error(sampler_run: Callable, process: Process, prediction: str, t_start: float, t_end: float, steps: int,
              mixture: toy.GaussianMixture | None = None) -> float:
    """|mean - mean*| + |cov - cov*|_F of a sampler's exact output law against the exact law at t_end."""
    m = mixture or toy.single_gaussian(GAUSS_MEAN, GAUSS_COV)
    model = ExactModel(m, process, prediction)
    grid = torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64)
    start, end = model.law(t_start), model.law(t_end)
    mean, cov = affine_law(lambda x, nz: sampler_run(model, process, x, grid, nz), start.mean(), start.covariance())
    return float((mean - end.mean()).norm() + (cov - end.covariance()).norm())


@check(
    "samplers.orders",
    source="declared orders: Euler 1, Heun 2 (ODE, global); DDIM 1; Euler-Maruyama, reverse diffusion, ancestral: weak 1",
    claim="Each sampler's error in law falls with steps at its declared order (log-log slope over 128-512 steps, noise-free on a Gaussian target)",
)
def orders(steps: tuple[int, ...] = (128, 256, 512), band: float = 0.1, cases: list | None = None) -> Outcome:
    """``cases`` replaces (name, run, process, prediction, t0, t1) tuples (to show the check can fail)."""
    measured, failures = {}, []
    for name, run, process, pred, t0, t1 in cases or _order_cases():
        errs = [law_error(run, process, pred, t0, t1, n) for n in steps]
        fit = st.fit_order(steps, errs)
        meta = S.info(getattr(S, name)) if hasattr(S, name) else None
        declared = meta.order if meta is not None and meta.kind == "ode" and meta.order else (meta.weak_order if meta else 1.0)
        is_ode = meta is not None and meta.kind == "ode" and not meta.stochastic or name in ("ddim",)
        ok = abs(fit.order - declared) <= band if is_ode else fit.order >= declared - band
        measured[name] = {"declared": declared, "measured": round(fit.order, 3), "errors": errs}
        if not ok:
            failures.append(f"{name}: declared {declared}, measured {fit.order:.3f}")
    return Outcome({k: v["declared"] for k, v in measured.items()}, {k: v["measured"] for k, v in measured.items()},
                   f"ODE: +-{band}; weak orders: >= declared - {band}", not failures,
                   "exact output laws (no Monte Carlo) from the affine law of each sampler on a Gaussian target; weak orders are lower bounds in theory",
                   {"failures": failures, "details": measured})


@check(
    "samplers.ode_strong_order",
    source="declared global orders: Euler 1, Heun 2, DDIM 1 (Song et al. 2021, Eq. 13; Song et al. 2020, Eq. 13)",
    claim="On a mixture (a nonlinear ODE), each probability-flow solver's error against a tight adaptive solve from the same x_T falls at its order",
)
def ode_strong_order(steps: tuple[int, ...] = (32, 64, 128, 256), n: int = 128, seed: int = 51, band: float = 0.15) -> Outcome:
    p = VP()
    m = toy.anisotropic()
    x_T = ExactModel(m, p).law(1.0).sample(n, torch.Generator().manual_seed(seed))
    ref = S.adaptive_ode(ExactModel(m, p, "score"), p, x_T, uniform_grid(1, 1.0, 1e-2), rtol=1e-10, atol=1e-10)
    solvers = (("euler_ode", S.euler_ode, "score"), ("heun_ode", S.heun_ode, "v"), ("ddim", S.ddim, "eps"))
    measured, failures = {}, []
    for name, fn, pred in solvers:
        model = ExactModel(m, p, pred)
        # the median distance: a coarse solve may carry a rare sample across the separatrix between
        # modes, a jump of the size of the mode spacing that says nothing about the local order
        errs = [float((fn(model, p, x_T, uniform_grid(k, 1.0, 1e-2)) - ref).norm(dim=-1).median()) for k in steps]
        fit = st.fit_order(steps, errs)
        declared = S.info(fn).order
        measured[name] = {"declared": declared, "measured": round(fit.order, 3), "errors": errs}
        if abs(fit.order - declared) > band:
            failures.append(f"{name}: declared {declared}, measured {fit.order:.3f}")
    return Outcome({k: v["declared"] for k, v in measured.items()}, {k: v["measured"] for k, v in measured.items()},
                   f"+-{band}", not failures,
                   "median distance to an RK45 solve at rtol = atol = 1e-10 (error far below the finest solver's), VP, t from 1 to 0.01",
                   {"failures": failures, "details": measured})


@tour_plot("sampler_orders.png")
def _plot_orders(path):
    import matplotlib.pyplot as plt

    from ..plots import save, style

    style()
    steps = (32, 64, 128, 256, 512)
    fig, ax = plt.subplots(figsize=(5.2, 3.8), layout="constrained")
    for name, run, process, pred, t0, t1 in _order_cases():
        errs = [law_error(run, process, pred, t0, t1, k) for k in steps]
        fit = st.fit_order(steps[-3:], errs[-3:])
        ax.loglog(steps, errs, "o-", ms=3, label=f"{name} ({type(process).__name__}): slope {-fit.order:.2f}")
    ax.set_xticks(steps, [str(k) for k in steps])
    ax.minorticks_off()
    ax.set_xlabel("steps")
    ax.set_ylabel(r"$|m - m^*| + \|C - C^*\|_F$ of the exact output law")
    ax.set_title("Error against steps on a Gaussian target (noise-free)")
    ax.legend(fontsize=7)
    return save(fig, path)
