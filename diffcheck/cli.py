"""The command line: ``diffcheck tour`` runs the verification tour."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2
        self.exit(2, f"diffcheck: error: {message} (see 'diffcheck --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``diffcheck`` command."""
    p = _Parser(prog="diffcheck", description="Diffusion and score-based models, verified against exact answers.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    tour = sub.add_parser("tour", help="run the registered checks on the toys; print a table; write a JSON report and plots",
                          description="Run every registered check (or those matching --only), print claim / source / expected / measured / verdict, and write report.json, report.md and plots to --out.")
    tour.add_argument("--only", metavar="TEXT", help="only checks whose id or source contains TEXT (comma-separated alternatives), e.g. 'ddpm' or 'Song & Ermon'")
    tour.add_argument("--out", metavar="DIR", default="diffcheck-out", help="output folder (default: diffcheck-out)")
    tour.add_argument("--json", action="store_true", help="print the report as JSON instead of the table")
    tour.add_argument("--no-plots", action="store_true", help="skip the plots")
    tour.add_argument("--quiet", action="store_true", help="no progress bar")
    tour.add_argument("--list", action="store_true", help="list the selected checks and exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``diffcheck`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "tour":
        from .checks import select
        from .tour import run_tour

        chosen = select(args.only)
        if not chosen:
            sys.stderr.write(f"diffcheck: error: no check matches --only {args.only!r}\n")
            return 2
        if args.list:
            for c in chosen:
                print(f"{c.check_id:32} {c.claim} ({c.source})")
            return 0
        report = run_tour(args.only, args.out, with_plots=not args.no_plots, progress=not (args.quiet or args.json), as_json=args.json)
        return 0 if report["summary"]["failed"] == 0 else 1
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
