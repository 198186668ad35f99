"""Measure the calibration table of the statistical assertions as JSON, and render it as Markdown for the README.

    python tools/calibration_table.py run --out benchmarks/results/calibration.json
    python tools/calibration_table.py render benchmarks/results/calibration.json --readme README.md

``run`` runs the cases of ``tests/calibration/calibration_cases.py`` (the slow calibration suite's
cases): each null case over ``--seeds`` seeds at alpha = ``ALPHA``, each power case over
``--power-seeds`` seeds at the assertion's default alpha and n. The JSON is rewritten after every
case, and a rerun keeps the cases already measured with the same seeds (``--fresh`` starts over).
``render`` prints the tables, or replaces the README's section between its two calibration markers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- calibration table: begin -->", "<!-- calibration table: end -->"


def _interval(lo: float, hi: float) -> str:
    return f"[{lo:.3f}, {hi:.3f}]"


def render(data: dict) -> str:
    """The Markdown tables of a calibration JSON: false-alarm rates, then power per wrong sampler."""
    lines = [f"False-alarm rate on exact samples at alpha = {data['alpha']:g} (binomial interval: where the rejection rate "
             f"of a test of size exactly alpha falls with probability 1 - {data['level']:g}; the rate's own Clopper-Pearson "
             "interval at the same level beside it):", "",
             "| assertion (exact samples) | n | alpha | seeds | rejection rate (interval) | binomial interval of alpha | verdict |",
             "|---|---|---|---|---|---|---|"]
    for r in data["null"]:
        if r["exact"]:
            verdict = "size alpha" if r["calibrated"] else "OFF"
        else:
            verdict = "at most alpha" if r["valid"] else "TOO HIGH"
        lines.append(f"| {r['name']} | {r['n']} | {r['alpha']:g} | {r['seeds']} | {r['rate']:.3f} {_interval(*r['interval'])} | "
                     f"{_interval(*r['null_interval'])} | {verdict} |")
    assertions = list(dict.fromkeys(r["assertion"] for r in data["power"]))
    wrongs = list(dict.fromkeys(r["wrong"] for r in data["power"]))
    cell = {(r["assertion"], r["wrong"]): r for r in data["power"]}
    lines += ["", f"Power against the deliberately wrong samplers of the tests (rejection rate over {data['power_seeds']} "
              f"seeds at each assertion's default alpha = {data['power_alpha']:g} and n = {data['power_n']}; * marks "
              "the assertion a check relies on to catch that sampler; null cases must stay near 0):", "",
              "| wrong sampler | " + " | ".join(assertions) + " |", "|---|" + "---|" * len(assertions)]
    for w in wrongs:
        row = []
        for a in assertions:
            r = cell.get((a, w))
            row.append("" if r is None else f"{r['rate']:.3f}{' *' if r['relied_on'] else ''}")
        lines.append(f"| {w} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def replace_section(text: str, table: str) -> str:
    """``text`` with the part between the calibration markers replaced by ``table``."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"the README has no section between {BEGIN!r} and {END!r}")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}{END}{tail}"


def run(args: argparse.Namespace) -> int:
    sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "calibration")]
    from calibration_cases import ALPHA, CATCHES, DEFAULT_ALPHA, N, null_cases, power_cases
    from tqdm import tqdm

    from diffcheck.io import write_json
    from diffcheck.testing.calibration import rejection_rate

    out = Path(args.out)
    old = json.loads(out.read_text()) if out.exists() and not args.fresh else {}
    same = old.get("seeds") == args.seeds and old.get("power_seeds") == args.power_seeds
    done_null = {r["name"]: r for r in old.get("null", [])} if same else {}
    done_power = {r["name"]: r for r in old.get("power", [])} if same else {}
    data = {"alpha": ALPHA, "seeds": args.seeds, "level": 1e-4, "power_alpha": DEFAULT_ALPHA, "power_n": N,
            "power_seeds": args.power_seeds, "null": [], "power": []}
    nulls = [c for c in null_cases() if not args.only or args.only in c.name]
    powers = [c for c in power_cases(args.power_seeds) if not args.only or args.only in f"{c.assertion} vs {c.wrong}"]
    for case in tqdm(nulls, desc="null cases", unit="case", file=sys.stderr):
        if case.name in done_null:
            data["null"].append(done_null[case.name])
            continue
        t0 = time.perf_counter()
        seeds = tqdm(range(args.seeds), desc=case.name[:40], unit="seed", file=sys.stderr, leave=False)
        r = rejection_rate(lambda seed: case.run(seed, ALPHA), seeds, alpha=ALPHA, name=case.name)
        data["null"].append({**r.to_dict(), "n": case.n, "exact": case.exact, "note": case.note,
                             "seconds": round(time.perf_counter() - t0, 1)})
        write_json(out, data)
        tqdm.write(f"null  {r}", file=sys.stderr)
    for case in tqdm(powers, desc="power cases", unit="case", file=sys.stderr):
        name = f"{case.assertion} vs {case.wrong}"
        if name in done_power:  # measured before; which assertion a check relies on may have been restated since
            data["power"].append({**done_power[name], "relied_on": (case.assertion, case.wrong) in CATCHES})
            continue
        t0 = time.perf_counter()
        r = rejection_rate(case.run, range(args.power_seeds), alpha=DEFAULT_ALPHA, name=name)
        data["power"].append({**r.to_dict(), "assertion": case.assertion, "wrong": case.wrong,
                              "relied_on": (case.assertion, case.wrong) in CATCHES,
                              "seconds": round(time.perf_counter() - t0, 1)})
        write_json(out, data)
        tqdm.write(f"power {r}", file=sys.stderr)
    write_json(out, data)
    print(render(data), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="measure the table and write the JSON")
    r.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "calibration.json"))
    r.add_argument("--seeds", type=int, default=1000, help="seeds of each null case")
    r.add_argument("--power-seeds", type=int, default=200, help="seeds of each power case")
    r.add_argument("--only", help="only cases whose name contains this text")
    r.add_argument("--fresh", action="store_true", help="measure every case again")
    d = sub.add_parser("render", help="print the Markdown tables of a JSON, or write them into a README")
    d.add_argument("json", nargs="?", default=str(ROOT / "benchmarks" / "results" / "calibration.json"))
    d.add_argument("--readme", help="replace this file's calibration section")
    args = ap.parse_args(argv)
    if args.command == "run":
        return run(args)
    table = render(json.loads(Path(args.json).read_text()))
    if args.readme:
        sys.path.insert(0, str(ROOT))
        from diffcheck.io import write_text

        path = Path(args.readme)
        write_text(path, replace_section(path.read_text(), table))
    else:
        print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
