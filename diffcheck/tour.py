"""The verification tour: run the registered checks, print a table, write a JSON report and plots."""

from __future__ import annotations

import contextlib
import datetime as _dt
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

import torch

from toy.validate import check_int

from . import __version__
from .checks import Record, plots, select
from .io import write_json, write_text
from .tour_jobs import auto_jobs, run_check, run_parallel

__all__ = ["run_checks", "run_check", "run_tour", "format_table", "draw_figures"]


def _environment() -> dict:
    return {
        "diffcheck": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


@contextlib.contextmanager
def _ticking(bar: Any, every: float = 1.0) -> Iterator[None]:
    """Redraw ``bar`` every ``every`` seconds from a helper thread, so that its elapsed time moves during a long item."""
    if getattr(bar, "disable", True):
        yield
        return
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            bar.refresh()

    thread = threading.Thread(target=tick, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def draw_figures(figures: list[tuple[str, Callable[[Path], Any], Path]], progress: bool = True) -> list[str]:
    """Draw (name, fn, path) figures in turn with a progress bar on stderr (one figure can take minutes)."""
    from tqdm import tqdm

    made = []
    bar = tqdm(total=len(figures), desc="figures", unit="figure", file=sys.stderr, disable=not progress, leave=False)
    with _ticking(bar):
        for name, fn, path in figures:
            bar.set_postfix_str(name)
            made.append(str(fn(path)))
            bar.update(1)
    bar.close()
    return made


def run_checks(only: str | None = None, progress: bool = True) -> list[Record]:
    """Run the selected checks; a check that raises becomes a failed record carrying the error."""
    from tqdm import tqdm

    checks = select(only)
    records = []
    bar = tqdm(checks, desc="checks", unit="check", file=sys.stderr, disable=not progress, leave=False)
    for fn in _ticked(bar):
        bar.set_postfix_str(fn.check_id)
        records.append(run_check(fn))
    return records


def _ticked(bar: Any) -> Iterator[Any]:
    """Iterate a tqdm bar while a helper thread redraws it every second."""
    with _ticking(bar):
        yield from bar


def _cell(v, width: int) -> str:
    from .checks import _fmt

    s = _fmt(v).replace("\n", " ")
    return s if len(s) <= width else s[: width - 1] + "…"


def format_table(records: list[Record]) -> str:
    """A plain-text table: verdict, id, claim, source, expected, measured."""
    lines = [f"{'':4} {'check':30} {'expected':24} {'measured':24} {'s':>5}  claim (source)"]
    for r in records:
        v = "PASS" if r.passed else "FAIL"
        lines.append(f"{v:4} {r.id:30} {_cell(r.expected, 24):24} {_cell(r.measured, 24):24} {r.seconds:5.1f}  {r.claim} ({r.source})")
    n_pass = sum(r.passed for r in records)
    lines.append(f"{n_pass}/{len(records)} checks passed in {sum(r.seconds for r in records):.1f} s")
    return "\n".join(lines)


def _markdown(records: list[Record]) -> str:
    rows = ["| verdict | check | claim | source | expected | measured | tolerance |", "|---|---|---|---|---|---|---|"]
    for r in records:
        esc = lambda v: _cell(v, 60).replace("|", "\\|")
        rows.append(f"| {'PASS' if r.passed else '**FAIL**'} | `{r.id}` | {esc(r.claim)} | {esc(r.source)} | {esc(r.expected)} | {esc(r.measured)} | {esc(r.tolerance)} |")
    return "\n".join(rows) + "\n"


def run_tour(
    only: str | None = None,
    out_dir: str | Path = "diffcheck-out",
    with_plots: bool = True,
    progress: bool = True,
    stream: TextIO | None = None,
    as_json: bool = False,
    jobs: int | None = None,
) -> dict:
    """Run the tour; write ``report.json``, ``report.md`` and plots under ``out_dir``; return the report.

    ``jobs`` processes share the work (``diffcheck.tour_jobs``); None: all cores for a long selection, else 1."""
    out = Path(out_dir)
    start = time.perf_counter()
    checks = select(only)
    figures = []
    if with_plots:
        chosen = {fn.__module__ for fn in checks}
        # with --only, the figures of the selected checks' modules
        figures = [(name, fn, out / "plots" / name) for name, fn in plots().items() if not only or fn.__module__ in chosen]
    jobs = auto_jobs(checks) if jobs is None else check_int(jobs, "jobs", minimum=1)
    if jobs == 1:
        records = run_checks(only, progress)
        made = draw_figures(figures, progress)
    else:
        from tqdm import tqdm

        bar = tqdm(total=len(checks) + len(figures), desc=f"checks and figures on {jobs} processes", unit="item",
                   file=sys.stderr, disable=not progress, leave=False)
        with _ticking(bar):
            records, made = run_parallel(checks, figures, jobs, bar)
        bar.close()
    report = {
        "checks": [r.to_dict() for r in records],
        "summary": {"passed": sum(r.passed for r in records), "failed": sum(not r.passed for r in records),
                    "total": len(records), "seconds": round(time.perf_counter() - start, 2)},
        "plots": made,
        "environment": _environment(),
    }
    write_json(out / "report.json", report)
    write_text(out / "report.md", _markdown(records))
    stream = stream or sys.stdout
    if as_json:
        import json

        stream.write(json.dumps(report, indent=2) + "\n")
    else:
        stream.write(format_table(records) + "\n")
        stream.write(f"report: {out / 'report.json'}  table: {out / 'report.md'}" + (f"  plots: {out / 'plots'}" if made else "") + "\n")
    return report
