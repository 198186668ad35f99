"""Mutation testing of the math modules: single-point changes, each judged by the tests mapped to its module.

A mutant is one small change to one source file (an operator swapped, a comparison
flipped, a constant nudged, a term dropped, a default changed). It is applied to a
scratch copy of the tree (never to the tree given), the mapped tests run on that copy,
and the mutant is *killed* when they fail, *survives* when they pass, or *times out*.
A surviving mutant is a change no test notices: either equivalent to the original or a
gap in the tests.

    python tools/mutate.py --list                          # mutation points per module
    python tools/mutate.py --modules samplers process --per-module 40 --seed 0 \\
        --budget-hours 3 --out benchmarks/results/mutation.json   # a seeded campaign
    python tools/mutate.py --modules samplers --only 'diffcheck/samplers/ddim.py:38:11:binop:+->-'   # one mutant

Mutants are drawn per module in a seeded random order and run round robin over the
modules, so a campaign is reproducible and, stopped by ``--budget-hours``, still holds a
fair random sample of every module. Results are written after every mutant; ``--resume``
skips the mutants already in ``--out``. The tests run under ``nice`` (``--nice``), one
process at a time, on a scratch copy of ``--src``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the sibling module importable
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from mutants import Mutant, apply, module_mutants, sample  # noqa: E402
from mutation_map import MODULES  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("diffcheck", "toy", "tests", "pyproject.toml")
# -- running the tests on a scratch copy ---------------------------------------------------------------


def make_scratch(src: Path, where: Path | None) -> Path:
    """A copy of the tree's package, toy data, tests and configuration (no bytecode) to mutate."""
    dest = Path(tempfile.mkdtemp(prefix="mutate-", dir=where))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")
    for name in COPIED:
        p = src / name
        if p.is_dir():
            shutil.copytree(p, dest / name, ignore=ignore)
        elif p.exists():
            shutil.copy2(p, dest / name)
    return dest


def _env(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(scratch), PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               HYPOTHESIS_PROFILE="ci", OMP_WAIT_POLICY="PASSIVE")
    return env


def _pytest_args(name: str) -> list[str]:
    spec = MODULES[name]
    args = ["-x", "-q", "--no-header", "-p", "no:cacheprovider", *spec["tests"]]
    return args + (["-k", spec["k"]] if spec.get("k") else [])


def _tail(text: str) -> str:
    """The first failing test (pytest's short summary) and the final line of a run's output."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    failed = [ln for ln in lines if ln.startswith(("FAILED ", "ERROR "))][:1]
    return " | ".join(x[:300] for x in failed + lines[-1:])


class Runner:
    """Runs pytest on the scratch copy, one process at a time.

    By default a server process imports torch, scipy, pytest and hypothesis once and forks a
    child per run, which imports the (mutated) package afresh: this saves the interpreter and
    library start-up of every mutant. ``fork=False`` starts a new interpreter per run instead.
    """

    def __init__(self, scratch: Path, python: str, nice: int, fork: bool = True) -> None:
        self.scratch, self.python, self.nice, self.fork = scratch, python, nice, fork
        self.server: subprocess.Popen | None = None
        if fork:
            cmd = [python, str(Path(__file__).resolve()), "--serve"]
            self.server = subprocess.Popen((["nice", "-n", str(nice)] if nice else []) + cmd, cwd=scratch, env=_env(scratch),
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def close(self) -> None:
        if self.server is not None:
            self.server.stdin.close()  # type: ignore[union-attr]
            self.server.wait(timeout=60)
            self.server = None

    def run(self, name: str, cpu_limit: float | None, wall_limit: float) -> tuple[str, float, float, str]:
        """Module ``name``'s tests: ("passed" | "failed" | "no-tests" | "timeout", CPU seconds, wall seconds, output tail)."""
        t0 = time.perf_counter()
        if self.server is not None:
            log = self.scratch / ".mutant-run.log"
            self.server.stdin.write(json.dumps({"args": _pytest_args(name), "cwd": str(self.scratch), "log": str(log),  # type: ignore[union-attr]
                                                "cpu_limit": cpu_limit, "wall_limit": wall_limit}) + "\n")
            self.server.stdin.flush()  # type: ignore[union-attr]
            reply = self.server.stdout.readline()  # type: ignore[union-attr]
            if not reply:
                raise RuntimeError("the test server process ended unexpectedly")
            answer = json.loads(reply)
            rc, cpu = answer["rc"], answer["cpu"]
            tail = _tail(log.read_text(errors="replace")) if log.exists() else ""
        else:
            import resource

            def limit() -> None:
                if cpu_limit:
                    resource.setrlimit(resource.RLIMIT_CPU, (int(math.ceil(cpu_limit)), int(math.ceil(cpu_limit)) + 5))

            cmd = [self.python, "-m", "pytest", *_pytest_args(name)]
            log_path = self.scratch / ".mutant-run.log"
            with open(log_path, "w") as log_file:
                proc = subprocess.Popen((["nice", "-n", str(self.nice)] if self.nice else []) + cmd, cwd=self.scratch,
                                        env=_env(self.scratch), stdout=log_file, stderr=subprocess.STDOUT,
                                        start_new_session=True, preexec_fn=limit)
                rc, cpu, _ = _wait(proc.pid, wall_limit)
                proc.returncode = -1  # reaped by _wait
            tail = _tail(log_path.read_text(errors="replace"))
        wall = time.perf_counter() - t0
        if rc is None:
            return "timeout", cpu, wall, tail
        return ("passed" if rc == 0 else "no-tests" if rc == 5 else "failed"), cpu, wall, tail


