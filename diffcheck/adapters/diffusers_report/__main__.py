"""``python -m diffcheck.adapters.diffusers_report [--quick] [--out PATH]``: print the report's table, write its JSON."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .cases import DEFAULT_STEPS
from .report import verify_diffusers
from .text import format_report


def main(argv: Sequence[str] | None = None) -> int:
    """Run the report with the command line's arguments and print it; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m diffcheck.adapters.diffusers_report", description=__doc__)
    parser.add_argument("--out", help="write the report as JSON to this path")
    parser.add_argument("--quick", action="store_true", help="a representative subset at few steps")
    parser.add_argument("--steps", type=int, nargs="+", help=f"step counts (default {' '.join(map(str, DEFAULT_STEPS))})")
    parser.add_argument("--schedulers", nargs="+", help="keep configurations whose name or class contains one of these")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    args = parser.parse_args(argv)
    report = verify_diffusers(args.schedulers, tuple(args.steps) if args.steps else DEFAULT_STEPS, args.out,
                              not args.no_progress, args.quick)
    sys.stdout.write(format_report(report))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
