"""What every command shares: the one-line usage error, the parser class, argument types and output checks."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Sequence

__all__ = ["UsageError", "Parser", "positive_int", "times", "output_file", "output_dir"]


class UsageError(ValueError):
    """A bad command-line value, reported in one line with exit code 2."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line with exit code 2."""

    def error(self, message: str) -> None:
        self.exit(2, f"diffcheck: error: {message} (see 'diffcheck --help')\n")


def positive_int(text: str) -> int:
    """An argument type: a whole number of at least 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def times(text: str) -> list[float]:
    """An argument type: comma-separated times in [0, 1]."""
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated times in [0, 1], got {text!r}") from None
    if not vals or any(not 0.0 <= v <= 1.0 for v in vals):
        raise argparse.ArgumentTypeError(f"expected comma-separated times in [0, 1], got {text!r}")
    return vals


def output_file(path: str | os.PathLike, option: str = "--out", suffixes: Sequence[str] | None = None) -> Path:
    """Check, before any work, that the file ``path`` can be written (its folder writable, a suffix from ``suffixes``)."""
    from ..io import writable_file

    try:
        return writable_file(path, option, suffixes)
    except ValueError as err:
        raise UsageError(str(err)) from None


def output_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """Check, before any work, that the folder ``path`` can be created or written."""
    from ..io import writable_dir

    try:
        return writable_dir(path, option)
    except ValueError as err:
        raise UsageError(str(err)) from None
