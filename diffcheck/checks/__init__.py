"""Registered checks: each runs one claim and returns a Record; tests assert on it and the tour prints it.

A check is written once, as a function decorated with ``@check(id, source, claim)`` that
returns an ``Outcome``; calling it returns a ``Record`` (with its id, source, claim,
expected and measured values, tolerance and how it was derived, verdict and run time).
Keyword arguments let a test run the same check on a deliberately wrong component to
show that it fails. ``recorded`` gives the same record type to probes outside the tour
(the diffusers report's findings).
"""

from __future__ import annotations

import functools
import importlib
import math
import pkgutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

__all__ = ["Outcome", "Record", "check", "recorded", "tour_plot", "registry", "plots", "select", "modules"]


def modules() -> list[str]:
    """The check modules of this package, in tour order (each module's ``ORDER``, then its name)."""
    names = []
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            mod = importlib.import_module(f"{__name__}.{info.name}")
            names.append((getattr(mod, "ORDER", 100), info.name, mod.__name__))
    return [full for _, _, full in sorted(names)]


@dataclass
class Outcome:
    """What a check function returns: expected vs measured, the tolerance, and why that tolerance."""

    expected: Any
    measured: Any
    tolerance: Any
    passed: bool
    tolerance_note: str = ""
    details: dict = field(default_factory=dict)


@dataclass
class Record:
    """The result of running one check."""

    id: str
    source: str
    claim: str
    expected: Any
    measured: Any
    tolerance: Any
    tolerance_note: str
    passed: bool
    seconds: float
    details: dict = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"[{verdict}] {self.id} ({self.source}): {self.claim}\n"
            f"  expected {_fmt(self.expected)}; measured {_fmt(self.measured)}; "
            f"tolerance {_fmt(self.tolerance)} ({self.tolerance_note})"
        )

    def to_dict(self) -> dict:
        """A JSON-safe dictionary (non-finite numbers become strings)."""
        return {
            "id": self.id,
            "source": self.source,
            "claim": self.claim,
            "expected": _jsonable(self.expected),
            "measured": _jsonable(self.measured),
            "tolerance": _jsonable(self.tolerance),
            "tolerance_note": self.tolerance_note,
            "passed": bool(self.passed),
            "seconds": round(float(self.seconds), 4),
            "details": _jsonable(self.details),
        }


def _jsonable(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().tolist()
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, dict):
        return {str(k): _jsonable(u) for k, u in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(u) for u in v]
    if isinstance(v, (bool, int, str)) or v is None:
        return v
    return str(v)


def _fmt(v: Any) -> str:
    v = _jsonable(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        inner = ", ".join(_fmt(u) for u in v[:6])
        return "[" + inner + (", ..." if len(v) > 6 else "") + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_fmt(u)}" for k, u in list(v.items())[:6]) + "}"
    return str(v)


_REGISTRY: dict[str, Callable[..., Record]] = {}


def recorded(id: str, source: str, claim: str) -> Callable[[Callable[..., Outcome]], Callable[..., Record]]:
    """Make a function that returns an Outcome return a Record instead, timed, without entering the tour.

    ``check`` is this plus registration; probes of other libraries' code (the diffusers
    report) use it alone, so that they report in the same record type.
    """

    def wrap(fn: Callable[..., Outcome]) -> Callable[..., Record]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Record:
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            if not isinstance(out, Outcome):
                raise TypeError(f"check {id} must return an Outcome, got {type(out).__name__}")
            return Record(
                id=id, source=source, claim=claim, expected=out.expected, measured=out.measured,
                tolerance=out.tolerance, tolerance_note=out.tolerance_note, passed=bool(out.passed),
                seconds=time.perf_counter() - start, details=out.details,
            )

        run.check_id = id  # type: ignore[attr-defined]
        run.source = source  # type: ignore[attr-defined]
        run.claim = claim  # type: ignore[attr-defined]
        return run

    return wrap


def check(id: str, source: str, claim: str) -> Callable[[Callable[..., Outcome]], Callable[..., Record]]:
    """Register a check function under ``id``; the decorated function returns a Record."""

    def wrap(fn: Callable[..., Outcome]) -> Callable[..., Record]:
        if id in _REGISTRY:
            raise ValueError(f"check id {id!r} is registered twice")
        run = recorded(id, source, claim)(fn)
        _REGISTRY[id] = run
        return run

    return wrap


_PLOTS: dict[str, Callable[[Any], Any]] = {}


def tour_plot(name: str) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    """Register ``fn(path)`` that draws the tour figure ``name`` (a PNG file name) at ``path``."""

    def wrap(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        if name in _PLOTS:
            raise ValueError(f"tour plot {name!r} is registered twice")
        _PLOTS[name] = fn
        return fn

    return wrap


def _load() -> None:
    modules()


def registry() -> dict[str, Callable[..., Record]]:
    """Every registered check by id, in tour order (importing the check modules on first use)."""
    _load()
    order = {m: i for i, m in enumerate(modules())}
    items = sorted(_REGISTRY.items(), key=lambda kv: order.get(kv[1].__module__, len(order)))
    return dict(items)


def plots() -> dict[str, Callable[[Any], Any]]:
    """Every registered tour figure by file name, in tour order."""
    _load()
    order = {m: i for i, m in enumerate(modules())}
    return dict(sorted(_PLOTS.items(), key=lambda kv: order.get(kv[1].__module__, len(order))))


def select(only: str | None = None) -> list[Callable[..., Record]]:
    """Registered checks whose id or source contains ``only`` (case-insensitive), in registration order."""
    checks = list(registry().values())
    if not only:
        return checks
    keys = [k.strip().lower() for k in only.split(",") if k.strip()]
    return [c for c in checks if any(k in c.check_id.lower() or k in c.source.lower() for k in keys)]
