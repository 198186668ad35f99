"""The equation index: each paper's equations and algorithms, the functions that implement them, the checks that verify them, their last verdict.

Everything comes from metadata the code carries: the paper a sampler declares
(``@sampler(..., paper)``, read through ``samplers.info``) or a training objective declares
(its ``paper``), the first line of every public docstring in ``diffcheck`` and ``toy``
(which cites paper and equation), and each registered check's ``source``. Citations are read as "Author(s) YEAR, Eq. N" (also
"Algorithm N of Author YEAR"); a reference without its author and year is ambiguous and
``bare_references`` finds it. Verdicts come from a recorded tour (``diffcheck tour
--json``), never from this module: ``record_tour`` keeps what the index needs of a tour
report, with its date.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

__all__ = ["Citation", "citations", "bare_references", "Row", "build_index", "uncited_checks", "record_tour", "load_record", "render",
           "RECORD", "INDEX", "REPO"]

REPO = Path(__file__).resolve().parents[1]
INDEX = REPO / "docs" / "equations.md"
RECORD = REPO / "docs" / "equations-tour.json"

_AUTHORS = r"(?:[A-Z][\w'\-]*(?:\s+et\s+al\.|\s+&\s+[A-Z][\w'\-]*)?)"
_YEAR = r"(?:19|20)\d\d[a-z]?"
_CITE = re.compile(rf"(?P<paper>{_AUTHORS}\s+{_YEAR})(?![\w])")
# reference kinds, each with the spellings found in the sources, and their canonical name
_KINDS = {
    "Eq.": r"Eqs?\.|Equations?",
    "Algorithm": r"Algorithms?|Alg\.",
    "Theorem": r"Theorems?|Thm\.",
    "Proposition": r"Propositions?|Prop\.",
    "Lemma": r"Lemmas?",
    "Sec.": r"Sec(?:tion)?s?\.?",
    "App.": r"App(?:endix)?\.?",
    "Table": r"Tables?",
    "Fig.": r"Figs?\.|Figures?",
    "Technique": r"[Tt]echniques?",
}
_ID = r"(?:\d+(?:\.\d+)*|[A-Z](?:\.\d+)*)(?![\w])"
_LIST = rf"{_ID}(?:\s*(?:,|and|-|–)\s*{_ID})*"
_REF = re.compile("|".join(rf"(?P<k{i}>(?<![\w])(?:{pat}))\s*(?P<n{i}>{_LIST})" for i, pat in enumerate(_KINDS.values())))
_KIND_NAMES = list(_KINDS)
_OF = re.compile(rf"^\s*of\s+(?P<paper>{_AUTHORS}\s+{_YEAR})")


def _paper(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip())


def _atoms(kind: str, numbers: str) -> list[str]:
    """'Eq.', '3-5 and 13' -> ['Eq. 3', 'Eq. 4', 'Eq. 5', 'Eq. 13']; a range of non-integers stays one reference."""
    out = []
    for part in re.split(r"\s*(?:,|and)\s*", numbers.strip()):
        lo_hi = re.split(r"\s*[-–]\s*", part)
        if len(lo_hi) == 2 and lo_hi[0].isdigit() and lo_hi[1].isdigit() and 0 < int(lo_hi[1]) - int(lo_hi[0]) <= 20:
            out += [f"{kind} {k}" for k in range(int(lo_hi[0]), int(lo_hi[1]) + 1)]
        elif part:
            out.append(f"{kind} {'–'.join(lo_hi)}")
    return out


def _refs(text: str) -> list[tuple[int, int, list[str]]]:
    """(start, end, references) of every reference in ``text``."""
    found = []
    for m in _REF.finditer(text):
        i = next(j for j in range(len(_KINDS)) if m.group(f"k{j}"))
        found.append((m.start(), m.end(), _atoms(_KIND_NAMES[i], m.group(f"n{i}"))))
    return found


@dataclass(frozen=True)
class Citation:
    """A paper ("Ho et al. 2020") and the references to it ("Eq. 11"; none for the paper as a whole)."""

    paper: str
    refs: tuple[str, ...] = ()


def _segments(text: str) -> list[str]:
    return [s for s in re.split(r";", text) if s.strip()]


def citations(text: str) -> list[Citation]:
    """The citations in a source string or docstring: "Ho et al. 2020, Eq. 3-5 and 13; Vincent 2011" -> two."""
    out: list[Citation] = []
    for seg in _segments(text):
        papers = list(_CITE.finditer(seg))
        refs = _refs(seg)
        owned: dict[int, list[str]] = {i: [] for i in range(len(papers))}
        for start, end, atoms in refs:
            after = _OF.match(seg[end:])
            if after:  # "Algorithm 2 of Karras et al. 2022"
                idx = next(i for i, p in enumerate(papers) if p.start() >= end)
            else:
                before = [i for i, p in enumerate(papers) if p.end() <= start]
                if not before:
                    continue  # a bare reference: see bare_references
                idx = before[-1]
            owned[idx] += atoms
        for i, p in enumerate(papers):
            out.append(Citation(_paper(p.group("paper")), tuple(dict.fromkeys(owned[i]))))
    return out


def bare_references(text: str) -> list[str]:
    """The references in ``text`` that name no paper: "Eq. 11" alone, or before any "Author YEAR" of its segment."""
    bare = []
    for seg in _segments(text):
        papers = list(_CITE.finditer(seg))
        for start, end, atoms in _refs(seg):
            if _OF.match(seg[end:]) or any(p.end() <= start for p in papers):
                continue
            bare += atoms
    return bare


# -- the index ------------------------------------------------------------------------------------------------------
@dataclass
class Row:
    """One equation (or a paper as a whole, ref "—") with what implements and what verifies it."""

    paper: str
    ref: str
    functions: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


# modules that check, report or print, and implement no equation
_NOT_IMPLEMENTATIONS = ("diffcheck.checks", "diffcheck.cli", "diffcheck.equations", "diffcheck.tour", "diffcheck.plots",
                        "diffcheck.bench", "diffcheck.adapters.diffusers_report")


def _declared_papers(cls: ast.ClassDef) -> list[str]:
    """The string a class declares as its ``paper`` (the training objectives do)."""
    return [node.value.value for node in cls.body if isinstance(node, (ast.Assign, ast.AnnAssign))
            and any(getattr(t, "id", None) == "paper" for t in (node.targets if isinstance(node, ast.Assign) else [node.target]))
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)]


def _docstring_sources(roots: Iterable[Path]) -> list[tuple[str, str]]:
    """(qualified name, citing text) of every public function, class and method under ``roots``: the first line of its
    docstring, and for a class the ``paper`` it declares."""
    out = []
    for root in roots:
        base = root.parent
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            module = ".".join(parts)
            if any(p.startswith("_") and p != "__main__" for p in parts[1:]) or module.startswith(_NOT_IMPLEMENTATIONS):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))

            def visit(node: ast.AST, prefix: str) -> None:
                for child in getattr(node, "body", []):
                    if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not child.name.startswith("_"):
                        doc = ast.get_docstring(child)
                        name = f"{prefix}.{child.name}"
                        if doc:
                            out.append((name, doc.strip().splitlines()[0]))
                        if isinstance(child, ast.ClassDef):
                            out.extend((name, paper) for paper in _declared_papers(child))
                            visit(child, name)

            visit(tree, module)
    return out


def uncited_checks() -> dict[str, str]:
    """The registered checks whose source cites no paper (a definition, a closed form), by id."""
    from .checks import registry

    return {cid: fn.source for cid, fn in registry().items() if not citations(fn.source)}


def build_index(checks: dict[str, str] | None = None, samplers: dict[str, str] | None = None,
                docstrings: list[tuple[str, str]] | None = None) -> list[Row]:
    """The rows of the index, sorted by paper then reference; each argument defaults to the code's own metadata.

    ``checks``: check id -> source (the registry); ``samplers``: qualified name -> declared
    paper (``samplers.info``); ``docstrings``: (qualified name, first docstring line).
    """
    if checks is None:
        from .checks import registry

        checks = {cid: fn.source for cid, fn in registry().items()}
    if samplers is None:
        samplers = _sampler_papers()
    if docstrings is None:
        docstrings = _docstring_sources([REPO / "diffcheck", REPO / "toy"])
    rows: dict[tuple[str, str], Row] = {}

    def add(text: str, function: str | None = None, check: str | None = None) -> None:
        for c in citations(text):
            for ref in c.refs or ("—",):
                row = rows.setdefault((c.paper, ref), Row(c.paper, ref))
                if function and function not in row.functions:
                    row.functions.append(function)
                if check and check not in row.checks:
                    row.checks.append(check)

    for name, paper in samplers.items():
        add(paper, function=name)
    for name, line in docstrings:
        if name not in samplers:
            add(line, function=name)
    for cid, source in checks.items():
        add(source, check=cid)
    return sorted(rows.values(), key=lambda r: (r.paper.lower(), _ref_key(r.ref)))


def _sampler_papers() -> dict[str, str]:
    samplers = importlib.import_module(f"{__package__}.samplers")
    out = {}
    for name in samplers.__all__:
        fn = getattr(samplers, name)
        info = getattr(fn, "info", None)
        if info is not None and getattr(info, "paper", None):
            out[f"{fn.__module__}.{fn.__qualname__}"] = info.paper
    return out


def _ref_key(ref: str) -> tuple:
    if ref == "—":
        return (-1,)
    kind, _, num = ref.partition(" ")
    nums = tuple(int(p) if p.isdigit() else 0 for p in re.split(r"[.–]", num))
    return (_KIND_NAMES.index(kind) if kind in _KIND_NAMES else len(_KIND_NAMES), nums, num)


# -- verdicts from a recorded tour ----------------------------------------------------------------------------------
def record_tour(report: dict) -> dict:
    """What the index keeps of a tour report (``diffcheck tour --json``): its environment and each check's verdict."""
    if not isinstance(report, dict) or not isinstance(report.get("checks"), list) or "environment" not in report:
        raise ValueError("report must be the JSON of 'diffcheck tour --json' (with 'checks' and 'environment')")
    return {
        "environment": report["environment"],
        "summary": report.get("summary", {}),
        "verdicts": {c["id"]: {"passed": bool(c["passed"]), "seconds": c.get("seconds")} for c in report["checks"]},
    }


