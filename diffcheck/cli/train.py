"""``diffcheck train toy|digits``: the arguments after the target are passed on to that trainer."""

from __future__ import annotations

from ._common import Parser, UsageError

__all__ = ["register", "TARGETS"]

TARGETS = ("digits", "toy")


def register(sub) -> None:
    """Add the ``train`` command."""
    train = sub.add_parser("train", help="train a toy model or the digits demo",
                           description="toy: train a small network on a toy with an objective (see 'diffcheck train toy --help'); digits: the DDPM digits demo (arguments are passed on).")
    tsub = train.add_subparsers(dest="target", metavar="TARGET", parser_class=Parser)
    tsub.add_parser("digits", help="train a small DDPM on scikit-learn's digits and write a sample grid (see 'diffcheck train digits --help')", add_help=False)
    tsub.add_parser("toy", help="train toy networks over presets x objectives and tabulate their errors against the exact score (see 'diffcheck train toy --help')", add_help=False)
    train.set_defaults(handler=run)


def run(args) -> int:
    """Hand the remaining arguments to the chosen trainer."""
    rest = list(getattr(args, "rest", []))
    if args.target == "digits":
        from ..demos.digits import main as digits_main

        return int(digits_main(rest) or 0)
    if args.target == "toy":
        from ..learned.__main__ import main as toy_main

        return int(toy_main(rest) or 0)
    raise UsageError("train needs a target: digits or toy")
