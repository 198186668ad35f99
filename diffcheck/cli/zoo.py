"""``diffcheck zoo``: real sampler bugs re-created beside their fixes, and which generic check caught each."""

from __future__ import annotations

import json

__all__ = ["register"]


def register(sub) -> None:
    """Add the ``zoo`` command."""
    z = sub.add_parser("zoo", help="re-created real sampler bugs and the generic checks that catch them")
    z.add_argument("--only", nargs="+", metavar="ID", help="entries to run (e.g. diffusers#590)")
    z.add_argument("--json", action="store_true", help="print the records as JSON")
    z.add_argument("--out", metavar="FILE", help="also write the records as JSON to FILE")
    z.set_defaults(handler=run)


def run(args) -> int:
    """Run the zoo and print its table."""
    from ..zoo import ENTRIES, format_table, zoo_table

    if args.only:
        known = {e.id for e in ENTRIES}
        unknown = [i for i in args.only if i not in known]
        if unknown:
            raise ValueError(f"--only: unknown entries {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
    table = zoo_table(args.only, progress=True)
    if args.out:
        from ..io import write_json

        write_json(args.out, table)
    print(json.dumps(table, indent=1, default=str) if args.json else format_table(table), end="")
    return 0