def load_record(path: str | Path = RECORD) -> dict | None:
    """A recorded tour (``record_tour``'s output) from ``path``, or None when there is none."""
    path = Path(path)
    if not path.is_file():
        return None
    rec = json.loads(path.read_text(encoding="utf-8"))
    if "verdicts" not in rec:
        rec = record_tour(rec)  # a whole tour report
    return rec


def _verdicts(record: dict | None, checks: list[str]) -> str:
    """"PASS" when every check passed in the recorded tour, else each check's verdict."""
    if not checks:
        return "—"
    if record is None:
        return "no tour recorded"
    each = {c: record["verdicts"].get(c) for c in checks}
    words = {c: "not in the recorded tour" if v is None else ("PASS" if v["passed"] else "**FAIL**") for c, v in each.items()}
    if len(set(words.values())) == 1:
        return next(iter(words.values()))
    return "; ".join(f"{w} `{c}`" for c, w in words.items())


def _summary(record: dict) -> str:
    s = record.get("summary") or {}
    return f"{s['passed']} of {s['total']} checks passed" if "passed" in s and "total" in s else "no summary"


def render(rows: list[Row], record: dict | None, paper: str | None = None, checks: dict[str, str] | None = None) -> str:
    """The index as Markdown: one section per paper, one row per reference (``paper`` keeps papers containing it).

    ``checks`` (check id -> source) adds the checks whose source cites no paper, in a last section.
    """
    if paper:
        key = paper.lower()
        rows = [r for r in rows if key in r.paper.lower()]
    env = (record or {}).get("environment", {})
    when = (f"the tour of {env.get('date', '?')} (diffcheck {env.get('diffcheck', '?')}, torch {env.get('torch', '?')}, "
            f"python {env.get('python', '?')}; {_summary(record)}), recorded in `docs/equations-tour.json`" if record
            else "none: no tour is recorded")
    lines = [
        "# Equations and algorithms: where each is implemented and which checks verify it",
        "",
        "Generated by `diffcheck equations --write` from the code's own metadata: the paper each sampler declares, the first",
        "line of each public docstring, and each check's source. Do not edit by hand; a test fails when this file is stale.",
        f"Last verdicts: {when}.",
        "To record a new tour: `diffcheck tour --json --no-plots > tour.json && diffcheck equations --tour tour.json --write`.",
        "",
    ]
    if paper:
        lines[2:6] = [f"Papers matching {paper!r}. Last verdicts: {when}."]
    for i, r in enumerate(rows):
        if i == 0 or rows[i - 1].paper != r.paper:
            lines += [f"## {r.paper}", "", "| reference | implemented by | verified by | last verdict |", "|---|---|---|---|"]
        funcs = ", ".join(f"`{f}`" for f in r.functions) or "—"
        verified = ", ".join(f"`{c}`" for c in r.checks) or "—"
        verdicts = _verdicts(record, r.checks)
        ref = r.paper if r.ref == "—" else f"{r.paper}, {r.ref}"
        lines.append(f"| {ref} | {funcs} | {verified} | {verdicts} |")
        if i + 1 == len(rows) or rows[i + 1].paper != r.paper:
            lines.append("")
    if not paper and checks:
        lines += ["## Checks that cite no paper", "", "| source | verified by | last verdict |", "|---|---|---|"]
        for cid, source in checks.items():
            lines.append(f"| {source.replace('|', '/')} | `{cid}` | {_verdicts(record, [cid])} |")
    return "\n".join(lines).rstrip() + "\n"
