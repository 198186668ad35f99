"""The mutation-testing tool makes the single-point changes it says, and only those (tools/mutants.py)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

from mutants import apply, find_mutants, sample  # noqa: E402

SOURCE = '''"""A module docstring with 1 + 2 in it."""

__all__ = ["step"]


def step(x: float = 1.0, *, eta: float = 0.0, scale: float = 2.0, variance: str = "a", progress: bool = False) -> float:
    """Docstring 3 * 4."""
    if variance not in ("a", "b"):
        raise ValueError(f"variance must be a or b, got {variance!r} (1 + 1)")
    y = x * scale + eta
    if variance == "b" and y < 0:
        y = -y
    return y / 2
'''


@pytest.fixture
def mutants(tmp_path):
    (tmp_path / "m.py").write_text(SOURCE)
    return {m.description: m for m in find_mutants(tmp_path, "m.py")}


def test_the_mutants_are_the_single_point_changes_listed(mutants):
    expected = {
        "*->/", "+->-", "a + b->a", "a + b->b", "a * b->a", "a * b->b", "/->*", "a / b->a", "-a->a", "and->or",
        "<-><=", "<->>", "==->!=", "not in->in", "2->3", "2->1", "0->1",
        "step(x=...): 1.0->x1.01", "step(x=...): 1.0->0.0", "step(eta=...): 0.0->1.0", "step(scale=...): 2.0->x1.01",
        "step(variance='a'->'b')", "step(x<->eta)", "step(eta<->scale)",
    }
    assert set(mutants) == expected


def test_docstrings_annotations_messages_and_display_switches_are_left_alone(mutants):
    lines = {m.line for m in mutants.values()}
    assert 1 not in lines and 3 not in lines and 7 not in lines and 9 not in lines  # docstrings, __all__, the message
    assert not any("progress" in d for d in mutants)


def test_apply_replaces_exactly_one_span(mutants):
    new = apply(SOURCE, mutants["*->/"])
    assert "y = (x / scale) + eta" in new
    assert ast.dump(ast.parse(new)) != ast.dump(ast.parse(SOURCE))
    assert new.replace("(x / scale) + eta", "x * scale + eta") == SOURCE
    assert "def step(x: float = 1.0, *, eta: float = 0.0, scale: float = 2.0, variance: str = 'b'" in apply(
        SOURCE, mutants["step(variance='a'->'b')"])


def test_samples_are_seeded_and_each_shorter_sample_is_a_prefix(mutants):
    ms = list(mutants.values())
    a, b = sample(ms, 5, 0, "m"), sample(ms, 10, 0, "m")
    assert a == b[:5] == sample(ms, 5, 0, "m")
    assert sample(ms, 5, 1, "m") != a
    assert sorted(m.id for m in sample(ms, 0, 0, "m")) == sorted(m.id for m in ms)
