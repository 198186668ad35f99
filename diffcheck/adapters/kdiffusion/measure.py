"""Measurements of one k-diffusion sampler against the exact answer: exact laws, orders, evaluations, agreement.

On a single-Gaussian target every sampler but the adaptive one is affine in its start and
noise, so its output law is exact (``affine_law``) and no Monte Carlo is needed. The
strong error of a deterministic sampler is measured against the exact flow map
(``gaussian_flow``) on fixed start points; the weak error of a stochastic one is the
distance sqrt(2 KL) of its exact output law from the exact law where it stops. Orders are
log-log slopes of these errors against the number of steps on Karras ladders that stop at
sigma_min > 0 (the final step into sigma = 0 is a first-order step by design).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

import toy
from toy.mixture import GaussianMixture

from ... import samplers as S
from ...exact import ExactModel
from ...process.continuous import LinearVE
from ...testing import stats as st
from ...testing.gaussian_law import affine_law
from ...testing.resolution import gaussian_distance, gaussian_law_check
from .catalogue import KSampler, run
from .denoiser import exact_denoiser, gaussian_flow, law
from .sigmas import karras

__all__ = ["TARGET_MEAN", "TARGET_COV", "target", "ladder", "output_law", "order", "comparator_law", "agreement",
           "preset_test", "adaptive_errors", "exact_law_verdict", "ORDER_FLOOR"]

TARGET_MEAN = (1.0, -0.5)
TARGET_COV = ((1.0, 0.6), (0.6, 0.5))
SIGMA_MAX, SIGMA_MIN = 80.0, 0.002
ORDER_FLOOR = 1e-11  # errors below this are float64 round-off, left out of order fits


def target() -> GaussianMixture:
    """The single-Gaussian target of the noise-free measurements."""
    return toy.single_gaussian(TARGET_MEAN, [list(r) for r in TARGET_COV])


def ladder(entry: KSampler, steps: int, *, to_zero: bool) -> torch.Tensor:
    """Karras' ladder of ``steps`` steps from 80 to 0.002 (then 0 with ``to_zero``; never for "range" samplers)."""
    if to_zero and entry.call == "sigmas":
        return karras(steps, SIGMA_MIN, SIGMA_MAX)
    return karras(steps + 1, SIGMA_MIN, SIGMA_MAX, append_zero=False)


def _nfe(entry: KSampler, steps: int) -> int | None:
    """DPM fast's budget: 3 per step plus 2, so that its last step is of order 2 (3k + 2 evaluations: k third-order steps, one second-order)."""
    return 3 * steps - 1 if entry.name == "dpm_fast" else None


