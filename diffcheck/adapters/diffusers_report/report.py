"""The diffusers report: every configuration measured, two-sample tests on mixtures, the trap probes, assembled into one JSON-safe dictionary.

``verify_diffusers`` is the entry point; ``format_report`` (``text``) prints what it returns.
"""

from __future__ import annotations

import datetime
import platform
import sys
import time
from typing import Callable, Sequence

import torch
from tqdm import tqdm

import toy

from ...checks import Record
from ...io import write_json
from .. import diffusers as A
from . import probes_steps as P
from . import probes_tables as T
from .cases import DEFAULT_STEPS, QUICK_STEPS, TARGET_COV, TARGET_MEAN, cases, quick_cases
from .findings import configuration_finding, to_json
from .measure import measure_case, two_sample

__all__ = ["verify_diffusers"]


def _probes(steps: Sequence[int], quick: bool) -> list[Callable[[], Record]]:
    """The trap probes: in quick mode the cheap ones at one small step count each."""
    if quick:
        n = steps[0]
        return [lambda: T.probe_leading((n,), schedules=("linear",)), lambda: T.probe_ddim_previous((n,), extra=()),
                lambda: T.probe_ddpm_final_noise((n,), variances=("fixed_large",)), lambda: T.probe_float32_tables(),
                lambda: T.probe_zero_snr_patch()]
    big = tuple(s for s in steps if s >= 50) or tuple(steps[-1:])
    return [lambda: T.probe_leading((10, 50)), lambda: T.probe_terminal_snr(50), lambda: T.probe_zero_snr_patch(),
            lambda: T.probe_final_alpha(big), lambda: T.probe_ddim_previous((10, 50)), lambda: T.probe_ddpm_final_noise(big),
            lambda: T.probe_float32_tables(), lambda: P.probe_pndm(tuple(steps[::2])), lambda: P.probe_second_order_v((10, 50)),
            lambda: P.probe_karras_rounding(steps), lambda: P.probe_learned_range(steps), lambda: P.probe_score_sde_ve()]


def _not_measured() -> list[dict]:
    """Configurations the report leaves out, and why."""
    import importlib.util

    sde = ("it needs torchsde, which is not installed" if importlib.util.find_spec("torchsde") is None else
           "it draws its noise from torchsde's Brownian tree, which the adapter does not route; only Monte Carlo would apply")
    return [
        {"scheduler": "DPMSolverSDEScheduler", "reason": sde + "; DPM-Solver++ SDE is measured through "
                                                               "DPMSolverMultistepScheduler(algorithm_type='sde-dpmsolver++')"},
        {"scheduler": "EulerDiscreteScheduler / EulerAncestralDiscreteScheduler / DPMSolverMultistepScheduler with rescale_betas_zero_snr",
         "reason": "their table sets alpha_bar_T = 2^-24 above alpha_bar_{T-1}: not a forward process (see finding zero-snr-2^-24)"},
    ]


def _versions() -> dict:
    diffusers = A.require_diffusers()
    return {"diffusers": diffusers.__version__, "torch": torch.__version__, "python": platform.python_version()}


