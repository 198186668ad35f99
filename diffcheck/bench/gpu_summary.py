"""The summary of a GPU benchmark document (a pure function of its rows) and the closing table.

Ratios to diffusers compare rows of the same case, batch, NFE and precision class, against diffusers'
fastest such row. The targets (on an H100 or H200, full configuration): the fastest DDIM-50 variant at
least 1.5x diffusers, at least 35% of the ceiling, and the correctness gate passed.
"""

from __future__ import annotations

import re
from typing import Any

from .gpu_plan import HEADLINE, TARGET_FRACTION

__all__ = ["summarize", "table", "TARGET_RATIO", "TARGET_FRACTION"]

TARGET_RATIO = 1.5
_FIGURES = ("images_per_s", "ms_per_nfe", "peak_memory_bytes", "flops_per_image_per_nfe", "tflops", "fraction_of_ceiling")


def _diffusers_match(row: dict, theirs: list[dict]) -> dict | None:
    same = [d for d in theirs if (d["case"], d["batch"], d["nfe"], d["precision"]) == (row["case"], row["batch"], row["nfe"], row["precision"])]
    return max(same, key=lambda d: d["images_per_s"], default=None)


def summarize(doc: dict) -> dict:
    """Rows with their ratio to diffusers, the best row per case, the compile modes, the headline and its
    targets, and where the budget went."""
    ok = [r for r in doc["runs"] if r["status"] == "ok"]
    theirs = [r for r in ok if r["impl"] == "diffusers"]
    rows = []
    for r in ok:
        match = _diffusers_match(r, theirs) if r["impl"] == "diffcheck" else None
        rows.append({"case": r["case"], "impl": r["impl"], "variant": r["variant"], "batch": r["batch"], "nfe": r["nfe"],
                     **{k: r[k] for k in _FIGURES},
                     "ratio_to_diffusers": None if match is None else r["images_per_s"] / match["images_per_s"],
                     "diffusers_variant": None if match is None else match["variant"]})
    best: dict[str, dict] = {}
    for q in rows:
        if q["impl"] == "diffcheck" and (q["case"] not in best or q["images_per_s"] > best[q["case"]]["images_per_s"]):
            best[q["case"]] = q
    eager = best_of(rows, HEADLINE, lambda q: q["variant"] == "bf16+cl")
    compiled = []
    for r in (r for r in doc["runs"] if r["impl"] == "diffcheck" and r["compiled"]):
        compiled.append({"variant": r["variant"], "batch": r["batch"], "status": r["status"], "reason": r["reason"],
                         "compile_s": r["compile_s"], "images_per_s": r["images_per_s"],
                         "speedup_vs_eager": (r["images_per_s"] / eager["images_per_s"]
                                              if r["status"] == "ok" and eager and eager["batch"] == r["batch"] else None)})
    by_priority: dict[str, float] = {}
    for e in doc["steps"]:
        if e["elapsed_s"] is not None:
            by_priority[str(e["priority"])] = by_priority.get(str(e["priority"]), 0.0) + e["elapsed_s"]
    return {"ceiling_tflops": (doc.get("ceiling") or {}).get("matmul_bf16", {}).get("tflops"), "rows": rows,
            "best": best, "compile": compiled, "headline": headline(doc, best.get(HEADLINE)),
            "budget": {**doc["budget"], "by_priority": by_priority}}


def best_of(rows: list[dict], case: str, keep: Any) -> dict | None:
    """The fastest of ``rows`` of ``case`` that ``keep`` accepts."""
    return max((q for q in rows if q["case"] == case and q["impl"] == "diffcheck" and keep(q)),
               key=lambda q: q["images_per_s"], default=None)