def _wait(pid: int, wall_limit: float) -> tuple[int | None, float, bool]:
    """Wait for child ``pid``: (exit code or None, its CPU seconds, whether it ran out of time)."""
    deadline = time.monotonic() + wall_limit
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            cpu = usage.ru_utime + usage.ru_stime
            out_of_time = os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL)
            return (None if out_of_time else os.waitstatus_to_exitcode(status)), cpu, out_of_time
        if time.monotonic() > deadline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, _, usage = os.wait4(pid, 0)
            return None, usage.ru_utime + usage.ru_stime, True
        time.sleep(0.1)


def serve() -> int:
    """The fork server: read one JSON request a line, run pytest in a forked child, answer its exit code and CPU time.

    A child gets ``cpu_limit`` seconds of CPU (RLIMIT_CPU: a limit that does not depend on how loaded the
    machine is) and ``wall_limit`` seconds of wall time as a safety net.
    """
    import resource

    import numpy  # noqa: F401  (imported once here, shared by every child)
    import pytest
    import scipy.stats  # noqa: F401
    import torch  # noqa: F401

    for line in sys.stdin:
        req = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: its own process group, output to the log, pytest in the scratch copy
            code = 3
            try:
                os.setpgid(0, 0)
                if req.get("cpu_limit"):
                    lim = int(math.ceil(req["cpu_limit"]))
                    resource.setrlimit(resource.RLIMIT_CPU, (lim, lim + 5))
                fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.chdir(req["cwd"])
                code = int(pytest.main(req["args"]))
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass
        rc, cpu, out_of_time = _wait(pid, float(req["wall_limit"]))
        print(json.dumps({"rc": rc, "cpu": cpu, "timeout": out_of_time}), flush=True)
    return 0


def _check_imports_scratch(scratch: Path, python: str) -> None:
    code = "import diffcheck, toy; print(diffcheck.__file__); print(toy.__file__)"
    out = subprocess.run([python, "-c", code], cwd=scratch, env=_env(scratch), capture_output=True, text=True, check=True).stdout
    if any(not Path(p).resolve().is_relative_to(scratch.resolve()) for p in out.split()):
        raise SystemExit(f"the test interpreter does not import the scratch copy first:\n{out}")


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def summarize(records: list[dict]) -> dict:
    """Mutants, killed, survived, timeouts and kill rate (killed + timeouts over all) of a module's records."""
    n = len(records)
    killed = sum(r["status"] == "killed" for r in records)
    timeouts = sum(r["status"] == "timeout" for r in records)
    survived = [r["id"] for r in records if r["status"] == "survived"]
    return {"mutants": n, "killed": killed, "timeouts": timeouts, "survived": len(survived),
            "kill_rate": round((killed + timeouts) / n, 4) if n else None, "survivors": survived}


def _run_mutant(runner: Runner, scratch: Path, name: str, m: Mutant, cpu_limit: float, wall_limit: float) -> dict:
    path = scratch / m.path
    original = path.read_text()
    path.write_text(apply(original, m))
    try:
        status, cpu, wall, tail = runner.run(name, cpu_limit, wall_limit)
    finally:
        path.write_text(original)
    verdict = {"failed": "killed", "passed": "survived", "timeout": "timeout"}.get(status, status)
    return {**asdict(m), "id": m.id, "status": verdict, "cpu_seconds": round(cpu, 1), "wall_seconds": round(wall, 1),
            "tail": tail}


