"""A markdown report and a plot (DDIM-50's images/s against batch size, one line per variant) from GPU benchmark JSON.

Run: ``python -m diffcheck.bench.gpu_report RESULT.json [MORE.json ...] --md OUT.md --plot OUT.png``.
Nothing is measured here: every figure is read from the document the benchmark wrote.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

from ..io import write_text
from .gpu_plan import HEADLINE
from .gpu_summary import TARGET_FRACTION, TARGET_RATIO, summarize

__all__ = ["load", "markdown", "plot", "write_report", "main"]


def load(paths: Sequence[str | Path]) -> list[dict]:
    """Read benchmark documents, checking that each is one."""
    out = []
    for p in paths:
        data = json.loads(Path(p).read_text())
        if not isinstance(data, dict) or data.get("schema") != 2 or "runs" not in data or "steps" not in data:
            raise ValueError(f"{p} is not a GPU benchmark result of schema 2 (no 'runs' and 'steps')")
        out.append(data)
    return out


def _n(x: Any, fmt: str = ".4g") -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _gib(b: Any) -> str:
    return "–" if b is None else f"{b / 2**30:.2f}"


def _yes(x: Any) -> str:
    return "–" if x is None else ("yes" if x else "**no**")


def _section(doc: dict, title: str) -> list[str]:
    s = doc["summary"] or summarize(doc)
    env, ceil = doc["environment"], doc.get("ceiling") or {}
    lines = [f"## {title}", "",
             f"{env.get('device_name')} · driver {env.get('driver') or '–'} · CUDA {env.get('cuda') or '–'} · torch {env.get('torch')} "
             f"· Python {env.get('python')} · {env.get('date')} · configuration **{doc['configuration']}**"
             + (" (dry run on a CPU)" if doc["dry_run"] else "") + f" · timer {doc['timer']}"
             + ("" if doc["complete"] else f" · **incomplete: {doc.get('stopped')}**"), ""]
    if ceil:
        lines += [f"Ceiling measured in this run: bf16 matrix product {_n(ceil['matmul_bf16']['tflops'])} TFLOP/s "
                  f"(n = {ceil['matmul_bf16']['n']}); float32 {_n(ceil['matmul_fp32']['tflops'])} TFLOP/s; "
                  f"device copy {_n(ceil['copy']['gbps'])} GB/s.", ""]
    h = s["headline"]
    tg = h["targets"]
    f = h["fastest"]
    lines += [f"### Targets (DDIM-50 on the DDPM U-Net; {h['note']})", "", "| target | measured | goal | met |", "|---|---|---|---|",
              f"| fastest variant | {f['variant'] + ' at batch ' + str(f['batch']) + ': ' + _n(f['images_per_s']) + ' images/s' if f else '–'} | – | – |",
              f"| images/s over diffusers' (same batch, NFE, precision) | {_n(tg['ratio_to_diffusers']['value'], '.3g')}× "
              f"(vs {tg['ratio_to_diffusers']['against'] or '–'}) | ≥ {TARGET_RATIO}× | {_yes(tg['ratio_to_diffusers']['met'])} |",
              f"| achieved / measured ceiling | {_pct(tg['fraction_of_ceiling']['value'])} | ≥ {100 * TARGET_FRACTION:.0f}% "
              f"| {_yes(tg['fraction_of_ceiling']['met'])} |",
              f"| gate: relative L2 from eager float32 | {_n(tg['gate']['value'], '.2e')} | ≤ {_n(tg['gate']['tolerance'], '.2e')} "
              f"| {_yes(tg['gate']['met'])} |", ""]
    lines += ["### Runs", "", "| case | variant | batch | NFE | images/s | ms/NFE | peak GiB | GFLOP/fwd | TFLOP/s | of ceiling | × diffusers |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for q in s["rows"]:
        lines.append(f"| {q['case']} | {q['variant']} | {q['batch']} | {q['nfe']} | {_n(q['images_per_s'])} | {_n(q['ms_per_nfe'])} "
                     f"| {_gib(q['peak_memory_bytes'])} | {_n(q['flops_per_image_per_nfe'] / 1e9)} | {_n(q['tflops'], '.3g')} "
                     f"| {_pct(q['fraction_of_ceiling'])} | {_n(q['ratio_to_diffusers'], '.3g')} |")
    for r in (r for r in doc["runs"] if r["status"] != "ok"):
        lines.append(f"| {r['case']} | {r['variant']} | {_n(r['batch'])} | {_n(r['nfe'])} | {r['status']}: {r['reason']} | | | | | | |")
    lines.append("")
    if s["compile"]:
        lines += ["### Compilation", "", "| variant | batch | status | warm-up beyond steady runs (s) | × eager bf16+cl |", "|---|---|---|---|---|"]
        for c in s["compile"]:
            lines.append(f"| {c['variant']} | {_n(c['batch'])} | {c['status']}{': ' + c['reason'] if c['reason'] else ''} "
                         f"| {_n(c['compile_s'], '.1f')} | {_n(c['speedup_vs_eager'], '.3g')} |")
        lines.append("")
    gate = doc.get("gate")
    if gate:
        lines += [f"### Correctness gate: {gate['variant']} at batch {gate['batch']}, first {gate['rows']} samples against {gate['reference']}", "",
                  f"Metric: {gate['metric']}. Tolerance: {gate['derivation']}.", "",
                  "| variant | batch | precision | relative L2 | max abs | tolerance | passed |", "|---|---|---|---|---|---|---|"]
        for c in gate["checks"]:
            lines.append(f"| {c['variant']} | {c['batch']} | {c['precision']} | {_n(c['rel_l2'], '.2e')} | {_n(c['max_abs'], '.2e')} "
                         f"| {c['tolerance']:.2e} | {_yes(c['passed'])} |")
        lines.append("")
    prof = doc.get("profile")
    if prof:
        lines += [f"### Profile: {prof['variant']} at batch {prof['batch']}, {prof['steps']} steps", "",
                  f"Busy {_pct(prof.get('busy_fraction'))} of the wall time; by class: "
                  + ", ".join(f"{k} {_pct(v)}" for k, v in prof["by_class_share"].items())
                  + (f"; matrix-class {prof['unit']}s ran at {_n(prof['matrix_class_tflops'], '.3g')} TFLOP/s" if prof.get("matrix_class_tflops") else "")
                  + ".", "", f"| {prof['unit']} | class | calls | seconds | share |", "|---|---|---|---|---|"]
        for k in prof["top"]:
            lines.append(f"| `{k['name'][:90]}` | {k['class']} | {k['calls']} | {_n(k['seconds'])} | {_pct(k['share'])} |")
        lines.append("")
    lines += ["### Plan", "", "| priority | step | status | estimate (s) | spent (s) |", "|---|---|---|---|---|"]
    for e in doc["steps"]:
        lines.append(f"| {e['priority']} | {e['step']} | {e['status']}{': ' + e['reason'] if e['reason'] else ''} "
                     f"| {_n(e['estimate_s'], '.1f')} | {_n(e['elapsed_s'], '.1f')} |")
    b = s["budget"]
    lines += ["", f"Budget: {_n(b['spent_s'], '.1f')} s spent of {_n(b['total_s'])}; by priority "
              + ", ".join(f"{p}: {t:.1f} s" for p, t in sorted(b["by_priority"].items())) + ".", ""]
    return lines


def markdown(docs: Sequence[dict], sources: Sequence[str] | None = None) -> str:
    """The report of one or more runs."""
    lines = ["# Sampler throughput of the reference image models", ""]
    for i, doc in enumerate(docs):
        lines += _section(doc, f"Run {i + 1}" + (f": `{sources[i]}`" if sources else ""))
    return "\n".join(lines).rstrip() + "\n"


def plot(docs: Sequence[dict], path: str | Path) -> Path:
    """DDIM-50 on the DDPM U-Net: images/s against batch size, one line per variant (diffusers' dashed)."""
    from .. import plots

    plots.style()
    plt = plots.plt
    series: dict[str, list[tuple[int, float]]] = {}
    for doc in docs:
        for r in doc["runs"]:
            if r["status"] == "ok" and r["case"] == HEADLINE:
                series.setdefault(r["variant"], []).append((r["batch"], r["images_per_s"]))
    if not series:
        raise ValueError(f"no successful run of {HEADLINE} to plot")
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for name, pts in sorted(series.items()):
        pts = sorted(pts)
        style = dict(marker="o", mfc="none", linestyle="--") if name.startswith("diffusers") else dict(marker="o")
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name, **style)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("images / s")
    env = docs[0]["environment"]
    ax.set_title(f"{HEADLINE}: {env.get('device_name')}, torch {env.get('torch')}, {docs[0]['configuration']}", fontsize=8)
    ax.legend(fontsize=7)
    return plots.save(fig, path)


def write_report(doc: dict | Sequence[dict], md_path: str | Path, png_path: str | Path | None,
                 sources: Sequence[str] | None = None) -> tuple[Path, Path | None]:
    """Write the markdown report and, when any run succeeded, the plot (each atomically)."""
    docs = [doc] if isinstance(doc, dict) else list(doc)
    md = write_text(md_path, markdown(docs, sources))
    ok = any(r["status"] == "ok" and r["case"] == HEADLINE for d in docs for r in d["runs"])
    return md, (plot(docs, png_path) if png_path is not None and ok else None)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m diffcheck.bench.gpu_report FILES --md OUT.md [--plot OUT.png]``."""
    ap = argparse.ArgumentParser(prog="python -m diffcheck.bench.gpu_report", description=__doc__)
    ap.add_argument("results", nargs="+", help="JSON files written by the GPU benchmark")
    ap.add_argument("--md", required=True, help="markdown output path")
    ap.add_argument("--plot", default=None, help="PNG output path")
    a = ap.parse_args(argv)
    md, png = write_report(load(a.results), a.md, a.plot, sources=[str(p) for p in a.results])
    print(f"wrote {md}" + (f" and {png}" if png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
