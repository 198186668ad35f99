"""The GPU benchmark's result document: its rows, the plan's step log, atomic saving after every change,
the closing summary and report, and a watchdog that closes the document if a step overruns.

Every row has the same keys (``ROW_KEYS``); a figure that was not measured is None, and ``status`` with
``reason`` says why. The JSON on disk is replaced atomically after every step, so a run killed at any
point leaves a valid document of what was done, with ``complete`` false.
"""

from __future__ import annotations

import copy
import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from ..io import write_json
from .gpu_plan import Step

__all__ = ["ROW_KEYS", "STEP_KEYS", "SCHEMA", "new_row", "new_document", "Record", "Watchdog"]

SCHEMA = 2
ROW_KEYS = ("step", "priority", "impl", "case", "variant", "precision", "channels_last", "compiled", "cuda_graphs",
            "batch", "nfe", "status", "reason", "estimate_s", "started_s", "elapsed_s", "batch_choice", "warmup_first_call_s",
            "warmup_s_per_nfe", "compile_s", "graph_breaks", "cudagraph_skips", "repeats", "seconds", "median_s", "spread",
            "images_per_s", "ms_per_nfe", "flops_per_image_per_nfe", "tflops", "fraction_of_ceiling", "peak_memory_bytes",
            "finite")
STEP_KEYS = ("step", "priority", "kind", "case", "variant", "status", "reason", "estimate_s", "started_s", "elapsed_s")


def new_row(step: Step, *, impl: str, variant: str, precision: str, batch: int | None, nfe: int | None,
            channels_last: bool, compiled: bool, cuda_graphs: bool) -> dict:
    """A row with every key, its figures None until measured."""
    row: dict[str, Any] = dict.fromkeys(ROW_KEYS)
    row.update(step=step.name, priority=step.priority, impl=impl, case=step.case, variant=variant, precision=precision,
               channels_last=channels_last, compiled=compiled, cuda_graphs=cuda_graphs, batch=batch, nfe=nfe, status="pending")
    return row


def new_document(*, configuration: str, dry_run: bool, environment: dict, timer: str, settings: dict,
                 steps: tuple[Step, ...]) -> dict:
    """The document before the first measurement: the plan's steps all pending."""
    return {
        "benchmark": "sampler throughput of the reference image models", "schema": SCHEMA,
        "configuration": configuration, "dry_run": dry_run, "complete": False, "stopped": None,
        "environment": environment, "timer": timer, "settings": settings,
        "budget": {"total_s": settings.get("budget_s"), "spent_s": 0.0, "left_s": settings.get("budget_s")},
        "ceiling": None, "cases": {}, "diffusers": None,
        "steps": [{"step": s.name, "priority": s.priority, "kind": s.kind, "case": s.case, "variant": s.variant,
                   "status": "pending", "reason": None, "estimate_s": None, "started_s": None, "elapsed_s": None} for s in steps],
        "runs": [], "gate": None, "profile": None, "summary": None,
    }


class Record:
    """The document and where it is written; every change is saved under one lock."""

    def __init__(self, doc: dict, out: str | Path | None) -> None:
        self.doc = doc
        self.out = None if out is None else Path(out)
        self.lock = threading.RLock()
        self.closed = False
        self.final: dict = {}

    def save(self) -> None:
        if self.out is None or self.closed:  # a closed document is final
            return
        with self.lock:
            write_json(self.out, self.doc)

    def step(self, name: str, **fields: Any) -> None:
        """Update the log entry of step ``name`` and save."""
        with self.lock:
            if self.closed:
                return
            entry = next(e for e in self.doc["steps"] if e["step"] == name)
            unknown = set(fields) - set(STEP_KEYS)
            if unknown:
                raise KeyError(f"unknown step fields {sorted(unknown)}")
            entry.update(fields)
            self.save()

    def add(self, row: dict) -> dict:
        """Append a finished row (its status no longer pending) and save."""
        if set(row) != set(ROW_KEYS):
            raise KeyError(f"a row must have exactly the keys ROW_KEYS; extra {sorted(set(row) - set(ROW_KEYS))}, "
                           f"missing {sorted(set(ROW_KEYS) - set(row))}")
        if row["status"] not in ("ok", "skipped", "failed", "oom"):
            raise ValueError(f"row status must be ok, skipped, failed or oom, got {row['status']!r}")
        with self.lock:
            if not self.closed:
                self.doc["runs"].append(row)
                self.save()
        return row

    def set(self, key: str, value: Any) -> None:
        with self.lock:
            if not self.closed:
                self.doc[key] = value
                self.save()

    def close(self, summarize: Callable[[dict], dict], stopped: str | None,
              report: Callable[[dict, Path], Any] | None = None) -> dict:
        """Write the summary (and the report beside the JSON); ``stopped`` says why the run ended early."""
        with self.lock:
            if self.closed:
                return self.final
            for e in self.doc["steps"]:
                if e["status"] == "pending":
                    e["status"], e["reason"] = "not reached", stopped or "the run ended before this step"
            self.doc["stopped"] = stopped
            self.doc["complete"] = stopped is None
            self.doc["summary"] = summarize(self.doc)
            self.save()
            self.closed = True
            self.final = copy.deepcopy(self.doc)
        if report is not None and self.out is not None:
            report(self.final, self.out)
        return self.final


class Watchdog:
    """Calls ``on_expire`` from a daemon thread after ``seconds`` unless cancelled first."""

    def __init__(self, seconds: float, on_expire: Callable[[], None]) -> None:
        if not seconds > 0:
            raise ValueError(f"seconds must be positive, got {seconds!r}")
        self.timer = threading.Timer(seconds, on_expire)
        self.timer.daemon = True

    def start(self) -> "Watchdog":
        self.timer.start()
        return self

    def cancel(self) -> None:
        self.timer.cancel()


def hard_exit(code: int) -> None:
    """End the process at once (the main thread may be inside a compilation that cannot be interrupted)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
