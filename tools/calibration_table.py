"""Measure the calibration table of the statistical assertions and write it as JSON and Markdown.

    python tools/calibration_table.py --out benchmarks/results/calibration.json

Runs the cases of ``tests/calibration/calibration_cases.py`` (the slow calibration suite's cases):
each null case over ``SEEDS`` seeds at alpha = ``ALPHA``, each power case over ``POWER_SEEDS`` seeds at
the assertion's default alpha and n. Prints the Markdown table for the README.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "calibration")]

from calibration_cases import ALPHA, CATCHES, DEFAULT_ALPHA, POWER_SEEDS, SEEDS, null_cases, power_cases  # noqa: E402

from diffcheck.io import write_json  # noqa: E402
from diffcheck.testing.calibration import rejection_rate  # noqa: E402


def _interval(lo: float, hi: float) -> str:
    return f"[{lo:.3f}, {hi:.3f}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "calibration.json"))
    ap.add_argument("--seeds", type=int, default=SEEDS)
    ap.add_argument("--power-seeds", type=int, default=POWER_SEEDS)
    ap.add_argument("--only", help="only cases whose name contains this text")
    args = ap.parse_args(argv)
    rows, power = [], []
    for case in null_cases():
        if args.only and args.only not in case.name:
            continue
        t0 = time.perf_counter()
        r = rejection_rate(lambda seed: case.run(seed, ALPHA), range(args.seeds), alpha=ALPHA, name=case.name)
        rows.append({**r.to_dict(), "exact": case.exact, "note": case.note, "seconds": round(time.perf_counter() - t0, 1)})
        print(f"null  {r}", file=sys.stderr, flush=True)
    for case in power_cases(args.power_seeds):
        name = f"{case.assertion} vs {case.wrong}"
        if args.only and args.only not in name:
            continue
        t0 = time.perf_counter()
        r = rejection_rate(case.run, range(args.power_seeds), alpha=DEFAULT_ALPHA, name=name)
        power.append({**r.to_dict(), "assertion": case.assertion, "wrong": case.wrong,
                      "relied_on": (case.assertion, case.wrong) in CATCHES, "seconds": round(time.perf_counter() - t0, 1)})
        print(f"power {r}", file=sys.stderr, flush=True)
    write_json(args.out, {"alpha": ALPHA, "seeds": args.seeds, "power_alpha": DEFAULT_ALPHA, "power_seeds": args.power_seeds,
                          "null": rows, "power": power})
    print(f"| assertion (exact samples) | alpha | seeds | rejection rate | interval of a size-alpha test | size |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        kind = ("exact" if r["calibrated"] else "OFF") if r["exact"] else ("at most alpha" if r["valid"] else "TOO HIGH")
        print(f"| {r['name']} | {r['alpha']:g} | {r['seeds']} | {r['rate']:.3f} | {_interval(*r['null_interval'])} | {kind} |")
    print()
    print(f"| assertion (alpha = {DEFAULT_ALPHA:g}, n = 2000) | wrong sampler | seeds | power | interval |")
    print("|---|---|---|---|---|")
    for r in power:
        print(f"| {r['assertion']} | {r['wrong']} | {r['seeds']} | {r['rate']:.3f} | {_interval(*r['interval'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