def campaign(args: argparse.Namespace) -> dict:
    """Run the sampled mutants of every module, round robin (mutant i of each module in turn) until done or out of time."""
    src = Path(args.src).resolve()
    out = Path(args.out) if args.out else None
    data: dict = {"source": str(args.label or src.name), "seed": args.seed, "per_module": args.per_module, "modules": {}}
    if out and args.resume and out.exists():
        data = json.loads(out.read_text())
    queues: dict[str, list[Mutant]] = {}
    for name in args.modules:
        every = module_mutants(src, name)
        entry = data["modules"].setdefault(name, {"files": MODULES[name]["files"], "tests": MODULES[name]["tests"], "records": []})
        entry["points"] = len(every)
        chosen = [m for m in every if m.id in args.only] if args.only else sample(every, args.per_module, args.seed, name)
        done = {r["id"] for r in entry["records"]}
        queues[name] = [m for m in chosen if m.id not in done]
    deadline = time.monotonic() + 3600.0 * args.budget_hours if args.budget_hours else math.inf
    scratch = make_scratch(src, Path(args.scratch) if args.scratch else None)
    runner = None
    try:
        _check_imports_scratch(scratch, args.python)
        runner = Runner(scratch, args.python, args.nice, fork=not args.no_fork)
        while any(queues.values()) and time.monotonic() < deadline:
            for name in args.modules:
                if not queues[name] or time.monotonic() >= deadline:
                    continue
                entry = data["modules"][name]
                if "baseline_cpu_seconds" not in entry:
                    status, cpu, wall, tail = runner.run(name, None, args.max_wall)
                    if status != "passed":
                        raise SystemExit(f"{name}: the mapped tests do not pass on the unmutated tree ({status}): {tail}")
                    entry["baseline_cpu_seconds"], entry["baseline_wall_seconds"] = round(cpu, 1), round(wall, 1)
                    print(f"[{name}] baseline {cpu:.1f} s CPU ({wall:.1f} s wall), {len(queues[name])} mutants of "
                          f"{entry['points']} points", file=sys.stderr, flush=True)
                cpu_limit = args.timeout_factor * entry["baseline_cpu_seconds"] + 30.0
                m = queues[name].pop(0)
                rec = _run_mutant(runner, scratch, name, m, cpu_limit, args.max_wall)
                entry["records"].append(rec)
                entry.update(summarize(entry["records"]))
                print(f"[{name} {len(entry['records'])}] {rec['status']:8s} {rec['cpu_seconds']:6.1f} s CPU  {m.id}",
                      file=sys.stderr, flush=True)
                if out:
                    _write(out, data)
    finally:
        if runner is not None:
            runner.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", default=str(ROOT), help="the tree to mutate (copied; never changed)")
    ap.add_argument("--modules", nargs="+", default=list(MODULES), choices=list(MODULES), metavar="NAME",
                    help=f"modules to mutate (default all: {', '.join(MODULES)})")
    ap.add_argument("--per-module", type=int, default=40, help="mutants drawn per module (0: all)")
    ap.add_argument("--budget-hours", type=float, default=None,
                    help="start no mutant after this many hours (the modules are taken in turn, so each gets a fair share)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="JSON file of the results (rewritten after every mutant)")
    ap.add_argument("--resume", action="store_true", help="skip the mutants already recorded in --out")
    ap.add_argument("--only", nargs="+", help="run just these mutant ids (see --list --verbose)")
    ap.add_argument("--list", action="store_true", help="count (with --verbose: print) the mutation points and exit")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--timeout-factor", type=float, default=3.0,
                    help="a mutant's CPU-time limit: this many times the unmutated run's CPU time, plus 30 s")
    ap.add_argument("--max-wall", type=float, default=4 * 3600.0, help="wall-clock limit of any one run, seconds")
    ap.add_argument("--python", default=sys.executable, help="interpreter that runs pytest")
    ap.add_argument("--nice", type=int, default=19, help="niceness of the test processes (0: none)")
    ap.add_argument("--scratch", help="folder for the scratch copy (default: the system's temporary folder)")
    ap.add_argument("--label", help="name of the source recorded in the JSON (e.g. a commit)")
    ap.add_argument("--no-fork", action="store_true", help="a new interpreter per run instead of forking a warm one")
    ap.add_argument("--report", metavar="JSON", help="print the table and the survivors of a campaign's JSON and exit")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        return serve()
    if args.list:
        for name in args.modules:
            ms = module_mutants(Path(args.src), name)
            print(f"{name}: {len(ms)} mutation points in {len(MODULES[name]['files'])} files")
            if args.verbose:
                for m in ms:
                    print(f"  {m.id}  ->  {m.replacement}")
        return 0
    if args.report:
        report(json.loads(Path(args.report).read_text()), Path(args.src), survivors=True)
        return 0
    report(campaign(args), Path(args.src), survivors=args.verbose)
    return 0


def report(data: dict, src: Path, survivors: bool = False) -> None:
    """Print the per-module table (and each survivor with its source line and replacement)."""
    print(f"{'module':12s} {'mutants':>7s} {'killed':>6s} {'timeout':>7s} {'survived':>8s} {'kill rate':>9s}")
    for name, e in data["modules"].items():
        if "mutants" in e:
            print(f"{name:12s} {e['mutants']:7d} {e['killed']:6d} {e['timeouts']:7d} {e['survived']:8d} {e['kill_rate']:9.2f}")
    if not survivors:
        return
    for name, e in data["modules"].items():
        for r in e.get("records", []):
            if r["status"] == "survived":
                path = src / r["path"]
                line = path.read_text().splitlines()[r["line"] - 1].strip() if path.exists() else ""
                print(f"\n{r['path']}:{r['line']} [{r['kind']}] {r['description']}\n    {line}\n    -> {r['replacement']}")


if __name__ == "__main__":
    sys.exit(main())
