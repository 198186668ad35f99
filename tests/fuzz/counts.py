"""Draw bad inputs for every (target, argument) pair of the fuzz table and count the verdicts.

    python tests/fuzz/counts.py --examples 20      # tried / clear / unclear / silent, then each case that is not clear
"""

from __future__ import annotations

import argparse
import collections
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent.parent), str(HERE)]

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from harness import VERDICTS, Verdict, classify  # noqa: E402
from targets_samplers import all_targets  # noqa: E402


def pairs(only: str | None = None):
    """Every (target, bad) pair of the table, optionally those whose target name contains ``only``."""
    return [(t, b) for t in all_targets() for b in t.bad if not only or only in t.name]


def draw_verdicts(target, bad, examples: int, derandomize: bool = True) -> list[Verdict]:
    """Verdicts of up to ``examples`` bad values drawn by hypothesis for one pair."""
    out: list[Verdict] = []

    @settings(max_examples=examples, derandomize=derandomize, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data):
        value = data.draw(bad.values, label=bad.arg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out.append(classify(target, bad, value))

    run()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=20, help="examples drawn per (target, argument) pair")
    ap.add_argument("--only", help="only targets whose name contains this text")
    ap.add_argument("--all", action="store_true", help="list every case that is not clear, not one per kind")
    args = ap.parse_args(argv)
    counts: collections.Counter = collections.Counter()
    shown: dict[tuple, Verdict] = {}
    for target, bad in pairs(args.only):
        for v in draw_verdicts(target, bad, args.examples):
            counts[v.verdict] += 1
            key = (v.target, v.arg, v.what, v.verdict) if not args.all else (v.target, v.arg, v.value)
            if v.verdict != "clear" and key not in shown:
                shown[key] = v
    print(f"the fuzz table: tried {sum(counts.values())}, " + ", ".join(f"{k} {counts[k]}" for k in VERDICTS))
    for v in shown.values():
        print(v)
    return 0


if __name__ == "__main__":
    sys.exit(main())
