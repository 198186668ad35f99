"""The commands ``diffcheck zoo`` and ``diffcheck verify-kdiffusion``: tables, JSON, and one-line errors."""

import json
import sys

import pytest

from diffcheck.cli import main


def _kdiffusion_or_skip():
    from diffcheck.adapters import kdiffusion as kd

    pytest.importorskip("torchsde")
    pytest.importorskip("torchdiffeq")
    if not kd.available():  # k-diffusion is installed with --no-deps, outside the test extra
        pytest.skip(f"k-diffusion is not installed: {kd.INSTALL_HINT}")


def test_zoo_prints_the_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "zoo.json"
    assert main(["zoo", "--only", "diffusers#590", "k-diffusion#43", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "catch rate: 2 of 2 bugs" in text and "false alarms on fixed forms: none" in text
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith(("diffusers#590", "k-diffusion#43"))}
    assert "grid: its smallest level is 4e-06, configured sigma_min 0.02" in rows["diffusers#590"]
    assert "finite: 64 of 64 outputs non-finite" in rows["k-diffusion#43"]
    table = json.loads(out.read_text())
    assert [r["id"] for r in table["entries"]] == ["diffusers#590", "k-diffusion#43"]
    assert table["catch_rate"] == {"caught": 2, "bugs": 2} and table["false_alarms"] == []


def test_zoo_json_on_stdout(capsys):
    assert main(["zoo", "--only", "diffusers#6477", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    (row,) = table["entries"]
    assert row["caught_by"] == ["grid"] and not row["false_alarms"] and row["right"]["grid"]["passed"]


def test_zoo_unknown_entry_is_a_one_line_error(capsys):
    assert main(["zoo", "--only", "diffusers#0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--only: unknown entries diffusers#0" in err


def test_verify_kdiffusion_quick(tmp_path, capsys):
    _kdiffusion_or_skip()
    out = tmp_path / "k.json"
    assert main(["verify-kdiffusion", "--quick", "--samplers", "euler", "heun", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "euler" in text and "heun" in text and "agreement failures: none" in text
    report = json.loads(out.read_text())
    assert report["quick"] is True and [r["name"] for r in report["samplers"]] == ["euler", "heun"]
    heun = report["samplers"][1]
    assert heun["order"]["passed"] and heun["agreement"]["passed"]  # Heun is second order and is diffcheck's Heun


def test_verify_kdiffusion_unknown_sampler_is_a_one_line_error(capsys):
    _kdiffusion_or_skip()
    assert main(["verify-kdiffusion", "--quick", "--samplers", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown k-diffusion sampler 'nope'" in err


def test_verify_kdiffusion_without_kdiffusion_says_how_to_install(monkeypatch, capsys):
    # hide the package: a None entry in sys.modules makes both find_spec and import report it missing
    for name in [m for m in sys.modules if m == "k_diffusion" or m.startswith("k_diffusion.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "k_diffusion", None)
    assert main(["verify-kdiffusion", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("diffcheck: error: k-diffusion is not installed: pip install 'diffcheck[kdiffusion]'")
    assert "pip install --no-deps k-diffusion" in err


def test_verify_kdiffusion_without_a_sampler_dependency_says_how_to_install(monkeypatch, capsys):
    _kdiffusion_or_skip()
    from diffcheck.adapters.kdiffusion import load

    for name in [m for m in sys.modules if m.startswith(load._PRIVATE)]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delitem(sys.modules, "k_diffusion.sampling", raising=False)
    monkeypatch.setitem(sys.modules, "torchsde", None)
    assert main(["verify-kdiffusion", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs torchsde, which is not installed" in err
