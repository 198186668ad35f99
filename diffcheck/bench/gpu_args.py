"""The GPU benchmark's command-line options, shared by ``diffcheck bench gpu`` and ``python -m diffcheck.bench.gpu``
(no heavy imports: the ``diffcheck`` parser is built on every command)."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "DEFAULTS", "HARD_STOP_GRACE_S"]

HARD_STOP_GRACE_S = 60.0  # past the budget, a step still running is abandoned and the document closed
DEFAULTS = {"budget_s": 420.0, "hard_stop_s": None, "dry_run": False, "device": None, "cpu_compile": False,
            "no_diffusers": False, "quiet": False, "weights": None}


def add_arguments(ap: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add the options (their defaults are ``DEFAULTS``)."""
    ap.add_argument("--budget-s", type=float, default=DEFAULTS["budget_s"], help="seconds for the whole run (default 420); 0 for no limit")
    ap.add_argument("--hard-stop-s", type=float, default=None,
                    help=f"abandon a step still running at this time and close the results (default: budget + {HARD_STOP_GRACE_S:g} s)")
    ap.add_argument("--dry-run", action="store_true", help="the same plan on the CPU with tiny configurations")
    ap.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when present)")
    ap.add_argument("--cpu-compile", action="store_true", help="on a CPU, run the compiled variants through dynamo's eager backend")
    ap.add_argument("--no-diffusers", action="store_true", help="leave diffusers out")
    ap.add_argument("--weights", metavar="PATH", default=None,
                    help="benchmark this checkpoint (any file or folder 'diffcheck.nets.load' reads) in place of the DDPM U-Net")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
