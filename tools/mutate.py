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
import ast
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the sibling module importable
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from mutation_map import MODULES  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("diffcheck", "toy", "tests", "pyproject.toml")
DISPLAY_ONLY = {"progress"}  # parameters whose default only changes what is shown, never a result

_BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult, ast.FloorDiv: ast.Div}
_CMP_BOUNDARY = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
                 ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
_CMP_DIRECTION = {ast.Lt: ast.Gt, ast.LtE: ast.GtE, ast.Gt: ast.Lt, ast.GtE: ast.LtE}
_SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.FloorDiv: "//", ast.Lt: "<", ast.LtE: "<=",
           ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not", ast.In: "in",
           ast.NotIn: "not in", ast.And: "and", ast.Or: "or"}


@dataclass(frozen=True)
class Mutant:
    """One single-point change: ``replacement`` replaces the source span of one node of ``path``."""

    path: str  # relative to the tree root
    line: int
    col: int
    end_line: int
    end_col: int
    kind: str
    description: str
    replacement: str

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}:{self.col}:{self.kind}:{self.description}"


# -- finding mutation points -------------------------------------------------------------------------


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """Nodes never mutated: docstrings, annotations, f-strings, ``__all__`` and error messages."""
    skip: set[int] = set()

    def mark(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                mark(first)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            mark(node.returns)
            for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs + [node.args.vararg, node.args.kwarg]:
                if a is not None:
                    mark(a.annotation)
        elif isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        elif isinstance(node, ast.JoinedStr):
            mark(node)
        elif isinstance(node, ast.Raise):
            mark(node.exc)  # the message of an error; its condition is mutated where it is tested
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            mark(node)
    return skip


def _src(node: ast.AST) -> str:
    return "(" + ast.unparse(node) + ")"


def _number_variants(v: object) -> list[tuple[str, str]]:
    if isinstance(v, bool):
        return [(f"{v}->{not v}", repr(not v))]
    if isinstance(v, int):
        if v == 0:
            return [("0->1", "1")]
        if v == 1:
            return [("1->0", "0"), ("1->2", "2")]
        return [(f"{v}->{v + 1}", repr(v + 1)), (f"{v}->{v - 1}", repr(v - 1))]
    if isinstance(v, float):
        if v == 0.0:
            return [("0.0->1.0", "1.0")]
        out = [(f"{v!r}->x1.01", repr(v * 1.01))]
        if v == 1.0:
            out.append(("1.0->0.0", "0.0"))
        return out
    return []


def _param_choices(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, list[str]]:
    """String values each parameter is compared with inside ``fn`` (its alternative settings)."""
    names = {a.arg for a in fn.args.args + fn.args.kwonlyargs}
    out: dict[str, set[str]] = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id in names:
            for c in node.comparators:
                consts = c.elts if isinstance(c, (ast.Tuple, ast.List, ast.Set)) else [c]
                for k in consts:
                    if isinstance(k, ast.Constant) and isinstance(k.value, str):
                        out.setdefault(node.left.id, set()).add(k.value)
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in names:
            for arg in node.args[1:]:
                if isinstance(arg, (ast.Tuple, ast.List)):
                    for k in arg.elts:
                        if isinstance(k, ast.Constant) and isinstance(k.value, str):
                            out.setdefault(node.args[0].id, set()).add(k.value)
    return {k: sorted(v) for k, v in out.items()}


def find_mutants(root: Path, rel: str) -> list[Mutant]:
    """Every single-point mutant of the file ``root / rel`` that compiles and differs from the original."""
    source = (root / rel).read_text()
    tree = ast.parse(source)
    skip = _skipped_nodes(tree)
    found: list[Mutant] = []

    def add(node: ast.AST, kind: str, desc: str, text: str) -> None:
        found.append(Mutant(rel, node.lineno, node.col_offset, node.end_lineno, node.end_col_offset, kind, desc, text))

    defaults: dict[int, tuple[ast.FunctionDef, str]] = {}
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            pos = fn.args.posonlyargs + fn.args.args
            pairs = list(zip(pos[len(pos) - len(fn.args.defaults):], fn.args.defaults))
            pairs += [(a, d) for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults) if d is not None]
            choices = _param_choices(fn)
            skip.update(id(d) for a, d in pairs if a.arg in DISPLAY_ONLY)
            pairs = [(a, d) for a, d in pairs if a.arg not in DISPLAY_ONLY]
            for a, d in pairs:
                defaults[id(d)] = (fn, a.arg)
                if isinstance(d, ast.Constant) and isinstance(d.value, str):
                    for alt in choices.get(a.arg, []):
                        if alt != d.value:
                            add(d, "default", f"{fn.name}({a.arg}={d.value!r}->{alt!r})", repr(alt))
            consts = [(a, d) for a, d in pairs if isinstance(d, ast.Constant) and d.value is not None]
            for i in range(len(consts) - 1):  # swap neighbouring keyword defaults of one type
                (a1, d1), (a2, d2) = consts[i], consts[i + 1]
                if type(d1.value) is type(d2.value) and d1.value != d2.value:
                    add(d1, "default-swap", f"{fn.name}({a1.arg}<->{a2.arg})", repr(d2.value))

    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOP_SWAP:
            new = _BINOP_SWAP[type(node.op)]
            add(node, "binop", f"{_SYMBOL[type(node.op)]}->{_SYMBOL[new]}", _src(ast.BinOp(node.left, new(), node.right)))
            if isinstance(node.op, (ast.Add, ast.Sub)):
                add(node, "drop-term", f"a {_SYMBOL[type(node.op)]} b->a", _src(node.left))
                if isinstance(node.op, ast.Add):
                    add(node, "drop-term", "a + b->b", _src(node.right))
            elif isinstance(node.op, (ast.Mult, ast.Div)):
                add(node, "drop-factor", f"a {_SYMBOL[type(node.op)]} b->a", _src(node.left))
                if isinstance(node.op, ast.Mult):
                    add(node, "drop-factor", "a * b->b", _src(node.right))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
            if isinstance(node.operand, ast.Name) and node.operand.id in DISPLAY_ONLY:
                continue
            add(node, "unary", "-a->a" if isinstance(node.op, ast.USub) else "not a->a", _src(node.operand))
        elif isinstance(node, ast.BoolOp):
            new = ast.Or if isinstance(node.op, ast.And) else ast.And
            add(node, "boolop", f"{_SYMBOL[type(node.op)]}->{_SYMBOL[new]}", _src(ast.BoolOp(new(), node.values)))
        elif isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                for table, kind in ((_CMP_BOUNDARY, "compare"), (_CMP_DIRECTION, "compare-flip")):
                    if type(op) in table:
                        ops = list(node.ops)
                        ops[i] = table[type(op)]()
                        add(node, kind, f"{_SYMBOL[type(op)]}->{_SYMBOL[type(ops[i])]}",
                            _src(ast.Compare(node.left, ops, node.comparators)))
        elif isinstance(node, ast.Constant) and not isinstance(node.value, (str, bytes)) and node.value is not None:
            kind = "default" if id(node) in defaults else "constant"
            where = f"{defaults[id(node)][0].name}({defaults[id(node)][1]}=...): " if kind == "default" else ""
            for desc, text in _number_variants(node.value):
                add(node, kind, where + desc, text)
    return [m for m in found if _compiles(source, m)]