def headline(doc: dict, fastest: dict | None) -> dict:
    """DDIM-50's fastest variant against diffusers, the ceiling and the gate; whether the targets apply."""
    env = doc["environment"]
    applies = (not doc["dry_run"] and doc["configuration"] == "full"
               and bool(re.search(r"H100|H200", str(env.get("device_name", "")))))
    gate = doc.get("gate")
    gate_passed = None if gate is None else gate["passed"]
    out: dict[str, Any] = {"case": HEADLINE, "fastest": fastest, "targets_apply": applies,
                           "note": "the full configuration on an H100 or H200" if applies
                           else "targets are defined for the full configuration on an H100 or H200"}
    ratio = None if fastest is None else fastest["ratio_to_diffusers"]
    frac = None if fastest is None else fastest["fraction_of_ceiling"]
    out["targets"] = {
        "ratio_to_diffusers": {"value": ratio, "target": TARGET_RATIO, "met": None if ratio is None else ratio >= TARGET_RATIO,
                               "against": None if fastest is None else fastest["diffusers_variant"]},
        "fraction_of_ceiling": {"value": frac, "target": TARGET_FRACTION, "met": None if frac is None else frac >= TARGET_FRACTION},
        "gate": {"value": None if gate is None else gate["rel_l2"], "tolerance": None if gate is None else gate["tolerance"],
                 "met": gate_passed},
    }
    return out


def _f(x: Any, fmt: str = ".4g") -> str:
    return "-" if x is None else format(x, fmt)


def table(doc: dict) -> str:
    """The closing table: one line per measured row, then the ceiling, compile times, gate and targets."""
    s = doc["summary"] or summarize(doc)
    head = f"{'case':<26} {'variant':<30} {'batch':>6} {'NFE':>5} {'img/s':>9} {'ms/NFE':>8} {'peak GiB':>8} " \
           f"{'GFLOP/fwd':>9} {'TFLOP/s':>8} {'%ceil':>6} {'x diffusers':>11}"
    lines = [head, "-" * len(head)]
    for q in s["rows"]:
        mem = None if q["peak_memory_bytes"] is None else q["peak_memory_bytes"] / 2**30
        frac = None if q["fraction_of_ceiling"] is None else 100 * q["fraction_of_ceiling"]
        lines.append(f"{q['case']:<26} {q['variant']:<30} {q['batch']:>6} {q['nfe']:>5} {_f(q['images_per_s']):>9} "
                     f"{_f(q['ms_per_nfe']):>8} {_f(mem, '.3g'):>8} {_f(q['flops_per_image_per_nfe'] / 1e9):>9} "
                     f"{_f(q['tflops'], '.3g'):>8} {_f(frac, '.1f'):>6} {_f(q['ratio_to_diffusers'], '.3g'):>11}")
    skipped = [r for r in doc["runs"] if r["status"] != "ok"]
    for r in skipped:
        lines.append(f"{r['case']:<26} {r['variant']:<30} {_f(r['batch']):>6} {r['status']}: {r['reason']}")
    lines.append("")
    lines.append(f"ceiling (bf16 matrix product, measured in this run): {_f(s['ceiling_tflops'])} TFLOP/s")
    for c in s["compile"]:
        lines.append(f"compile {c['variant']}: {c['status']}" + (f", {c['compile_s']:.1f} s of warm-up" if c["compile_s"] is not None else "")
                     + (f" ({c['reason']})" if c["reason"] else "")
                     + (f", {c['speedup_vs_eager']:.3g}x eager bf16+cl" if c["speedup_vs_eager"] is not None else ""))
    tg = s["headline"]["targets"]
    lines.append(f"gate: rel L2 {_f(tg['gate']['value'], '.2e')} <= {_f(tg['gate']['tolerance'], '.2e')}: {tg['gate']['met']}")
    lines.append(f"targets ({s['headline']['note']}): x diffusers {_f(tg['ratio_to_diffusers']['value'], '.3g')} "
                 f"(>= {TARGET_RATIO}: {tg['ratio_to_diffusers']['met']}), ceiling fraction {_f(tg['fraction_of_ceiling']['value'], '.3g')} "
                 f"(>= {TARGET_FRACTION}: {tg['fraction_of_ceiling']['met']}), gate {tg['gate']['met']}")
    b = s["budget"]
    lines.append(f"budget: {_f(b['spent_s'], '.1f')} s spent of {_f(b['total_s'])}; by priority: "
                 + ", ".join(f"{p}: {t:.1f} s" for p, t in sorted(b["by_priority"].items())))
    if doc.get("stopped"):
        lines.append(f"STOPPED: {doc['stopped']}")
    return "\n".join(lines)
