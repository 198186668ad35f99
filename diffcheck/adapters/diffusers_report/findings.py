"""Findings of the diffusers report as the checks' record type: the ``probe`` decorator and their JSON form.

A probe examines one known trap of diffusers' schedulers and returns an ``Outcome``; the
decorator makes it return a ``Record`` (passed: the exact answer holds; failed: the trap is
there) whose source names the configurations concerned. In the report's JSON a finding is
the record's dictionary plus the fields that earlier reports carried: ``title`` (the
claim), ``discrepancy`` (not passed), ``size``, ``detail`` and ``configurations``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ...checks import Outcome, Record, recorded

__all__ = ["probe", "outcome", "configuration_finding", "to_json"]


def probe(id: str, title: str, configurations: Sequence[str] = ()) -> Callable[[Callable[..., Outcome]], Callable[..., Record]]:
    """A probe of a diffusers trap: ``fn(...) -> Outcome`` becomes ``fn(...) -> Record`` (not entered in the tour)."""
    source = "diffusers " + "; ".join(configurations) if configurations else "diffusers"

    def wrap(fn: Callable[..., Outcome]) -> Callable[..., Record]:
        run = recorded(id, source, title)(fn)
        run.configurations = list(configurations)  # type: ignore[attr-defined]
        return run

    return wrap


def outcome(discrepancy: bool, expected: Any, measured: Any, size: Any, detail: str, *, tolerance: Any = None,
            rule: str = "") -> Outcome:
    """A probe's Outcome: ``size`` (the few numbers that say how large the trap is) and ``detail`` (how it was measured)."""
    return Outcome(expected=expected, measured=measured, tolerance=tolerance, passed=not bool(discrepancy),
                   tolerance_note=rule, details={"size": size, "detail": detail})


def configuration_finding(res: dict) -> Record:
    """A configuration whose verdict is a discrepancy or a failure, as a failed record."""
    label = res["scheduler"]["label"]
    worst = max((r.get("agreement", 0.0) for r in res["rows"]), default=None)
    return Record(
        id=f"configuration:{res['name']}", source=f"diffusers {label}", claim=f"{label}: {res['verdict']}",
        expected=f"agreement with {res['comparator']['name']}" if res["expect_match"] else "convergence",
        measured=res["notes"], tolerance=None, tolerance_note="the configuration's verdict (see its notes)", passed=False,
        seconds=float(res.get("seconds", 0.0)),
        details={"size": {"largest_agreement_distance": worst}, "detail": "; ".join(res["notes"])},
    )


def to_json(rec: Record, configurations: Sequence[str] | None = None) -> dict:
    """The record's dictionary with the fields of earlier reports: title, discrepancy, size, detail, configurations."""
    out = rec.to_dict()
    details = dict(out.pop("details"))
    size, detail = details.pop("size", None), details.pop("detail", "")
    if configurations is None:
        configurations = [] if rec.source == "diffusers" else rec.source[len("diffusers "):].split("; ")
    out.update(details=details, title=rec.claim, discrepancy=not rec.passed, size=size, detail=detail,
               configurations=list(configurations))
    return out
