"""The generic checks run on every zoo variant, and the catch table.

None is written for one bug: each is a public check of diffcheck, applied alike to all.

- ``finite``: the output of a batch from the start law is finite.
- ``grid``: the noise levels walked are a ladder (``check_sigmas``: strictly decreasing,
  non-negative, no zero-size step), start at the start law's level and end at the level
  the sampler is meant to end at (0: the data), and span the range it was configured with.
- ``law``: the exact output law on the Gaussian target (``affine_law``) against the exact
  law where the sampler ends, within the resolution of a level-1e-3 test on 10^4 samples
  (``gaussian_law_check``). Noise-free: it has no false alarms; a variant either is or is not
  within the resolution.
  It applies where the configuration's own discretization error is below that resolution
  (checked on the fixed form); a few-step configuration is judged by the other checks.
- ``discrete``: the exact Gaussian law of the discrete sampler. Where diffcheck has the
  algorithm the variant runs (DDIM, DDPM, Euler, Heun), its exact output law on the grid the
  configuration asks for, from the process's exact law at the grid's start
  (``diffcheck.zoo.references``), against the variant's, within the same resolution. A
  correct implementation agrees to round-off at any step count.
- ``order``: where the sampler's theory gives an order, the slope of sqrt(2 KL) of its exact
  output law from the exact law at its end sigma over the step counts, at least order - 0.3,
  on ladders whose log-sigma steps alternate h, 2h (``alternating``): step ratios that do not
  tend to 1 expose wrong step-ratio terms that smooth ladders hide.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Sequence

import torch
from tqdm import tqdm

from ..adapters.kdiffusion.denoiser import law
from ..adapters.kdiffusion.sigmas import check_sigmas
from ..testing import stats as st
from ..testing.gaussian_law import NotAffineError, affine_law
from ..testing.resolution import gaussian_distance, gaussian_law_check
from .catalogue import ENTRIES, Entry, Variant

__all__ = ["CHECKS", "run_checks", "check_entry", "zoo_table", "format_table", "LAW_N", "LAW_ALPHA", "ORDER_BAND"]

CHECKS = ("finite", "grid", "law", "discrete", "order")
LAW_N, LAW_ALPHA, ORDER_BAND = 10_000, 1e-3, 0.3


def _noise(seed: int):
    gen = torch.Generator().manual_seed(seed)
    return lambda like: torch.randn(like.shape, generator=gen, dtype=torch.float64).to(like.dtype)


def _finite(v: Variant) -> dict:
    mean, cov = v.start
    root = torch.linalg.cholesky(cov)
    z = torch.randn(64, mean.numel(), generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    x = mean + z @ root.T
    try:
        with torch.no_grad():
            out = v.run(x, _noise(12))
    except (ValueError, FloatingPointError) as err:  # a model or check refused a non-finite state
        if "NaN" not in str(err) and "inf" not in str(err) and "finite" not in str(err):
            raise
        return {"passed": False, "figure": f"a non-finite state was reached ({err})"}
    bad = int((~torch.isfinite(out)).any(-1).sum())
    return {"passed": bad == 0, "figure": f"{bad} of 64 outputs non-finite"}


def _grid(v: Variant) -> dict | None:
    if v.levels is None and v.walk is None:
        return None
    problems = []
    if v.walk is not None:
        breaks = [i for i in range(1, len(v.walk)) if v.walk[i][0] != v.walk[i - 1][1]]
        if breaks:
            i = breaks[0]
            problems.append(f"{len(breaks)} steps do not start where the last one landed (step {i}: lands at sigma "
                            f"{v.walk[i - 1][1]:.6g}, next starts at {v.walk[i][0]:.6g})")
        levels = [v.walk[0][0]] + [b for _, b in v.walk]
    else:
        levels = v.levels
    try:
        check_sigmas(levels, "levels")
    except ValueError as err:
        problems.append(str(err))
    if v.configured is not None:
        hi, lo = v.configured
        pos = [s for s in levels if s > 0]
        if abs(pos[0] - hi) > 1e-6 * hi:
            problems.append(f"starts at sigma {pos[0]:.6g}, configured {hi:.6g}")
        if abs(pos[-1] - lo) > 1e-6 * lo:
            problems.append(f"its smallest level is {pos[-1]:.6g}, configured sigma_min {lo:.6g}")
    if levels[-1] != v.end_sigma:
        problems.append(f"ends at sigma {levels[-1]:.6g}, not {v.end_sigma:g}")
    return {"passed": not problems, "figure": "; ".join(problems) or f"{len(levels) - 1} steps, levels {levels[0]:.4g} -> {levels[-1]:.4g}"}


def _exact_law(v: Variant) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The variant's exact output law from its start law, or None where it is not finite."""
    try:
        m, c = affine_law(v.run, v.start[0], v.start[1])
    except NotAffineError:  # pragma: no cover - every zoo variant is affine on a Gaussian target
        return None
    if not (bool(torch.isfinite(m).all()) and bool(torch.isfinite(c).all())):
        return None
    return m, c


def _law(out_law, v: Variant, target) -> dict:
    if out_law is None:
        return {"passed": False, "figure": "the output law is not finite"}
    ref = law(target, v.end_sigma)
    verdict = gaussian_law_check(*out_law, ref.mean(), ref.covariance(), n=LAW_N, alpha=LAW_ALPHA)
    return {"passed": verdict.passed, "figure": f"KL {verdict.kl:.3g} (resolution {verdict.resolution:.3g})", "kl": verdict.kl}


