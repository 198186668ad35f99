"""Adapters that run other libraries' samplers against diffcheck's exact answers.

``diffcheck.adapters.diffusers`` drives diffusers' schedulers with the exact model (its
schedulers, time maps and loop) and ``diffcheck.adapters.diffusers_report`` measures them
(``verify_diffusers``, ``format_report``; its probes of known traps report as the checks'
``Record``). Both need the optional dependency: ``pip install 'diffcheck[diffusers]'``.
Nothing here imports diffusers until it is used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["verify_diffusers", "format_report"]


def verify_diffusers(*args: Any, **kwargs: Any) -> dict:
    """Measure diffusers' schedulers against the exact answer (see ``diffusers_report.verify_diffusers``)."""
    from .diffusers_report import verify_diffusers as run

    return run(*args, **kwargs)


def format_report(report: dict) -> str:
    """The report of ``verify_diffusers`` as a plain-text table (see ``diffusers_report.format_report``)."""
    from .diffusers_report import format_report as fmt

    return fmt(report)