def _apply(source: str, m: Mutant) -> str:
    lines = source.encode().split(b"\n")  # ast offsets are UTF-8 byte offsets
    start = sum(len(x) + 1 for x in lines[: m.line - 1]) + m.col
    end = sum(len(x) + 1 for x in lines[: m.end_line - 1]) + m.end_col
    raw = source.encode()
    return (raw[:start] + m.replacement.encode() + raw[end:]).decode()


def _compiles(source: str, m: Mutant) -> bool:
    try:
        new = ast.parse(_apply(source, m))
    except SyntaxError:
        return False
    return ast.dump(new) != ast.dump(ast.parse(source))


def module_mutants(root: Path, name: str) -> list[Mutant]:
    """All mutants of the files of module ``name`` (see ``mutation_map.MODULES``)."""
    out: list[Mutant] = []
    for rel in MODULES[name]["files"]:
        out += find_mutants(root, rel)
    return out


def sample(mutants: list[Mutant], n: int, seed: int, name: str) -> list[Mutant]:
    """The first ``n`` mutants of a seeded random order (all of them with ``n`` <= 0).

    Any prefix of the order is itself a seeded random sample, so a campaign stopped early
    still holds a fair sample of every module.
    """
    order = list(range(len(mutants)))
    random.Random(f"{seed}:{name}").shuffle(order)
    return [mutants[i] for i in (order if n <= 0 else order[:n])]


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

    def run(self, name: str, timeout: float) -> tuple[str, float, str]:
        """Module ``name``'s tests: ("passed" | "failed" | "no-tests" | "timeout", seconds, last output line)."""
        t0 = time.perf_counter()
        if self.server is not None:
            log = self.scratch / ".mutant-run.log"
            self.server.stdin.write(json.dumps({"args": _pytest_args(name), "cwd": str(self.scratch), "log": str(log),  # type: ignore[union-attr]
                                                "timeout": timeout}) + "\n")
            self.server.stdin.flush()  # type: ignore[union-attr]
            reply = self.server.stdout.readline()  # type: ignore[union-attr]
            if not reply:
                raise RuntimeError("the test server process ended unexpectedly")
            rc = json.loads(reply)["rc"]
            tail = _tail(log.read_text(errors="replace")) if log.exists() else ""
        else:
            cmd = [self.python, "-m", "pytest", *_pytest_args(name)]
            proc = subprocess.Popen((["nice", "-n", str(self.nice)] if self.nice else []) + cmd, cwd=self.scratch,
                                    env=_env(self.scratch), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True)
            try:
                out, _ = proc.communicate(timeout=timeout)
                rc, tail = proc.returncode, _tail(out)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                rc, tail = None, ""
        secs = time.perf_counter() - t0
        if rc is None:
            return "timeout", secs, tail
        return ("passed" if rc == 0 else "no-tests" if rc == 5 else "failed"), secs, tail


