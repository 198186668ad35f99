"""Checks of the forward processes: coefficients, kernels, SDE simulation, Fokker-Planck, conversions."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

import toy

from .. import param
from ..exact import ExactModel
from ..forward import simulate_forward
from ..process import VE, VP, CosineVP, DiscreteVP, LinearVE, Process, SubVP
from ..reverse import ReverseSDE
from ..testing import stats as st
from . import Outcome, check, tour_plot

ORDER = 20  # position in the tour


def _processes() -> list[tuple[str, Process]]:
    return [
        ("VP", VP()),
        ("subVP", SubVP()),
        ("VE", VE()),
        ("VE-official", VE(kernel="official")),
        ("cosine", CosineVP()),
        ("linear VE", LinearVE(20.0)),
        ("DDPM-linear", DiscreteVP.linear()),
        ("DDPM-cosine", DiscreteVP.cosine()),
    ]


@check(
    "process.coefficients_autograd",
    source="Song et al. 2021, App. B (f = d log alpha/dt, g^2 = d sigma^2/dt - 2 f sigma^2)",
    claim="Each process's closed-form drift f and squared diffusion g^2 equal the autograd derivatives of alpha and sigma",
)
def coefficients_autograd(n: int = 200, seed: int = 10, processes: list | None = None) -> Outcome:
    """``processes`` replaces the (name, process) list (to show the check can fail)."""
    gen = torch.Generator().manual_seed(seed)
    worst, where = 0.0, ""
    for name, p in processes or _processes():
        t = (0.01 + 0.98 * torch.rand(n, generator=gen, dtype=torch.float64)).requires_grad_(True)
        la = p.log_alpha(t)
        s2 = torch.exp(2.0 * p.log_sigma(t))
        (dla,) = torch.autograd.grad(la.sum(), t)
        (ds2,) = torch.autograd.grad(s2.sum(), t)
        f = p.f(t.detach())
        g2 = p.g2(t.detach())
        g2_ref = ds2 - 2.0 * dla * s2.detach()
        err = max(float(((f - dla).abs() / (1.0 + dla.abs())).max()),
                  float(((g2 - g2_ref).abs() / (ds2.abs() + (2.0 * dla * s2).abs().detach() + 1e-300)).max()))
        if err > worst:
            worst, where = err, name
    tol = 1e-9
    return Outcome(0.0, worst, tol, worst <= tol,
                   "relative to the terms of the formula; float64 rounding of exp/log chains", {"worst_process": where})


@check(
    "process.log_snr_inverse",
    source="definition of log-SNR",
    claim="lambda(t) = 2 log(alpha/sigma) is strictly decreasing and t_of_log_snr inverts it",
)
def log_snr_inverse(n: int = 2001) -> Outcome:
    worst, where, monotone = 0.0, "", True
    t = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    for name, p in _processes():
        lam = p.log_snr(t)
        direct = 2.0 * (p.log_alpha(t) - p.log_sigma(t))
        inner = slice(1, n)
        agree = float(((lam[inner] - direct[inner]).abs() / (1.0 + direct[inner].abs())).max())
        monotone &= bool((lam[1:] < lam[:-1]).all())
        back = p.t_of_log_snr(lam)
        err = max(agree, float((back - t).abs().max()))
        if err > worst:
            worst, where = err, name
    tol = 1e-9
    return Outcome(0.0, worst, tol, worst <= tol and monotone,
                   "absolute error in t; the inverse is closed form or a piecewise-linear solve in float64",
                   {"worst_process": where, "strictly_decreasing": monotone})


def _gauss_legendre(fn: Callable[[torch.Tensor], torch.Tensor], a: float, b: float, panels: int, order: int = 8) -> float:
    nodes, weights = np.polynomial.legendre.leggauss(order)
    edges = torch.linspace(a, b, panels + 1, dtype=torch.float64)
    mid = 0.5 * (edges[1:] + edges[:-1])
    half = 0.5 * (edges[1:] - edges[:-1])
    x = (mid[:, None] + half[:, None] * torch.from_numpy(nodes)[None]).reshape(-1)
    w = (half[:, None] * torch.from_numpy(weights)[None]).reshape(-1)
    return float((fn(x) * w).sum())


@check(
    "process.kernel_quadrature",
    source="Sarkka & Solin 2019, Eq. 5.51 (moments of linear SDEs); Song et al. 2021, App. B",
    claim="The transition variance of dx = f x dt + g dW from 0 to t, int g(s)^2 alpha(t)^2/alpha(s)^2 ds, equals sigma(t)^2 - sigma(0)^2 alpha(t)^2",
)
def kernel_quadrature(processes: list | None = None) -> Outcome:
    """``processes`` replaces the (name, process) list (to show the check can fail)."""
    worst, where = 0.0, ""
    details = {}
    for name, p in processes or _processes():
        for t in (0.1, 0.5, 0.9):
            la_t = float(p.log_alpha(t))
            integral = _gauss_legendre(lambda s: p.g2(s) * torch.exp(2.0 * (la_t - p.log_alpha(s))), 0.0, t, panels=round(t * 4000))
            expected = float(p.sigma(t) ** 2 - p.sigma(0.0) ** 2 * p.alpha(t) ** 2)
            err = abs(integral - expected) / expected
            if err > worst:
                worst, where = err, f"{name} t={t}"
        if name.startswith("VE"):
            details[f"{name}: kernel variance minus SDE transition variance at t=0.5"] = float(p.sigma(0.5) ** 2) - float(
                p.sigma(0.5) ** 2 - p.sigma(0.0) ** 2)
    tol = 1e-10
    return Outcome(0.0, worst, tol, worst <= tol,
                   "relative error; 8-point Gauss-Legendre on panels of 1/4000 aligned with DDPM grids is exact to rounding",
                   {"worst_case": where, **details,
                    "note": "the official VE kernel sigma(t)^2 exceeds the SDE's transition variance by sigma_min^2 = 1e-4"})


@check(
    "process.forward_sde",
    source="Song et al. 2021, Eq. 5, 9, 11, 12",
    claim="Euler-Maruyama simulation of the forward SDE from data samples reproduces the closed-form marginal (VP, sub-VP, VE)",
)
def forward_sde(n: int = 4000, steps: int = 4000, seed: int = 11, alpha: float = 1e-3,
                g2_fn: dict | None = None) -> Outcome:
    """``g2_fn`` maps a process name to a replacement g^2(t) (to show the check can fail)."""
    gen = torch.Generator().manual_seed(seed)
    m = toy.anisotropic()
    cases = [("VP", VP()), ("subVP", SubVP()), ("VE", VE(sigma_max=10.0))]
    times = (0.3, 1.0)
    each = alpha / (3 * len(cases) * len(times))
    failures, rows = [], {}
    for name, p in cases:
        x0 = m.sample(n, gen)
        for t in times:
            xt = simulate_forward(p, x0, t, round(steps * t), gen, g2_fn=None if g2_fn is None else g2_fn.get(name))
            law = p.marginal(m, t)
            ref = law.sample(n, gen)
            tests = [st.mean_test(xt, law.mean(), law.covariance(), alpha=each),
                     st.covariance_test(xt, law.covariance(), alpha=each),
                     st.two_sample_test(xt, ref, alpha=each, generator=gen, features=law.log_prob)]
            rows[f"{name} t={t}"] = {"var_measured": torch.var(xt, 0).tolist(), "var_exact": law.covariance().diagonal().tolist()}
            failures += [f"{name} t={t}: {r}" for r in tests if not r.passed]
    return Outcome("no rejection", f"{len(failures)} rejections", f"alpha={alpha:g} overall", not failures,
                   f"Bonferroni over {3 * len(cases) * len(times)} tests; n={n}; EM weak bias O(dt) with dt=1/{steps} is far below the standard errors",
                   {"failures": failures, **rows})


def _log_density_terms(p: Process, m: toy.GaussianMixture, x: torch.Tensor, t: torch.Tensor):
    """d_t log p_t, the score s and the Laplacian of log p_t at (x, t), by autograd of the exact log-density."""
    x = x.clone().requires_grad_(True)
    t = t.clone().requires_grad_(True)
    logp = m.noised(p.alpha(t), p.sigma(t)).log_prob(x)
    (dt,) = torch.autograd.grad(logp.sum(), t, retain_graph=True)
    (s,) = torch.autograd.grad(logp.sum(), x, create_graph=True)
    lap = sum(torch.autograd.grad(s[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(x.shape[1]))
    return dt.detach(), s.detach(), lap.detach()


def _forward_residual(p: Process, m: toy.GaussianMixture, x: torch.Tensor, t: torch.Tensor):
    """The forward Fokker-Planck equation divided by p: d_t log p + d f + f x.s - (g^2/2)(lap + |s|^2), and its scale."""
    dt, s, lap = _log_density_terms(p, m, x, t)
    d = x.shape[1]
    f, g2 = p.f(t), p.g2(t)
    xs = (x * s).sum(-1)
    rhs = -d * f - f * xs + 0.5 * g2 * (lap + (s * s).sum(-1))
    scale = dt.abs() + d * f.abs() + (f * xs).abs() + 0.5 * g2 * (lap.abs() + (s * s).sum(-1))
    return dt - rhs, scale


def _reverse_residuals(p: Process, m: toy.GaussianMixture, x: torch.Tensor, t: torch.Tensor):
    """For the reverse SDE and the probability flow that ``p.reverse`` yields (for score and eps models, its two forms): the equation
    d_t p + div(b p) + (g_r^2/2) Laplacian p = 0 divided by p, with b the drift and g_r the diffusion, and its scale."""
    dt, s, lap = _log_density_terms(p, m, x, t)
    out = {}
    for probability_flow in (False, True):
        for prediction in ("score", "eps"):
            dynamics = ReverseSDE(p, ExactModel(m, p, prediction), probability_flow=probability_flow)
            xr = x.clone().requires_grad_(True)
            b = dynamics.drift(xr, t)
            div = sum(torch.autograd.grad(b[:, i].sum(), xr, retain_graph=True)[0][:, i] for i in range(x.shape[1]))
            g2r = dynamics.diffusion(t) ** 2
            bs = (b.detach() * s).sum(-1)
            res = dt + div + bs + 0.5 * g2r * (lap + (s * s).sum(-1))
            scale = dt.abs() + div.abs() + bs.abs() + 0.5 * g2r * (lap.abs() + (s * s).sum(-1))
            out[("ODE" if probability_flow else "SDE", prediction)] = (res, scale)
    return out


def _fp_check(reverse: bool, n: int, seed: int, processes: list | None) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    worst, where = 0.0, ""
    for mname, m in (("anisotropic", toy.anisotropic()), ("two_modes", toy.two_modes())):
        for name, p in processes or _processes():
            t = 0.02 + 0.96 * torch.rand(n, generator=gen, dtype=torch.float64)
            x = p.marginal(m, t).sample(generator=gen)
            cases = _reverse_residuals(p, m, x, t) if reverse else {("forward", ""): _forward_residual(p, m, x, t)}
            for (kind, pred), (res, scale) in cases.items():
                err = float((res.abs() / scale).max())
                if err > worst:
                    worst, where = err, f"{mname} {name} {kind} {pred}".rstrip()
    tol = 1e-9
    return Outcome(0.0, worst, tol, worst <= tol,
                   "relative to the sum of the absolute terms of the equation; float64 autograd derivatives",
                   {"worst_case": where})


@check(
    "process.fokker_planck",
    source="Song et al. 2021, App. D.1 (Fokker-Planck equation of Eq. 5)",
    claim="The exact marginal p_t satisfies d_t p = -div(f x p) + (g^2/2) Laplacian p at random (x, t)",
)
def fokker_planck(n: int = 128, seed: int = 12, processes: list | None = None) -> Outcome:
    """``processes`` replaces the (name, process) list (to show the check can fail)."""
    return _fp_check(False, n, seed, processes)


@check(
    "process.continuity",
    source="Song et al. 2021, Eq. 6, Eq. 13 and App. D.1",
    claim="The reverse SDE (drift b = f x - g^2 grad log p_t, diffusion g) and the probability-flow ODE (b = f x - (g^2/2) "
          "grad log p_t) that diffcheck.reverse.ReverseSDE gives, and every sampler runs, carry the exact marginals: "
          "d_t p + div(b p) + (g_r^2/2) Laplacian p = 0 (g_r = g, or 0 for the ODE), for score and eps models",
)
def continuity(n: int = 128, seed: int = 13, processes: list | None = None) -> Outcome:
    """``processes`` replaces the (name, process) list (to show the check can fail)."""
    return _fp_check(True, n, seed, processes)


@check(
    "process.subvp_below_vp",
    source="Song et al. 2021, Sec. 3.4 (sub-VP variance bounded by VP)",
    claim="The sub-VP marginal covariance is below the VP covariance at every t (same beta schedule)",
)
def subvp_below_vp(n: int = 100001) -> Outcome:
    t = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    vp, sub = VP(), SubVP()
    excess = (sub.sigma(t) ** 2 - vp.sigma(t) ** 2)
    same_alpha = float((sub.alpha(t) - vp.alpha(t)).abs().max())
    worst = float(excess.max())
    tol = 4 * torch.finfo(torch.float64).eps
    return Outcome("<= 0", worst, tol, worst <= tol and same_alpha == 0.0,
                   "sigma_sub^2 - sigma_vp^2 may exceed 0 only by rounding (a few ulp of numbers <= 1)",
                   {"largest_gap": float((-excess).max()), "grid_points": n})


@check(
    "param.conversions",
    source="Kingma et al. 2021; Salimans & Ho 2022 (v); Tweedie",
    claim="Converting any exact prediction (score, eps, x0, v) into another gives that other exact prediction",
)
def conversions(n: int = 128, seed: int = 14) -> Outcome:
    gen = torch.Generator().manual_seed(seed)
    m = toy.anisotropic()
    worst, where = 0.0, ""
    for name, p in _processes():
        for t in (0.05, 0.4, 0.9):
            exact = ExactModel(m, p)
            x = p.marginal(m, t).sample(n, gen)
            a, s = p.alpha(t), p.sigma(t)
            preds = {k: exact.with_prediction(k)(x, t) for k in param.PREDICTIONS}
            for src in param.PREDICTIONS:
                for dst in param.PREDICTIONS:
                    got = param.convert(preds[src], x, a, s, src, dst)
                    scale = 1.0 + x.norm(dim=-1, keepdim=True) * (1.0 / float(a) + 1.0 / float(s))
                    err = float(((got - preds[dst]).abs() / scale).max())
                    if err > worst:
                        worst, where = err, f"{name} t={t} {src}->{dst}"
    tol = 1e-10
    return Outcome(0.0, worst, tol, worst <= tol,
                   "relative to |x| (1/alpha + 1/sigma), the size of the terms the conversions combine; float64",
                   {"worst_case": where})


@tour_plot("schedules.png")
def _plot_schedules(path):
    from ..plots import plot_schedules

    return plot_schedules(path)


@tour_plot("forward_sde.png")
def _plot_forward(path):
    from ..plots import plot_forward_marginals

    gen = torch.Generator().manual_seed(0)
    m = toy.anisotropic()
    samples, exact = {}, {}
    for name, p, t in (("VP t=0.3", VP(), 0.3), ("sub-VP t=0.3", SubVP(), 0.3), ("VE t=0.5", VE(sigma_max=10.0), 0.5)):
        x = simulate_forward(p, m.sample(8000, gen), t, 1000, gen)
        samples[name] = x[:, 0].numpy()
        law = p.marginal(m.marginal([0]), t)
        g = torch.linspace(float(x[:, 0].min()), float(x[:, 0].max()), 400, dtype=torch.float64)[:, None]
        exact[name] = (g[:, 0].numpy(), law.log_prob(g).exp().numpy())
    return plot_forward_marginals(samples, exact, path, "Forward SDE by Euler-Maruyama vs the exact marginal (first coordinate)")
