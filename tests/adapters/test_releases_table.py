"""The releases table (benchmarks/releases/table.py): a bug is flagged by the record named for it, not by anything else."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[2] / "benchmarks" / "releases"


@pytest.fixture(scope="module")
def table():
    spec = importlib.util.spec_from_file_location("releases_table", HERE / "table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(version: str, configurations: dict, findings: dict, skipped: dict | None = None) -> dict:
    results = [dict({"name": n, "verdict": v}, **({"reason": "no option"} if v == "not applicable" else {"notes": [f"{n} figure"]}))
               for n, v in configurations.items()]
    return {"versions": {"diffusers": version},
            "configurations": results,
            "findings": [{"id": i, "discrepancy": d, "size": {"figure": i}} for i, d in findings.items()],
            "findings_not_run": [{"id": i, "status": s, "reason": "why"} for i, s in (skipped or {}).items()],
            "summary": {"configurations": len(results), "not_applicable": [n for n, v in configurations.items() if v == "not applicable"],
                        "errors": [], "findings_not_applicable": [], "findings_with_errors": [],
                        "discrepancies": [n for n, v in configurations.items() if v == "discrepancy"], "failed": []}}


def _write(folder: Path, version: str, report: dict | None, imports: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"run-{version}.json").write_text(json.dumps({"release": version, "environment": {"installed": True, "imports": imports}}))
    if report is not None:
        (folder / f"diffusers-{version}.json").write_text(json.dumps(report))


def test_flagged_by_its_own_record_not_applicable_where_the_release_cannot_express_it(table, tmp_path, monkeypatch):
    monkeypatch.setattr(table, "BUGS", [
        {"bug": "a", "title": "caught", "release": "1.0", "fixed_in": "1.1", "evidence": [("configuration", "x")]},
        {"bug": "b", "title": "missed", "release": "1.0", "fixed_in": "1.1", "evidence": [("configuration", "y"), ("finding", "f")]},
        {"bug": "c", "title": "cannot be expressed", "release": "0.9", "fixed_in": "1.0", "note": "no such class",
         "evidence": [("configuration", "z")]},
        {"bug": "d", "title": "not importable", "release": "0.5", "fixed_in": "0.6", "evidence": [("finding", "f")]},
    ])
    monkeypatch.setattr(table, "CURRENT", tmp_path / "current.json")
    (tmp_path / "current.json").write_text(json.dumps(_report("2.0", {"x": "ok", "y": "ok", "z": "ok"}, {"f": False})))
    reports = tmp_path / "reports"
    # a discrepancy elsewhere in the same report flags nothing but its own bug
    _write(reports, "1.0", _report("1.0", {"x": "discrepancy", "y": "ok", "w": "failed"}, {"f": False}))
    _write(reports, "0.9", _report("0.9", {"z": "not applicable", "x": "ok"}, {}, {"f": "not applicable"}))
    _write(reports, "0.5", None, imports=False)
    out = table.write_table(reports, tmp_path)
    rows = {r["bug"]: r for r in out["bugs"]}
    assert rows["a"]["flagged"] is True and "x figure" in rows["a"]["evidence"][0]["figure"]
    assert rows["b"]["flagged"] is False and [e["state"] for e in rows["b"]["evidence"]] == ["ok", "passed"]
    assert rows["c"]["flagged"] == "not applicable"
    assert rows["d"]["flagged"] is None and rows["d"]["installed"] is False
    assert rows["a"]["current"]["evidence"][0]["state"] == "ok"
    md = (tmp_path / "table.md").read_text()
    assert "| a: caught | 1.0 (fixed: 1.1) | yes | yes |" in md
    assert "| c: cannot be expressed | 0.9 (fixed: 1.0) | yes | not applicable |" in md and "no such class" in md
    assert json.loads((tmp_path / "table.json").read_text())["releases"]["1.0"]["discrepancies"] == ["x"]


def test_the_full_report_is_preferred_and_an_evidence_run_is_marked(table, tmp_path, monkeypatch):
    monkeypatch.setattr(table, "BUGS", [{"bug": "a", "title": "t", "release": "1.0", "fixed_in": "1.1", "evidence": [("configuration", "x")]}])
    monkeypatch.setattr(table, "CURRENT", tmp_path / "absent.json")
    reports = tmp_path / "reports"
    _write(reports, "1.0", None)
    (reports / "run-1.0-evidence.json").write_text(json.dumps({"environment": {"installed": True, "imports": True}}))
    (reports / "diffusers-1.0-evidence.json").write_text(json.dumps(_report("1.0", {"x": "discrepancy"}, {})))
    out = table.write_table(reports, tmp_path)
    assert out["bugs"][0]["report_kind"] == "evidence" and out["bugs"][0]["flagged"] is True and out["releases"] == {}
    assert "1.0 [evidence run]" in (tmp_path / "table.md").read_text()
    (reports / "diffusers-1.0.json").write_text(json.dumps(_report("1.0", {"x": "ok"}, {})))
    out = table.write_table(reports, tmp_path)
    assert out["bugs"][0]["report_kind"] == "full" and out["bugs"][0]["flagged"] is False and "1.0" in out["releases"]
