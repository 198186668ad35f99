"""The diffusers report: every configuration measured, two-sample tests on mixtures, the trap probes, assembled into one JSON-safe dictionary.

``verify_diffusers`` is the entry point; ``format_report`` (``text``) prints what it returns.
A configuration or probe that the installed diffusers cannot express (an older release
without the scheduler class or an option) is reported "not applicable" with the reason; one
whose run raises (an older API the adapter cannot drive) is reported as an error with its
message; the rest run.
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
from . import probes_state as Z
from . import probes_steps as P
from . import probes_tables as T
from .cases import DEFAULT_STEPS, QUICK_STEPS, TARGET_COV, TARGET_MEAN, Case, cases, quick_cases
from .findings import configuration_finding, to_json
from .measure import measure_case, two_sample

__all__ = ["verify_diffusers"]


Probe = tuple[Callable[..., Record], tuple, dict]


def _probes(steps: Sequence[int], quick: bool) -> list[Probe]:
    """The trap probes with their arguments: in quick mode the cheap ones at one small step count each."""
    if quick:
        n = steps[0]
        return [(T.probe_leading, ((n,),), {"schedules": ("linear",)}), (T.probe_ddim_previous, ((n,),), {"extra": ()}),
                (T.probe_ddpm_final_noise, ((n,),), {"variances": ("fixed_large",)}), (T.probe_float32_tables, (), {}),
                (T.probe_zero_snr_patch, (), {}), (Z.probe_add_noise_dtype, (n,), {}), (Z.probe_few_steps, (), {"quick": True})]
    big = tuple(s for s in steps if s >= 50) or tuple(steps[-1:])
    return [(T.probe_leading, ((10, 50),), {}), (T.probe_terminal_snr, (50,), {}), (T.probe_zero_snr_patch, (), {}),
            (T.probe_final_alpha, (big,), {}), (T.probe_ddim_previous, ((10, 50),), {}), (T.probe_ddpm_previous, (), {}),
            (T.probe_ddpm_final_noise, (big,), {}),
            (T.probe_float32_tables, (), {}), (P.probe_pndm, (tuple(steps[::2]),), {}), (P.probe_second_order_v, ((10, 50),), {}),
            (P.probe_karras_rounding, (steps,), {}), (P.probe_learned_range, (steps,), {}), (P.probe_score_sde_ve, (), {}),
            (Z.probe_add_noise_dtype, (), {}), (Z.probe_few_steps, (), {}), (Z.probe_sigma_range, (), {})]


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def _run_probe(probe: Probe) -> Record | dict:
    """A probe's Record, or a dict saying why it could not run (not applicable, or an error)."""
    fn, args, kwargs = probe
    head = {"id": fn.check_id, "title": fn.claim, "configurations": list(getattr(fn, "configurations", []))}
    try:
        return fn(*args, **kwargs)
    except A.NotApplicable as err:
        return dict(head, status="not applicable", reason=str(err))
    except Exception as err:  # an older release's API that the probe cannot drive: reported, the report goes on
        return dict(head, status="error", reason=_error(err))


def _case_head(case: Case) -> dict:
    return {"name": case.name, "scheduler": case.config.to_json(), "comparator": {"name": case.comparator.name,
            "description": case.comparator.description}, "expect_match": case.expect_match, "nominal_order": case.order,
            "arithmetic": case.arithmetic, "note": case.note, "rows": [], "orders": {}, "notes": []}