def _discrete(out_law, v: Variant) -> dict:
    if out_law is None:
        return {"passed": False, "figure": "the output law is not finite"}
    ref_mean, ref_cov = v.reference()
    verdict = gaussian_law_check(*out_law, ref_mean, ref_cov, n=LAW_N, alpha=LAW_ALPHA)
    return {"passed": verdict.passed, "figure": f"KL {verdict.kl:.3g} from the discrete sampler's law (resolution "
                                                f"{verdict.resolution:.3g})", "kl": verdict.kl}


def _order(v: Variant, target) -> dict | None:
    if not v.order_runs or v.order is None:
        return None
    errors, steps = [], []
    for n, run, end in v.order_runs:
        m, c = affine_law(run, v.start[0], v.start[1])
        ref = law(target, end)
        errors.append(gaussian_distance(m, c, ref.mean(), ref.covariance()))
        steps.append(n)
    fit = st.fit_order(steps, errors)
    return {"passed": fit.order >= v.order - ORDER_BAND, "figure": f"order {fit.order:.2f} (declared {v.order:g})",
            "order": fit.order}


def run_checks(v: Variant, target) -> dict[str, dict]:
    """Every generic check that applies to the variant; each gives ``passed`` and a ``figure``."""
    out: dict[str, Any] = {"finite": _finite(v)}
    g = _grid(v)
    if g is not None:
        out["grid"] = g
    if not out["finite"]["passed"]:
        return out
    out_law = _exact_law(v) if (v.judge_law or v.reference is not None) else None
    if v.judge_law:
        out["law"] = _law(out_law, v, target)
    if v.reference is not None:
        out["discrete"] = _discrete(out_law, v)
    if v.judge_law:
        o = _order(v, target)
        if o is not None:
            out["order"] = o
    return out


def check_entry(entry: Entry) -> dict:
    """Both forms of an entry through the generic checks: which caught the wrong form, and whether the right one passed all.

    For a "request" both forms are right: ``caught_by`` lists the checks the first form failed,
    and any such failure is a false alarm too.
    """
    t0 = time.perf_counter()
    target = entry.target()
    wrong_form, right_form = entry.forms
    wrong = run_checks(entry.build(target, wrong_form), target)
    right = run_checks(entry.build(target, right_form), target)
    caught = [k for k in CHECKS if k in wrong and not wrong[k]["passed"]]
    alarms = [k for k in CHECKS if k in right and not right[k]["passed"]]
    if entry.kind == "request":
        alarms = [f"{wrong_form}:{k}" for k in caught] + [f"{right_form}:{k}" for k in alarms]
    return {"id": entry.id, "where": entry.where, "title": entry.title, "url": entry.url, "line": entry.line, "kind": entry.kind,
            "forms": list(entry.forms), "wrong": wrong, "right": right, "caught_by": caught, "false_alarms": alarms,
            "caught": bool(caught), "seconds": round(time.perf_counter() - t0, 2)}


def zoo_table(ids: Sequence[str] | None = None, *, progress: bool = False) -> dict:
    """Run every entry (or those named); the records, the catch rate and the false alarms on the fixed forms."""
    chosen = [e for e in ENTRIES if ids is None or e.id in ids]
    rows = [check_entry(e) for e in tqdm(chosen, desc="zoo", file=sys.stderr, disable=not progress)]
    bugs = [r for r in rows if r["kind"] == "bug"]
    proposals = [r for r in rows if r["kind"] == "not a bug"]
    requests = [r for r in rows if r["kind"] == "request"]
    return {"entries": rows,
            "catch_rate": {"caught": sum(r["caught"] for r in bugs), "bugs": len(bugs)},
            "rejected_proposals": {"rejected": sum(r["caught"] for r in proposals), "reports": len(proposals)},
            "requests_passed": {"passed": sum(not r["false_alarms"] for r in requests), "requests": len(requests)},
            "false_alarms": [f"{r['id']}:{k}" for r in rows for k in r["false_alarms"]],
            "false_alarm_rate": "0 by construction: every check is noise-free (finiteness, the walked levels, exact output laws "
                                "against exact references, orders of exact laws); no Monte Carlo test is used"}


def format_table(table: dict) -> str:
    """The zoo as plain text: report, where, the check that caught the wrong form with its figure, and the catch rate."""
    lines = [f"{'report':22s}  {'where':58s}  caught by"]
    for r in table["entries"]:
        if r["kind"] == "request":
            figs = "; ".join(f"{form}: " + ", ".join(f"{k} {res['figure']}" for k, res in r[side].items() if k in ("law", "order"))
                             for form, side in zip(r["forms"], ("wrong", "right")))
            fig = f"[request: both forms right] {figs}"
        else:
            fig = "; ".join(f"{k}: {r['wrong'][k]['figure']}" for k in r["caught_by"]) or "NOT CAUGHT"
            if r["kind"] != "bug":
                fig += f" [{r['kind']}: the {r['forms'][0]} change]"
        alarms = f"  FALSE ALARM: {', '.join(r['false_alarms'])}" if r["false_alarms"] else ""
        lines.append(f"{r['id']:22s}  {r['where'][:58]:58s}  {fig}{alarms}")
    c, p, q = table["catch_rate"], table["rejected_proposals"], table["requests_passed"]
    lines += ["", f"catch rate: {c['caught']} of {c['bugs']} bugs; proposed changes of non-bugs rejected: {p['rejected']} of "
                  f"{p['reports']}; requests with both forms passing: {q['passed']} of {q['requests']}; false alarms on fixed "
                  f"forms: {', '.join(table['false_alarms']) or 'none'}"]
    return "\n".join(lines) + "\n"