def verify_diffusers(
    schedulers: Sequence[str] | None = None,
    steps: Sequence[int] = DEFAULT_STEPS,
    out: str | None = None,
    progress: bool = True,
    quick: bool = False,
    *,
    mixtures: Sequence[str] | None = None,
    n_two_sample: int | None = None,
    alpha: float = 1e-3,
    index_shift: int = 0,
    probes: bool = True,
) -> dict:
    """Measure diffusers' schedulers against the exact answer and diffcheck's samplers; JSON-safe, written atomically to ``out``.

    ``schedulers`` keeps configurations whose name or scheduler class contains one of the
    strings (e.g. ["DDIM", "heun"]); ``quick`` measures a representative subset at
    ``QUICK_STEPS`` with smaller Monte Carlo tests and the cheaper probes. ``mixtures``
    names toy presets for the two-sample tests (default: anisotropic and narrow; quick:
    anisotropic), run at the largest step count with ``n_two_sample`` samples each, at a
    total false-alarm rate ``alpha`` (Bonferroni). ``index_shift`` mis-maps every model
    time by that many training indices (to show that the report notices).
    """
    if steps == DEFAULT_STEPS and quick:
        steps = QUICK_STEPS
    steps = tuple(int(s) for s in steps)
    if len(steps) < 2 or any(s < 2 for s in steps) or list(steps) != sorted(set(steps)):
        raise ValueError(f"steps must be at least two increasing step counts >= 2, got {steps}")
    chosen = quick_cases() if quick else cases()
    if schedulers:
        keys = [str(k).lower() for k in schedulers]
        chosen = [c for c in chosen if any(k in c.name.lower() or k in c.config.scheduler.lower() for k in keys)]
        if not chosen:
            raise ValueError(f"schedulers: no configuration matches {list(schedulers)}")
    mixtures = tuple(mixtures) if mixtures is not None else (("anisotropic",) if quick else ("anisotropic", "narrow"))
    for name in mixtures:
        if not callable(getattr(toy, name, None)):
            raise ValueError(f"mixtures: unknown toy preset {name!r}")
    n_mc = n_two_sample or (500 if quick else 2000)
    t0 = time.perf_counter()
    results = []
    for case in tqdm(chosen, desc="verify-diffusers", file=sys.stderr, disable=not progress):
        res = measure_case(case, steps, mc_n=n_mc, index_shift=index_shift)
        results.append(res)
    tests = [(r, c, p) for r, c in zip(results, chosen) for p in mixtures]
    each = alpha / max(len(tests), 1)
    for res, case, preset in tqdm(tests, desc="two-sample tests", file=sys.stderr, disable=not progress):
        res.setdefault("two_sample", []).append(two_sample(case, preset, steps[-1], n_mc, each, seed=1000 + len(res.get("two_sample", []))))
    findings: list[Record] = []
    if probes and index_shift == 0:
        for run in tqdm(_probes(steps, quick), desc="probes", file=sys.stderr, disable=not progress):
            findings.append(run())
        if P.higher_order(results):
            findings.append(P.probe_final_step_cap(results))
    findings += [configuration_finding(res) for res in results if res["verdict"] in ("discrepancy", "failed")]
    report = {
        "tool": "diffcheck verify-diffusers",
        "not_measured": _not_measured(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "quick": bool(quick),
        "steps": list(steps),
        "index_shift": index_shift,
        "metric": "|m - m*| / sqrt(tr C*) + |C - C*|_F / tr C* between Gaussian laws N(m, C) and N(m*, C*)",
        "target": {"mean": list(TARGET_MEAN), "cov": [list(r) for r in TARGET_COV]},
        "two_sample": {"mixtures": list(mixtures), "n": n_mc, "alpha_total": alpha, "alpha_each": each,
                       "start": "the exact marginal at the scheduler's first time"},
        "configurations": results,
        "findings": [to_json(f) for f in findings],
        "summary": {
            "configurations": len(results),
            "ok": sum(r["verdict"] == "ok" for r in results),
            "discrepancies": [r["name"] for r in results if r["verdict"] == "discrepancy"],
            "failed": [r["name"] for r in results if r["verdict"] == "failed"],
            "two_sample_rejected": [f"{r['name']}@{t['preset']}" for r in results for t in r.get("two_sample", []) if not t["passed"]],
            "two_sample_rejected_where_diffcheck_passed": [f"{r['name']}@{t['preset']}" for r in results for t in r.get("two_sample", [])
                                                           if not t["passed"] and t.get("diffcheck", {}).get("passed")],
            "findings_with_discrepancy": [f.id for f in findings if not f.passed],
        },
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if out is not None:
        write_json(out, report)
    return report