def _measure(case: Case, steps: Sequence[int], mc_n: int, index_shift: int) -> dict:
    """``measure_case``, or the configuration marked "not applicable" or "error" with the reason."""
    if not case.applicable:
        return dict(_case_head(case), verdict="not applicable", reason=case.config.reason)
    t0 = time.perf_counter()
    try:
        return measure_case(case, steps, mc_n=mc_n, index_shift=index_shift)
    except A.NotApplicable as err:
        return dict(_case_head(case), verdict="not applicable", reason=str(err))
    except Exception as err:  # an older release's API that the adapter cannot drive: reported, the report goes on
        return dict(_case_head(case), verdict="error", reason=_error(err), seconds=round(time.perf_counter() - t0, 3))


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
    import numpy

    return {"diffusers": diffusers.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


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
    probes: bool | Sequence[str] = True,
) -> dict:
    """Measure diffusers' schedulers against the exact answer and diffcheck's samplers; JSON-safe, written atomically to ``out``.

    ``schedulers`` keeps configurations whose name or scheduler class contains one of the
    strings (e.g. ["DDIM", "heun"]); ``quick`` measures a representative subset at
    ``QUICK_STEPS`` with smaller Monte Carlo tests and the cheaper probes. ``mixtures``
    names toy presets for the two-sample tests (default: anisotropic and narrow; quick:
    anisotropic), run at the largest step count with ``n_two_sample`` samples each, at a
    total false-alarm rate ``alpha`` (Bonferroni). ``index_shift`` mis-maps every model
    time by that many training indices (to show that the report notices). ``schedulers=[]``
    measures no configuration; ``probes`` is True (all), False (none) or the ids of the probes to run.
    """
    if steps == DEFAULT_STEPS and quick:
        steps = QUICK_STEPS
    steps = tuple(int(s) for s in steps)
    if len(steps) < 2 or any(s < 2 for s in steps) or list(steps) != sorted(set(steps)):
        raise ValueError(f"steps must be at least two increasing step counts >= 2, got {steps}")
    chosen = quick_cases() if quick else cases()
    if schedulers is not None and len(schedulers) == 0:
        chosen = []
    elif schedulers:
        keys = [str(k).lower() for k in schedulers]
        chosen = [c for c in chosen if any(k in c.name.lower() or k in c.config.scheduler.lower() for k in keys)]
        if not chosen:
            raise ValueError(f"schedulers: no configuration matches {list(schedulers)}")
    planned = _probes(steps, quick)
    if not isinstance(probes, bool):
        wanted = [str(p) for p in probes]
        known = {fn.check_id for fn, _, _ in planned}
        if any(p not in known for p in wanted):
            raise ValueError(f"probes: unknown ids {sorted(set(wanted) - known)}; known: {sorted(known)}")
        planned = [p for p in planned if p[0].check_id in wanted]
    mixtures = tuple(mixtures) if mixtures is not None else (("anisotropic",) if quick else ("anisotropic", "narrow"))
    for name in mixtures:
        if not callable(getattr(toy, name, None)):
            raise ValueError(f"mixtures: unknown toy preset {name!r}")
    n_mc = n_two_sample or (500 if quick else 2000)
    t0 = time.perf_counter()
    results = []
    for case in tqdm(chosen, desc="verify-diffusers", file=sys.stderr, disable=not progress):
        results.append(_measure(case, steps, n_mc, index_shift))
    measured = [(r, c) for r, c in zip(results, chosen) if r["verdict"] not in ("not applicable", "error")]
    tests = [(r, c, p) for r, c in measured for p in mixtures]
    each = alpha / max(len(tests), 1)
    for res, case, preset in tqdm(tests, desc="two-sample tests", file=sys.stderr, disable=not progress):
        res.setdefault("two_sample", []).append(two_sample(case, preset, steps[-1], n_mc, each, seed=1000 + len(res.get("two_sample", []))))
    findings: list[Record] = []
    skipped: list[dict] = []
    if probes is not False and index_shift == 0:
        for probe in tqdm(planned, desc="probes", file=sys.stderr, disable=not progress):
            got = _run_probe(probe)
            (findings if isinstance(got, Record) else skipped).append(got)
        if P.higher_order(results):
            findings.append(P.probe_final_step_cap(results))
    findings += [configuration_finding(res) for res in results if res["verdict"] in ("discrepancy", "failed")]
    by = lambda v: [r["name"] for r in results if r["verdict"] == v]
    report = {
        "tool": "diffcheck verify-diffusers",
        "not_measured": _not_measured(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "quick": bool(quick),
        "selection": {"schedulers": None if schedulers is None else list(schedulers),
                      "probes": probes if isinstance(probes, bool) else list(probes)},
        "steps": list(steps),
        "index_shift": index_shift,
        "metric": "|m - m*| / sqrt(tr C*) + |C - C*|_F / tr C* between Gaussian laws N(m, C) and N(m*, C*)",
        "target": {"mean": list(TARGET_MEAN), "cov": [list(r) for r in TARGET_COV]},
        "two_sample": {"mixtures": list(mixtures), "n": n_mc, "alpha_total": alpha, "alpha_each": each,
                       "start": "the exact marginal at the scheduler's first time"},
        "configurations": results,
        "findings": [to_json(f) for f in findings],
        "findings_not_run": skipped,
        "summary": {
            "configurations": len(results),
            "ok": sum(r["verdict"] == "ok" for r in results),
            "discrepancies": by("discrepancy"),
            "failed": by("failed"),
            "not_applicable": by("not applicable"),
            "errors": by("error"),
            "two_sample_rejected": [f"{r['name']}@{t['preset']}" for r in results for t in r.get("two_sample", []) if not t["passed"]],
            "two_sample_rejected_where_diffcheck_passed": [f"{r['name']}@{t['preset']}" for r in results for t in r.get("two_sample", [])
                                                           if not t["passed"] and t.get("diffcheck", {}).get("passed")],
            "findings_with_discrepancy": [f.id for f in findings if not f.passed],
            "findings_not_applicable": [f["id"] for f in skipped if f["status"] == "not applicable"],
            "findings_with_errors": [f["id"] for f in skipped if f["status"] == "error"],
        },
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if out is not None:
        write_json(out, report)
    return report
