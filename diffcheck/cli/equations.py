"""``diffcheck equations``: print the equation index (paper, equation, implementing functions, checks, last verdict)."""

from __future__ import annotations

from ._common import UsageError

__all__ = ["register"]


def register(sub) -> None:
    """Add the ``equations`` command."""
    eq = sub.add_parser("equations", help="print the index of equations: paper, reference, implementing functions, checks, last verdict",
                        description="The index of docs/equations.md, built from the samplers' declared papers, the docstrings and "
                                    "the checks' sources; verdicts come from a recorded tour.")
    eq.add_argument("--paper", metavar="TEXT", help="only papers whose citation contains TEXT, e.g. 'Ho et al. 2020'")
    eq.add_argument("--tour", metavar="FILE", help="take verdicts from this report of 'diffcheck tour --json' (default: the recorded tour)")
    eq.add_argument("--write", action="store_true", help="write docs/equations.md (and, with --tour, record that tour)")
    eq.set_defaults(handler=run)


def run(args) -> int:
    """Print the index, or write it."""
    import json
    from pathlib import Path

    from .. import equations as E
    from ..io import write_json, write_text

    if args.tour:
        path = Path(args.tour)
        if not path.is_file():
            raise UsageError(f"--tour: no such file {args.tour!r}")
        try:
            record = E.record_tour(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as err:
            raise UsageError(f"--tour: {args.tour!r} is not JSON ({err})") from None
    else:
        record = E.load_record()
    if args.write and args.paper:
        raise UsageError("--write writes the whole index; leave out --paper")
    text = E.render(E.build_index(), record, paper=args.paper, checks=None if args.paper else E.uncited_checks())
    if args.paper and "## " not in text:
        raise UsageError(f"--paper: no paper matches {args.paper!r}")
    if args.write:
        if not E.INDEX.parent.is_dir():
            raise UsageError(f"--write: {E.INDEX.parent} is not a folder of this checkout")
        if args.tour:
            write_json(E.RECORD, record)
        write_text(E.INDEX, text)
        print(f"wrote {E.INDEX}" + (f" and {E.RECORD}" if args.tour else ""))
        return 0
    print(text, end="")
    return 0
