"""The README's calibration table is the rendering of the committed JSON, not text pasted by hand."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from calibration_table import BEGIN, END, render, replace_section  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "calibration.json"


def test_readme_table_is_rendered_from_the_json():
    if not RESULT.exists():
        pytest.fail(f"{RESULT} is missing: run tools/calibration_table.py run")
    readme = (ROOT / "README.md").read_text()
    section = readme.split(BEGIN, 1)[1].split(END, 1)[0]
    assert section == "\n" + render(json.loads(RESULT.read_text()))


def test_the_json_holds_every_case_at_its_seeds():
    sys.path.insert(0, str(ROOT / "tests" / "calibration"))
    from calibration_cases import null_cases, power_cases

    data = json.loads(RESULT.read_text())
    assert data["seeds"] >= 1000 and {r["name"] for r in data["null"]} == {c.name for c in null_cases()}
    assert {r["name"] for r in data["power"]} == {f"{c.assertion} vs {c.wrong}" for c in power_cases(data["power_seeds"])}
    assert all(r["seeds"] == data["seeds"] for r in data["null"])
    # the verdicts in the table follow from the counts
    for r in data["null"]:
        assert (r["rate"] <= r["null_interval"][1]) == r["valid"]


def test_replace_section_keeps_the_rest():
    text = f"head\n{BEGIN}\nold\n{END}\ntail\n"
    assert replace_section(text, "new\n") == f"head\n{BEGIN}\nnew\n{END}\ntail\n"
    with pytest.raises(ValueError, match="no section"):
        replace_section("no markers", "x")
