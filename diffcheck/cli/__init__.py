"""The command line: one module per command, each with ``register(subparsers)`` and a handler.

Bad arguments (an output path that cannot be written among them, checked before any work) end with
one line on stderr and exit code 2, never a traceback; a sampler's numerical failure or a file
that fails mid-run ends with one line and exit code 1.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Sequence

# Idle OpenMP threads sleep instead of spinning (set before any command loads torch; a user's value is kept):
# on a machine shared with other jobs, spinning threads made training 15-30x slower than one thread.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ._common import Parser, UsageError
from .sample import PROCESSES, SAMPLERS

__all__ = ["main", "build_parser", "COMMANDS", "SAMPLERS", "PROCESSES", "UsageError"]

# Modules of this package, one per command, in the order --help lists them.
COMMANDS = ("tour", "equations", "sample", "plot", "train", "bench", "convert", "verify_diffusers", "verify_kdiffusion", "zoo")

# Commands whose arguments after the first word are handed on to another parser.
_PASS_THROUGH = {"train": ("digits", "toy")}


def build_parser() -> Parser:
    """The argument parser of the ``diffcheck`` command."""
    p = Parser(prog="diffcheck", description="Diffusion and score-based models, verified against exact answers.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``diffcheck`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    rest: list[str] = []
    if len(argv) >= 2 and argv[1] in _PASS_THROUGH.get(argv[0], ()):
        argv, rest = argv[:2], argv[2:]
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    args.rest = rest
    try:
        return int(args.handler(args) or 0)
    except (UsageError, ValueError, TypeError) as err:
        sys.stderr.write(f"diffcheck: error: {err}\n".replace("\n", " ").rstrip() + "\n")
        return 2
    except FloatingPointError as err:  # a sampler or solver reached a non-finite state: say where, no traceback
        sys.stderr.write(f"diffcheck: failed: {err}\n".replace("\n", " ").rstrip() + "\n")
        return 1
    except BrokenPipeError:  # the reader went away (e.g. piped into head)
        sys.stderr.close()
        return 0
    except OSError as err:  # a file that could not be written or read mid-run (disk full, permissions changed)
        where = f" {err.filename}" if getattr(err, "filename", None) else ""
        sys.stderr.write(f"diffcheck: failed:{where}: {err.strerror or err}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("diffcheck: interrupted\n")
        return 130
