"""Single-point mutants of a Python source file, found on its syntax tree and applied as text.

A mutant replaces the source span of one node: an arithmetic operator swapped (+ -, * /, ** *),
a term or factor dropped, a unary minus or ``not`` removed, ``and``/``or`` swapped, a
comparison's boundary or direction flipped, a number nudged (0 -> 1, 1 -> 0 or 2, n -> n +- 1,
x -> 1.01 x), a boolean negated, a string default replaced by another value the function
compares that parameter with, or two neighbouring keyword defaults swapped. Docstrings,
annotations, f-strings, error messages and ``__all__`` are never mutated.
"""

from __future__ import annotations

import ast
import random
from dataclasses import dataclass
from pathlib import Path

from mutation_map import MODULES

__all__ = ["Mutant", "find_mutants", "module_mutants", "sample", "apply"]

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
    original = ast.dump(tree)
    return [m for m in found if _compiles(source, m, original)]


def apply(source: str, m: Mutant) -> str:
    lines = source.encode().split(b"\n")  # ast offsets are UTF-8 byte offsets
    start = sum(len(x) + 1 for x in lines[: m.line - 1]) + m.col
    end = sum(len(x) + 1 for x in lines[: m.end_line - 1]) + m.end_col
    raw = source.encode()
    return (raw[:start] + m.replacement.encode() + raw[end:]).decode()


def _compiles(source: str, m: Mutant, original: str) -> bool:
    try:
        new = ast.parse(apply(source, m))
    except SyntaxError:
        return False
    return ast.dump(new) != original


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