def output_law(entry: KSampler, mixture: GaussianMixture, sigmas: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Exact (mean, cov) of the sampler's output from the exact law at sigmas[0], and its evaluations per sample."""
    den = exact_denoiser(mixture)
    start = law(mixture, float(sigmas[0]))
    calls = []

    def go(x, noise):
        den.calls = 0
        out = run(entry, den, x, sigmas, noise, nfe=_nfe(entry, steps))
        calls.append(den.calls)
        return out

    mean, cov = affine_law(go, start.mean(), start.covariance())
    return mean, cov, calls[0]


def _strong_error(entry: KSampler, mixture: GaussianMixture, sigmas: torch.Tensor, steps: int, x: torch.Tensor) -> tuple[float, int]:
    den = exact_denoiser(mixture)
    out = run(entry, den, x.clone(), sigmas, nfe=_nfe(entry, steps))
    ref = gaussian_flow(mixture.mean(), mixture.covariance(), x, float(sigmas[0]), float(sigmas[-1]))
    scale = math.sqrt(float(torch.trace(mixture.covariance())))
    return float((out - ref).norm(dim=1).pow(2).mean().sqrt()) / scale, den.calls


def order(entry: KSampler, steps: Sequence[int], *, mixture: GaussianMixture | None = None) -> dict:
    """Errors at each step count on ladders stopping at sigma_min, and the fitted order (strong for ODE samplers, weak for SDE ones)."""
    mix = mixture or target()
    x = law(mix, SIGMA_MAX).sample(64, torch.Generator().manual_seed(20240715))
    rows = []
    for n in steps:
        sig = ladder(entry, n, to_zero=False)
        if entry.stochastic:
            m, c, nfe = output_law(entry, mix, sig, n)
            ref = law(mix, float(sig[-1]))
            err = gaussian_distance(m, c, ref.mean(), ref.covariance())
        else:
            err, nfe = _strong_error(entry, mix, sig, n, x)
        rows.append({"steps": int(n), "error": err, "nfe": int(nfe)})
    kept = [r for r in rows if r["error"] > ORDER_FLOOR]
    fit = st.fit_order([r["steps"] for r in kept], [r["error"] for r in kept]) if len(kept) >= 2 else None
    return {"kind": "weak" if entry.stochastic else "strong", "rows": rows,
            "order": fit.order if fit else None, "r2": fit.r2 if fit else None, "nominal": entry.order}


def comparator_law(name: str, mixture: GaussianMixture, sigmas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact output law of diffcheck's own sampler on ``LinearVE`` with the ladder as its times (same start law)."""
    proc = LinearVE(float(sigmas[0]))
    model = ExactModel(mixture, proc, "eps")
    grid = sigmas / sigmas[0]
    runs = {
        "euler_ode": lambda x, nz: S.euler_ode(model, proc, x, grid),
        "heun_ode": lambda x, nz: S.heun_ode(model, proc, x, grid),
        "ddim_eta0": lambda x, nz: S.ddim(model, proc, x, grid, eta=0.0),
        "ddim_eta1": lambda x, nz: S.ddim(model, proc, x, grid, eta=1.0, generator=nz),
    }
    if name not in runs:
        raise ValueError(f"unknown comparator {name!r}")
    start = law(mixture, float(sigmas[0]))
    return affine_law(runs[name], start.mean(), start.covariance())


def agreement(entry: KSampler, steps: int) -> dict | None:
    """Distance between the exact output laws of the k-diffusion sampler and diffcheck's same algorithm, on the ladder to 0."""
    if entry.comparator is None:
        return None
    mix = target()
    sig = ladder(entry, steps, to_zero=True)
    m, c, _ = output_law(entry, mix, sig, steps)
    dm, dc = comparator_law(entry.comparator, mix, sig)
    dist = float((m - dm).norm()) / math.sqrt(float(torch.trace(dc))) + float((c - dc).norm()) / float(torch.trace(dc))
    return {"comparator": entry.comparator, "steps": int(steps), "distance": dist, "tolerance": 1e-9, "passed": dist <= 1e-9}


def exact_law_verdict(entry: KSampler, steps: int, *, n: int = 10_000, alpha: float = 1e-3) -> dict:
    """The sampler's exact output law on the ladder to 0 (to sigma_min for "range" samplers) against the exact law there."""
    mix = target()
    sig = ladder(entry, steps, to_zero=True)
    m, c, nfe = output_law(entry, mix, sig, steps)
    ref = law(mix, float(sig[-1]))
    v = gaussian_law_check(m, c, ref.mean(), ref.covariance(), n=n, alpha=alpha)
    return {"steps": int(steps), "ends_at": float(sig[-1]), "kl": v.kl, "resolution": v.resolution, "n": n, "alpha": alpha,
            "passed": v.passed, "nfe": nfe}


def preset_test(entry: KSampler, preset: str, steps: int, n: int, alpha: float, seed: int) -> dict:
    """A two-sample test of the sampler's output on a toy preset against the exact law where it stops (Monte Carlo)."""
    mix = toy.preset(preset)
    sig = ladder(entry, steps, to_zero=True)
    gen = torch.Generator().manual_seed(seed)
    x = law(mix, float(sig[0])).sample(n, gen)
    den = exact_denoiser(mix)
    noise = lambda like: torch.randn(like.shape, generator=gen, dtype=like.dtype)
    out = run(entry, den, x, sig, noise if entry.stochastic else None, nfe=_nfe(entry, steps))
    ref = law(mix, float(sig[-1]))
    finite = bool(torch.isfinite(out).all())
    if not finite:
        return {"preset": preset, "steps": steps, "n": n, "alpha": alpha, "passed": False, "p_value": None, "finite": False}
    res = st.two_sample_test(out, ref.sample(n, torch.Generator().manual_seed(seed + 1)), alpha=alpha, features=ref.log_prob,
                             generator=torch.Generator().manual_seed(seed + 2))
    return {"preset": preset, "steps": steps, "n": n, "alpha": alpha, "passed": bool(res.passed), "p_value": res.p_value,
            "finite": True}


def adaptive_errors(entry: KSampler, tolerances: Sequence[tuple[float, float]]) -> list[dict]:
    """The adaptive solver's strong error against the exact flow, and its evaluations, at each (rtol, atol)."""
    mix = target()
    x = law(mix, SIGMA_MAX).sample(64, torch.Generator().manual_seed(20240715))
    out = []
    for rtol, atol in tolerances:
        den = exact_denoiser(mix)
        sig = torch.tensor([SIGMA_MAX, SIGMA_MIN], dtype=torch.float64)
        y = run(entry, den, x.clone(), sig, rtol=rtol, atol=atol)
        ref = gaussian_flow(mix.mean(), mix.covariance(), x, SIGMA_MAX, SIGMA_MIN)
        err = float((y - ref).norm(dim=1).pow(2).mean().sqrt()) / math.sqrt(float(torch.trace(mix.covariance())))
        out.append({"rtol": rtol, "atol": atol, "error": err, "nfe": den.calls})
    return out


