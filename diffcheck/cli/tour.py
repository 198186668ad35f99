"""``diffcheck tour``: run the registered checks, print the table, write the report and plots."""

from __future__ import annotations

from ._common import UsageError, output_dir, positive_int

__all__ = ["register"]


def register(sub) -> None:
    """Add the ``tour`` command."""
    tour = sub.add_parser("tour", help="run the registered checks on the toys; print a table; write a JSON report and plots",
                          description="Run every registered check (or those matching --only), print claim / source / expected / measured / verdict, and write report.json, report.md and plots to --out.")
    tour.add_argument("--only", metavar="TEXT", help="only checks whose id or source contains TEXT (comma-separated alternatives), e.g. 'ddpm' or 'Song & Ermon'")
    tour.add_argument("--out", metavar="DIR", default="diffcheck-out", help="output folder (default: diffcheck-out)")
    tour.add_argument("--json", action="store_true", help="print the report as JSON instead of the table")
    tour.add_argument("--no-plots", action="store_true", help="skip the plots")
    tour.add_argument("--quiet", action="store_true", help="no progress bar")
    tour.add_argument("--jobs", type=positive_int, metavar="N", help="processes sharing the checks and figures (default: every core for a long selection, else 1)")
    tour.add_argument("--list", action="store_true", help="list the selected checks and exit")
    tour.set_defaults(handler=run)


def run(args) -> int:
    """Run the selected checks; exit code 1 if any fails."""
    from ..checks import select
    from ..tour import run_tour

    chosen = select(args.only)
    if not chosen:
        raise UsageError(f"no check matches --only {args.only!r}")
    if args.list:
        for c in chosen:
            print(f"{c.check_id:32} {c.claim} ({c.source})")
        return 0
    output_dir(args.out)  # before the checks run: a bad --out fails at once
    report = run_tour(args.only, args.out, with_plots=not args.no_plots, progress=not (args.quiet or args.json), as_json=args.json,
                      jobs=args.jobs)
    return 0 if report["summary"]["failed"] == 0 else 1
