"""A markdown table and a plot (images/s against batch size per variant) from GPU benchmark JSON files.

Run: ``python -m diffcheck.bench.gpu_report RESULT.json [MORE.json ...] --md OUT.md --plot OUT.png``.
Nothing is measured here: every figure is read from the JSON the benchmark wrote.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

from ..io import write_text

__all__ = ["load", "markdown", "plot", "write_report", "main"]


def load(paths: Sequence[str | Path]) -> list[dict]:
    """Read benchmark results, checking that each is one."""
    out = []
    for p in paths:
        data = json.loads(Path(p).read_text())
        if not isinstance(data, dict) or "runs" not in data or "environment" not in data:
            raise ValueError(f"{p} is not a GPU benchmark result (no 'runs' and 'environment')")
        out.append(data)
    return out


def _num(x: Any, fmt: str = ".4g") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return format(x, fmt)


def _mem(b: Any) -> str:
    return "–" if b is None else f"{b / 2**30:.2f} GiB"


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _agree(r: dict) -> str:
    checks = r.get("agreement") or []
    if not checks:
        return "–"
    worst = max(checks, key=lambda a: a["rel_error"] if isinstance(a["rel_error"], float) else math.inf)
    err = worst["rel_error"]
    tag = "yes" if r.get("agrees") else "**NO**"
    return f"{tag} ({_num(err, '.1e') if isinstance(err, float) else err} ≤ {worst['tolerance']:.0e})"


def _yes(x: Any) -> str:
    return "–" if x is None else ("yes" if x else "**no**")


def _section(res: dict, title: str) -> list[str]:
    env, ceil = res["environment"], res.get("ceilings", {})
    lines = [f"## {title}", ""]
    lines.append(f"{env.get('device_name')} · driver {env.get('driver') or '–'} · CUDA {env.get('cuda') or '–'} · torch {env.get('torch')} "
                 f"· {env.get('date')} · configuration **{res.get('configuration')}** · timer {res.get('timer')}"
                 + ("" if res.get("complete") else " · **incomplete run**"))
    lines.append("")
    mm, mf, cp = ceil.get("matmul_bf16"), ceil.get("matmul_fp32"), ceil.get("copy")
    if mm:
        lines.append(f"Ceilings measured in this run: bf16 matrix product {_num(mm['tflops'])} TFLOP/s (n = {mm['n']}), "
                     f"fp32 {_num(mf['tflops']) if mf else '–'} TFLOP/s, device copy {_num(cp['gbps']) if cp else '–'} GB/s.")
        lines.append("")
    tg = res.get("summary", {}).get("targets")
    if tg and "fastest" in tg:
        f, dr, mfr = tg["fastest"], tg.get("diffusers_ratio", {}), tg.get("matmul_fraction", {})
        lines += [f"### Targets (DDIM-50 on the DDPM U-Net; {tg['note']})", "",
                  "| target | measured | goal | met |", "|---|---|---|---|",
                  f"| fastest variant | {f['variant']} at batch {f['batch']}: {_num(f['images_per_s'])} images/s | – | – |",
                  f"| throughput / diffusers at the same precision, NFE, batch | "
                  f"{_num(dr.get('value'), '.3g')}× (vs {dr.get('against', '–')}; vs eager diffusers {_num(dr.get('value_vs_eager_diffusers'), '.3g')}×) "
                  f"| ≥ 1.5× | {_yes(dr.get('met'))} |",
                  f"| achieved / measured bf16 matmul rate | {_pct(mfr.get('value'))} | ≥ 35% | {_yes(mfr.get('met'))} |",
                  f"| samples agree with eager fp32 | {'all' if res['summary']['agreement']['all_passed'] else ', '.join(res['summary']['agreement']['failed'])} "
                  f"| within the stated tolerance | {_yes(res['summary']['agreement']['all_passed'])} |", ""]
    lines += ["### Runs", "", "| case | variant | batch | NFE | images/s | ms/NFE | peak memory (run's own) | TFLOP/s | of bf16 matmul | agrees with fp32 (rel. error ≤ tol.) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["runs"]:
        if r["status"] == "ok":
            lines.append(f"| {r['case']} | {r['variant']} | {r['batch']} | {r['nfe']} | {_num(r['images_per_s'])} | {_num(r['ms_per_nfe'])} "
                         f"| {_mem(r.get('peak_memory_bytes'))} ({_mem(r.get('run_memory_bytes'))}) | {_num(r['tflops'], '.3g')} "
                         f"| {_pct(r.get('fraction_of_bf16_matmul'))} | {_agree(r)} |")
        else:
            lines.append(f"| {r['case']} | {r['variant']} | {r['batch'] if r['batch'] is not None else '–'} | {r.get('nfe') or '–'} "
                         f"| {r['status']}: {r['reason']} | | | | | |")
    lines.append("")
    dif = res.get("diffusers")
    if dif:
        ratio = {(q["case"], q["batch"], q["precision"]): q for q in res.get("summary", {}).get("diffusers_ratios", [])}
        lines += [f"### diffusers {dif['version']} (UNet2DModel, google/ddpm-cifar10-32 configuration, {dif['parameters']:,} parameters)", "",
                  "| case | scheduler | mode | batch | NFE | images/s | ms/NFE | peak memory (run's own) | TFLOP/s |", "|---|---|---|---|---|---|---|---|---|"]
        for d in dif["runs"]:
            if d["status"] == "ok":
                lines.append(f"| {d['case']} | {d['scheduler']} | {d['mode']} | {d['batch']} | {d['nfe']} | {_num(d['images_per_s'])} "
                             f"| {_num(d['ms_per_nfe'])} | {_mem(d.get('peak_memory_bytes'))} ({_mem(d.get('run_memory_bytes'))}) | {_num(d['tflops'], '.3g')} |")
            else:
                lines.append(f"| {d['case']} | {d['scheduler']} | {d['mode']} | {d['batch']} | {d['nfe']} | {d['status']}: {d['reason']} | | | |")
        if ratio:
            lines += ["", "| case | our variant | batch | precision | ours / best diffusers | ours / eager diffusers |", "|---|---|---|---|---|---|"]
            for q in res["summary"]["diffusers_ratios"]:
                lines.append(f"| {q['case']} | {q['variant']} | {q['batch']} | {q['precision']} | {_num(q['ratio_vs_best'], '.3g')}× ({q['diffusers_best_mode']}) "
                             f"| {_num(q['ratio_vs_eager'], '.3g')}× |")
        lines.append("")
    if res.get("memory_limits"):
        lines += ["### Memory limit (one forward pass, doubling the batch)", "", "| family | variant | largest batch | peak memory | stopped |", "|---|---|---|---|---|"]
        for m in res["memory_limits"]:
            lines.append(f"| {m['family']} | {m['variant']} | {m['largest_ok_batch']} | {_mem(m['peak_memory_bytes'])} | {m['stopped']} |")
        lines.append("")
    prof = res.get("profile")
    if prof:
        lines += [f"### Profile: {prof['case']} {prof['variant']} at batch {prof['batch']}, {prof['steps']} steps", "",
                  f"Busy {_pct(prof.get('busy_fraction'))} of the wall time; by class: "
                  + ", ".join(f"{k} {_pct(v)}" for k, v in prof["by_class_share"].items())
                  + (f"; matrix-class kernels ran at {_num(prof['matrix_class_tflops'], '.3g')} TFLOP/s" if prof.get("matrix_class_tflops") else "")
                  + ".", "", f"| {prof['unit']} | class | calls | seconds | share |", "|---|---|---|---|---|"]
        for k in prof["top"]:
            lines.append(f"| `{k['name'][:90]}` | {k['class']} | {k['calls']} | {_num(k['seconds'])} | {_pct(k['share'])} |")
        lines.append("")
    cases = res.get("cases", {})
    if cases:
        lines += ["### Cases", "", "| case | sampler | steps | NFE | GFLOP per image per NFE | host syncs per NFE (+ per run) |",
                  "|---|---|---|---|---|---|"]
        for cid, c in cases.items():
            lines.append(f"| {cid} | {c['description']} | {c['steps']} | {c['nfe']} | {_num(c['flops_per_image_per_nfe'] / 1e9)} "
                         f"| {_num(c.get('syncs_per_nfe'))} (+ {_num(c.get('syncs_per_run'))}) |")
        lines.append("")
    if res.get("skipped"):
        lines += ["### Not measured", ""] + [f"- {s['what']}: {s['reason']}" for s in res["skipped"]] + [""]
    return lines


def markdown(results: Sequence[dict], sources: Sequence[str] | None = None) -> str:
    """The report of one or more runs as markdown."""
    lines = ["# Sampler throughput of the reference image models", ""]
    for i, res in enumerate(results):
        title = f"Run {i + 1}" + (f": `{sources[i]}`" if sources else "")
        lines += _section(res, title)
    return "\n".join(lines).rstrip() + "\n"


def plot(results: Sequence[dict], path: str | Path) -> Path:
    """images/s against batch size, one line per variant (and diffusers' modes as open markers), one panel per case."""
    from .. import plots

    plots.style()
    plt = plots.plt
    series: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for res in results:
        for r in res["runs"]:
            if r["status"] == "ok":
                series.setdefault(r["case"], {}).setdefault(r["variant"], []).append((r["batch"], r["images_per_s"]))
        for d in (res.get("diffusers") or {}).get("runs", []):
            if d["status"] == "ok":
                series.setdefault(d["case"], {}).setdefault(f"diffusers {d['mode']}", []).append((d["batch"], d["images_per_s"]))
    cases = sorted(series, key=lambda c: (-max(len(v) for v in series[c].values()), c))
    if not cases:
        raise ValueError("no successful run to plot")
    cols = min(3, len(cases))
    rows = math.ceil(len(cases) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, cid in zip(axes.flat, cases):
        for name, pts in sorted(series[cid].items()):
            pts = sorted(pts)
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            style = dict(marker="o", mfc="none", linestyle="--") if name.startswith("diffusers") else dict(marker="o")
            ax.plot(xs, ys, label=name, **style)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("images / s")
        ax.set_title(cid)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(cases):]:
        ax.axis("off")
    env = results[0]["environment"]
    fig.suptitle(f"{env.get('device_name')} · torch {env.get('torch')} · {results[0].get('configuration')} configuration", fontsize=9)
    fig.tight_layout()
    return plots.save(fig, path)


def write_report(results: Sequence[dict], md_path: str | Path, png_path: str | Path | None,
                 sources: Sequence[str] | None = None) -> tuple[Path, Path | None]:
    """Write the markdown report and (when any run succeeded) the plot, atomically."""
    md = write_text(md_path, markdown(results, sources))
    has_ok = any(r["status"] == "ok" for res in results for r in res["runs"])
    png = plot(results, png_path) if png_path is not None and has_ok else None
    return md, png


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m diffcheck.bench.gpu_report FILES --md OUT.md --plot OUT.png``."""
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
