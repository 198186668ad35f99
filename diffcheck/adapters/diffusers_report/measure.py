"""Measuring one diffusers configuration: exact output laws on a Gaussian target, Monte Carlo where a step is not affine, two-sample tests, orders and the verdict.

The output law is measured without Monte Carlo on a single-Gaussian target (every step is
affine there; ``affine_law``): its distance from the exact data law (started from the exact
marginal at the scheduler's first time, and from the scheduler's own prior as a pipeline
starts), and from the exact law at the time its last step lands on. The same numbers are
measured for a diffcheck sampler on the same grid, and the distance between the two output
laws says whether they agree. Orders come from log-log fits, against the number of steps,
of the solver error: the law of the state the last step starts from against the exact law
at its noise level. The distance of N(m, C) from N(m*, C*) is
|m - m*| / sqrt(tr C*) + |C - C*|_F / tr C*, invariant to the scale of the data.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import torch

import toy
from toy.mixture import GaussianMixture

from ...exact import ExactModel
from ...process.continuous import LinearVE
from ...samplers.base import SamplingError
from ...testing import stats as st
from ...testing.gaussian_law import NotAffineError, affine_law
from .. import diffusers as A
from .cases import (
    FLOAT32_AFFINE_RTOL,
    FLOAT32_AGREEMENT,
    FLOAT64_AFFINE_RTOL,
    FLOAT64_AGREEMENT,
    ORDER_FLOOR,
    ORDER_SLACK,
    TARGET_COV,
    TARGET_MEAN,
    Case,
)

__all__ = ["law_distance", "Setup", "setup", "run_scheduler", "run_comparator", "measure", "measure_monte_carlo",
           "two_sample", "fit_order", "measure_case"]


def law_distance(mean: torch.Tensor, cov: torch.Tensor, ref_mean: torch.Tensor, ref_cov: torch.Tensor) -> float:
    """|m - m*| / sqrt(tr C*) + |C - C*|_F / tr C*: a scale-free distance between Gaussian laws."""
    tr = float(torch.trace(ref_cov))
    return float((mean - ref_mean).norm()) / math.sqrt(tr) + float((cov - ref_cov).norm()) / tr




@dataclass
class Setup:
    """The scheduler after ``set_timesteps``, its process, grid, and the laws a run starts from and ends at."""

    scheduler: Any
    process: Any
    kind: str
    grid: torch.Tensor
    start: Any  # exact law of the first state, in the scheduler's sample space
    prior_std: float
    end: Any  # exact law at the grid's last time, in the scheduler's sample space
    sigmas: list[float] | None


def setup(case: Case, mixture: GaussianMixture, steps: int) -> Setup:
    """Build the scheduler of ``case`` for ``steps`` and the exact laws at the ends of its walk."""
    sched = A.build(case.config)
    process = A.process_for(sched)
    A.set_timesteps(sched, steps)
    kind = A.kind(sched)
    grid = A.walk_grid(sched, process)
    sigmas = None
    if kind == "sigma":
        sigmas = A.consecutive_unique([float(s) for s in sched.sigmas])
        start, end = mixture.noised(1.0, sigmas[0]), mixture.noised(1.0, sigmas[-1])
    elif kind == "ve":
        start, end = mixture.noised(1.0, float(sched.sigmas[0])), mixture.noised(1.0, 0.0)
    else:
        start = process.marginal(mixture, grid[0])
        end = process.marginal(mixture, grid[-1])
    return Setup(sched, process, kind, grid, start, float(sched.init_noise_sigma), end, sigmas)


def run_scheduler(case: Case, mixture: GaussianMixture, x: torch.Tensor, steps: int, noise: Any, index_shift: int = 0,
                  time_from: str = "timestep") -> A.Run:
    """The scheduler's output from ``x`` with the exact model."""
    return A.sample(case.config, mixture, x, steps, noise=noise, index_shift=index_shift, time_from=time_from)


