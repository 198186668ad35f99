"""Running the tour's checks: one in-process (a raising check is a failed record), or many on several processes.

On several processes the checks and figures of one checks module run together on one worker.

A module's checks and figures share its caches (the order fit's law errors feed its figure), so a
module is the unit of work; modules are handed out longest first, by the times of the recorded tour
(``docs/equations-tour.json``) where a checkout has it. Workers are spawned (a fresh interpreter: no
OpenMP state is forked) and split the cores: torch threads = cores // jobs each.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable

from .checks import Record

__all__ = ["run_check", "usable_cores", "auto_jobs", "run_parallel", "AUTO_SECONDS"]

# with jobs unset, a selection whose recorded checks take less than this runs in-process (spawning costs seconds)
AUTO_SECONDS = 30.0


def run_check(fn: Callable[..., Record]) -> Record:
    """Run one check; a check that raises is a failed record carrying the error."""
    start = time.perf_counter()
    try:
        return fn()
    except Exception as err:  # a crashing check is a failed check, reported with its error
        return Record(fn.check_id, fn.source, fn.claim, "runs", f"error: {type(err).__name__}: {err}", "-",
                      "the check raised", False, time.perf_counter() - start, {"traceback": traceback.format_exc(limit=4)})


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _recorded_seconds() -> dict[str, float]:
    """Each check's seconds in the recorded tour, or {} where there is none (an installed package)."""
    from .equations import load_record

    try:
        record = load_record()
    except (OSError, ValueError):
        return {}
    return {cid: float(v.get("seconds", 0.0)) for cid, v in (record or {}).get("verdicts", {}).items()}


def auto_jobs(checks: list[Callable[..., Record]]) -> int:
    """All usable cores for a selection that takes long (recorded time over ``AUTO_SECONDS``, or over 10 checks
    where no time is recorded), else 1."""
    cost = _recorded_seconds()
    long = sum(cost.get(fn.check_id, 0.0) for fn in checks) > AUTO_SECONDS if cost else len(checks) > 10
    return usable_cores() if long else 1


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _work(check_ids: list[str], figures: list[tuple[str, str]]) -> tuple[list[Record], list[str]]:
    """Run one module's checks, then draw its figures (in a worker process)."""
    from .checks import plots, registry

    reg, drawn = registry(), plots()
    records = [run_check(reg[cid]) for cid in check_ids]
    return records, [str(drawn[name](Path(path))) for name, path in figures]


def _died(fn: Callable[..., Record], err: BaseException) -> Record:
    return Record(fn.check_id, fn.source, fn.claim, "runs", f"error: the worker process died ({type(err).__name__}: {err})",
                  "-", "the check's process ended abruptly", False, 0.0)


def run_parallel(checks: list[Callable[..., Record]], figures: list[tuple[str, Callable[[Path], Any], Path]], jobs: int,
                 bar: Any) -> tuple[list[Record], list[str]]:
    """Run ``checks`` and draw ``figures`` on ``jobs`` spawned workers; records and figure paths in the given order.

    A check that raises is a failed record (as in-process); a worker that dies fails its module's checks; a figure
    that raises ends the tour with its error, as in-process."""
    groups: dict[str, tuple[list[str], list[tuple[str, str]]]] = {}
    for fn in checks:
        groups.setdefault(fn.__module__, ([], []))[0].append(fn.check_id)
    for name, fn, path in figures:
        groups.setdefault(fn.__module__, ([], []))[1].append((name, str(path)))
    cost = _recorded_seconds()
    order = sorted(groups, key=lambda m: -(sum(cost.get(c, 1.0) for c in groups[m][0]) + 5.0 * len(groups[m][1])))
    jobs = max(1, min(jobs, len(order)))
    by_id = {fn.check_id: fn for fn in checks}
    records: dict[str, Record] = {}
    made: dict[str, str] = {}
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker,
                             initargs=(max(1, usable_cores() // jobs),)) as pool:
        pending = {pool.submit(_work, *groups[m]): m for m in order}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                module = pending.pop(fut)
                ids, figs = groups[module]
                try:
                    recs, paths = fut.result()
                except BrokenProcessPool as err:
                    recs, paths = [_died(by_id[c], err) for c in ids], []
                    print(f"diffcheck tour: a worker died running {module}; its figures were not drawn", file=sys.stderr)
                records.update((r.id, r) for r in recs)
                made.update(zip((name for name, _ in figs), paths))
                bar.set_postfix_str(module.rsplit(".", 1)[-1])
                bar.update(len(ids) + len(figs))
    return [records[fn.check_id] for fn in checks], [made[name] for name, _, _ in figures if name in made]

