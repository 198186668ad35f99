"""Train toy denoisers over presets x objectives and tabulate their errors against the exact scores.

    python -m diffcheck.learned --out learned-table
    python -m diffcheck.learned --out quick --presets two_modes ring --objectives ddpm vp --steps 2000

Writes ``table.json`` and ``table.md`` to ``--out`` (atomically, after every recipe) and prints the table; each
training checkpoints under ``--out/runs/``, so running the same command again resumes where it stopped.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import toy

from ..io import writable_dir
from .objectives import ContinuousVE, ContinuousVP, DDPMSimple, Hybrid, NCSNLadder
from .report import TABLE_PRESETS, error_table, markdown_table, table_recipes

OBJECTIVES = {"ncsn": NCSNLadder, "ddpm": DDPMSimple, "hybrid": Hybrid, "vp": ContinuousVP, "ve": ContinuousVE}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diffcheck.learned", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None, help="folder for table.json, table.md and the trainings' checkpoints "
                                                     "(a second run with the same --out resumes)")
    parser.add_argument("--presets", nargs="+", default=list(TABLE_PRESETS), choices=sorted(toy.PRESETS))
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), choices=list(OBJECTIVES))
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=20000, help="draws per comparison time")
    parser.add_argument("--samples", type=int, default=2000, help="samples in the two-sample test")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.steps < 0:
        parser.error("--steps must be >= 0")
    if args.out is not None:
        writable_dir(args.out, "--out")  # before any work: an unwritable --out fails at once
    recipes = table_recipes(args.presets, [OBJECTIVES[o]() for o in args.objectives], steps=args.steps,
                            hidden=args.hidden, blocks=args.blocks, seed=args.seed, batch_size=args.batch_size, lr=args.lr)
    reports = error_table(recipes, progress=not args.no_progress, out_dir=args.out, n=args.n, n_samples=args.samples)
    print(markdown_table(reports))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, OSError) as err:
        sys.exit(f"python -m diffcheck.learned: error: {err}")