def run_comparator(case: Case, su: Setup, mixture: GaussianMixture, x: torch.Tensor, noise: Any, keep: int | None = None) -> torch.Tensor:
    """The comparator's output from ``x`` (in the scheduler's sample space), in the same space.

    ``keep`` walks only the first ``keep`` times of the grid (the state a last step starts from).
    """
    comp = case.comparator
    pred = comp.prediction or case.config.prediction
    grid = su.grid if keep is None else su.grid[:keep]
    if comp.space == "sigma":
        sig = torch.tensor(su.sigmas if keep is None else su.sigmas[:keep], dtype=torch.float64)
        proc = LinearVE(float(sig[0]))
        return comp.run(ExactModel(mixture, proc, pred), proc, x, sig / sig[0], noise)
    a0 = A.sample_space_alpha(su.scheduler, su.process, float(grid[0])) if su.kind == "sigma" else 1.0
    a1 = A.sample_space_alpha(su.scheduler, su.process, float(grid[-1])) if su.kind == "sigma" else 1.0
    return comp.run(ExactModel(mixture, su.process, pred), su.process, x * a0, grid, noise) / a1


def _state_law(su: Setup, mixture: GaussianMixture, call: A.Call):
    """The exact law, in the scheduler's sample space, of the state a model call was made at."""
    if su.kind == "index":
        return su.process.marginal(mixture, call.state_time)
    a = float(su.process.alpha(torch.tensor(call.state_time, dtype=torch.float64)))
    s = float(su.process.sigma(torch.tensor(call.state_time, dtype=torch.float64)))
    return mixture.noised(1.0, s / a)


def measure(case: Case, steps: int, *, index_shift: int = 0, target: GaussianMixture | None = None) -> dict:
    """Noise-free errors of the scheduler and its comparator at ``steps`` on a Gaussian target (JSON-safe).

    ``error``: the output law's distance from the data law, started from the exact marginal at
    the first time; ``error_prior``: the same started from the scheduler's prior N(0,
    init_noise_sigma^2 I); ``error_end``: distance from the exact law where the last step lands;
    ``error_solver``: the state the last step starts from against the exact law at its noise
    level (the discretisation error of all steps but the last, whose order is fitted).
    """
    m = target or toy.single_gaussian(TARGET_MEAN, TARGET_COV)
    n_steps = steps * case.steps_scale
    su = setup(case, m, n_steps)
    rtol = FLOAT64_AFFINE_RTOL if case.arithmetic == "float64" else FLOAT32_AFFINE_RTOL
    data_mean, data_cov = m.mean(), m.covariance()
    end_mean, end_cov = su.end.mean(), su.end.covariance()
    s_mean, s_cov = su.start.mean(), su.start.covariance()
    p_mean = torch.zeros_like(s_mean)
    p_cov = su.prior_std**2 * torch.eye(s_mean.numel(), dtype=torch.float64)
    calls: list[A.Call] = []

    def dif(x, nz):
        r = run_scheduler(case, m, x, n_steps, nz, index_shift)
        calls[:] = r.calls
        return r.samples

    def dif_last(x, nz):
        return run_scheduler(case, m, x, n_steps, nz, index_shift).before_last

    row: dict[str, Any] = {"steps": n_steps, "first_time": float(su.grid[0]), "last_time": float(su.grid[-1])}
    try:
        mean, cov = affine_law(dif, s_mean, s_cov, rtol=rtol)
    except (SamplingError, NotAffineError) as err:  # non-finite samples; a step that is not affine on a Gaussian target
        row.update(failed=f"{type(err).__name__}: {err}")
        return row
    pmean, pcov = affine_law(dif, p_mean, p_cov, verify=False)
    lmean, lcov = affine_law(dif_last, s_mean, s_cov, verify=False)
    state = _state_law(su, m, calls[-1])
    row.update(nfe=len(calls), error=law_distance(mean, cov, data_mean, data_cov),
               error_end=law_distance(mean, cov, end_mean, end_cov),
               error_prior=law_distance(pmean, pcov, data_mean, data_cov),
               error_solver=law_distance(lmean, lcov, state.mean(), state.covariance()),
               last_state_time=calls[-1].state_time)
    cmean, ccov = affine_law(lambda x, nz: run_comparator(case, su, m, x, nz), s_mean, s_cov, rtol=FLOAT64_AFFINE_RTOL)
    cpmean, cpcov = affine_law(lambda x, nz: run_comparator(case, su, m, x, nz), p_mean, p_cov, verify=False)
    comp = {"error": law_distance(cmean, ccov, data_mean, data_cov), "error_end": law_distance(cmean, ccov, end_mean, end_cov),
            "error_prior": law_distance(cpmean, cpcov, data_mean, data_cov), "error_solver": None}
    keep = int((su.grid >= calls[-1].state_time - 1e-12).sum())
    if keep >= 2 and abs(float(su.grid[keep - 1]) - calls[-1].state_time) < 1e-9:
        kmean, kcov = affine_law(lambda x, nz: run_comparator(case, su, m, x, nz, keep), s_mean, s_cov, verify=False)
        comp["error_solver"] = law_distance(kmean, kcov, state.mean(), state.covariance())
    row["diffcheck"] = comp
    row["agreement"] = law_distance(mean, cov, cmean, ccov)
    return row


