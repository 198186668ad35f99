"""``diffcheck verify-diffusers``: drive diffusers' schedulers with the exact model and report."""

from __future__ import annotations

from ._common import UsageError, output_file

__all__ = ["register"]


def register(sub) -> None:
    """Add the ``verify-diffusers`` command."""
    vd = sub.add_parser("verify-diffusers", help="drive diffusers' schedulers with the exact model and report their errors",
                        description="Needs the optional dependency: pip install 'diffcheck[diffusers]'.")
    vd.add_argument("--quick", action="store_true", help="fewer configurations and steps")
    vd.add_argument("--out", metavar="FILE", help="JSON path (default diffcheck-out/diffusers_report.json)")
    vd.set_defaults(handler=run)


def run(args) -> int:
    """Run the report and print it."""
    out = args.out or "diffcheck-out/diffusers_report.json"
    output_file(out, suffixes=(".json",))  # before the work (minutes): a bad --out fails at once
    try:
        from ..adapters import format_report, verify_diffusers
    except ImportError as err:
        raise UsageError(f"{err} (install it with: pip install 'diffcheck[diffusers]')") from None
    report = verify_diffusers(out=out, quick=args.quick)
    print(format_report(report))
    return 0