def serve() -> int:
    """The fork server: read one JSON request a line, run pytest in a forked child, answer its exit code."""
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
        deadline = time.monotonic() + float(req["timeout"])
        rc = None
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                rc = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                os.waitpid(pid, 0)
                break
            time.sleep(0.1)
        print(json.dumps({"rc": rc}), flush=True)
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


def _run_mutant(runner: Runner, scratch: Path, name: str, m: Mutant, timeout: float) -> dict:
    path = scratch / m.path
    original = path.read_text()
    path.write_text(_apply(original, m))
    try:
        status, secs, tail = runner.run(name, timeout)
    finally:
        path.write_text(original)
    verdict = {"failed": "killed", "passed": "survived", "timeout": "timeout"}.get(status, status)
    return {**asdict(m), "id": m.id, "status": verdict, "seconds": round(secs, 1), "tail": tail}


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
                if "baseline_seconds" not in entry:
                    status, secs, tail = runner.run(name, args.max_timeout)
                    if status != "passed":
                        raise SystemExit(f"{name}: the mapped tests do not pass on the unmutated tree ({status}): {tail}")
                    entry["baseline_seconds"] = round(secs, 1)
                    print(f"[{name}] baseline {secs:.1f} s, {len(queues[name])} mutants of {entry['points']} points",
                          file=sys.stderr, flush=True)
                base = entry["baseline_seconds"]
                timeout = min(args.max_timeout, max(args.timeout_factor * base, base + 60.0))
                m = queues[name].pop(0)
                rec = _run_mutant(runner, scratch, name, m, timeout)
                entry["records"].append(rec)
                entry.update(summarize(entry["records"]))
                print(f"[{name} {len(entry['records'])}] {rec['status']:8s} {rec['seconds']:6.1f} s  {m.id}", file=sys.stderr, flush=True)
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
    ap.add_argument("--timeout-factor", type=float, default=3.0, help="per-mutant timeout in baseline run times")
    ap.add_argument("--max-timeout", type=float, default=900.0, help="upper bound of the per-mutant timeout, seconds")
    ap.add_argument("--python", default=sys.executable, help="interpreter that runs pytest")
    ap.add_argument("--nice", type=int, default=19, help="niceness of the test processes (0: none)")
    ap.add_argument("--scratch", help="folder for the scratch copy (default: the system's temporary folder)")
    ap.add_argument("--label", help="name of the source recorded in the JSON (e.g. a commit)")
    ap.add_argument("--no-fork", action="store_true", help="a new interpreter per run instead of forking a warm one")
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
    data = campaign(args)
    print(f"{'module':12s} {'mutants':>7s} {'killed':>6s} {'timeout':>7s} {'survived':>8s} {'kill rate':>9s}")
    for name, e in data["modules"].items():
        if "mutants" in e:
            print(f"{name:12s} {e['mutants']:7d} {e['killed']:6d} {e['timeouts']:7d} {e['survived']:8d} {e['kill_rate']:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