def measure_monte_carlo(case: Case, steps: int, n: int, seed: int, target: GaussianMixture | None = None) -> dict:
    """Errors estimated from ``n`` samples where the scheduler is not affine, with the Monte Carlo floor of the estimate."""
    m = target or toy.single_gaussian(TARGET_MEAN, TARGET_COV)
    n_steps = steps * case.steps_scale
    su = setup(case, m, n_steps)
    gen = torch.Generator().manual_seed(seed)
    x = su.start.sample(n, gen)
    y = run_scheduler(case, m, x, n_steps, torch.Generator().manual_seed(seed + 1)).samples
    z = run_comparator(case, su, m, x, torch.Generator().manual_seed(seed + 1))
    data_mean, data_cov = m.mean(), m.covariance()
    tr = float(torch.trace(data_cov))
    # expected distance of an n-sample estimate from the truth: E|m_hat - m| ~ sqrt(tr C / n),
    # E|C_hat - C|_F ~ sqrt(sum_ij (C_ii C_jj + C_ij^2) / n)
    diag = torch.diagonal(data_cov)
    floor = math.sqrt(tr / n) / math.sqrt(tr) + math.sqrt(float((diag[:, None] * diag[None, :] + data_cov**2).sum()) / n) / tr
    return {"steps": n_steps, "n": n, "error": law_distance(y.mean(0), torch.cov(y.T), data_mean, data_cov),
            "diffcheck": {"error": law_distance(z.mean(0), torch.cov(z.T), data_mean, data_cov)},
            "monte_carlo_floor": floor, "agreement": law_distance(y.mean(0), torch.cov(y.T), z.mean(0), torch.cov(z.T))}


def two_sample(case: Case, preset: str, steps: int, n: int, alpha: float, seed: int, index_shift: int = 0) -> dict:
    """Two-sample tests of the scheduler's and the comparator's samples (from the exact marginal at the first time)
    against an independent sample of the exact mixture (4 n points), each at false-alarm rate ``alpha``."""
    m = getattr(toy, preset)()
    n_steps = steps * case.steps_scale
    su = setup(case, m, n_steps)
    x = su.start.sample(n, torch.Generator().manual_seed(seed))
    ref = m.sample(4 * n, torch.Generator().manual_seed(seed + 2))
    out = {"preset": preset, "steps": n_steps, "n": n, "reference_n": 4 * n, "alpha": alpha}
    try:
        y = run_scheduler(case, m, x, n_steps, torch.Generator().manual_seed(seed + 1), index_shift).samples
    except SamplingError as err:
        return dict(out, passed=False, failed=str(err))
    res = st.two_sample_test(y, ref, alpha=alpha, generator=torch.Generator().manual_seed(seed + 3), features=m.log_prob)
    z = run_comparator(case, su, m, x, torch.Generator().manual_seed(seed + 1))
    dc = st.two_sample_test(z, ref, alpha=alpha, generator=torch.Generator().manual_seed(seed + 3), features=m.log_prob)
    return dict(out, passed=bool(res.passed), p_value=res.p_value, statistic=res.statistic,
                diffcheck={"passed": bool(dc.passed), "p_value": dc.p_value, "statistic": dc.statistic})


def fit_order(steps: Sequence[int], errors: Sequence[float | None], floor: float) -> dict | None:
    """Order fit over the points above round-off (None when fewer than 2 remain)."""
    pts = [(s, e) for s, e in zip(steps, errors) if e is not None and e > floor]
    if len(pts) < 2:
        return None
    fit = st.fit_order([p[0] for p in pts], [p[1] for p in pts])
    return {"order": fit.order, "stderr": fit.stderr, "points": len(pts)}


def _verdict(case: Case, rows: list[dict], orders: dict) -> tuple[str, list[str]]:
    """"ok", "discrepancy" (no agreement where expected, or no convergence) or "failed" (non-finite samples)."""
    failed = [r["failed"] for r in rows if "failed" in r]
    if failed:
        return "failed", failed[:1]
    notes, verdict = [], "ok"
    tol = FLOAT64_AGREEMENT if case.arithmetic == "float64" else FLOAT32_AGREEMENT
    worst = max(r["agreement"] for r in rows)
    if case.expect_match and worst > tol:
        verdict = "discrepancy"
        notes.append(f"runs the algorithm of {case.comparator.name} on the same grid, yet the output laws differ by up to {worst:.3g} (round-off tolerance {tol:g})")
    conv = fit_order([r["steps"] for r in rows], [r["error_end"] for r in rows], ORDER_FLOOR[case.arithmetic])
    if conv is not None and conv["order"] < 0.5:
        verdict = "discrepancy"
        notes.append(f"does not converge to the exact law where its last step lands (fitted order {conv['order']:.2f})")
    fit = orders.get("diffusers")
    if fit is not None and fit["order"] < case.order - ORDER_SLACK:
        notes.append(f"solver error falls at order {fit['order']:.2f} over these steps, nominal {case.order:g}")
    return verdict, notes


def measure_case(case: Case, steps: Sequence[int], *, mc_n: int = 4000, seed: int = 0, index_shift: int = 0) -> dict:
    """All step counts of one configuration, its fitted orders and its verdict (JSON-safe)."""
    t0 = time.perf_counter()
    orders: dict[str, Any] = {}
    if case.affine:
        rows = [measure(case, s, index_shift=index_shift) for s in steps]
        if all("failed" not in r for r in rows):
            n_steps = [r["steps"] for r in rows]
            orders["diffusers"] = fit_order(n_steps, [r["error_solver"] for r in rows], ORDER_FLOOR[case.arithmetic])
            orders["diffcheck"] = fit_order(n_steps, [r["diffcheck"]["error_solver"] for r in rows], ORDER_FLOOR["float64"])
        verdict, notes = _verdict(case, rows, orders)
    else:
        rows = [measure_monte_carlo(case, s, mc_n, seed + 17 * i) for i, s in enumerate(steps)]
        floor = 3.0 * max(r["monte_carlo_floor"] for r in rows)
        n_steps = [r["steps"] for r in rows]
        orders["diffusers"] = fit_order(n_steps, [r["error"] for r in rows], floor)
        orders["diffcheck"] = fit_order(n_steps, [r["diffcheck"]["error"] for r in rows], floor)
        verdict = "monte-carlo"
        notes = [f"not affine in its start and noise (batch-averaged corrector norms): Monte Carlo estimates from {mc_n} samples, "
                 f"whose own error is about {floor / 3:.3g}; points below three times that are left out of order fits"]
    return {
        "name": case.name,
        "scheduler": case.config.to_json(),
        "process": repr(A.process_for(A.build(case.config))),
        "prediction": case.config.prediction,
        "comparator": {"name": case.comparator.name, "description": case.comparator.description},
        "expect_match": case.expect_match,
        "nominal_order": case.order,
        "arithmetic": case.arithmetic,
        "note": case.note,
        "rows": rows,
        "orders": orders,
        "verdict": verdict,
        "notes": notes,
        "seconds": round(time.perf_counter() - t0, 3),
    }

