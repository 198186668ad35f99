"""The command line: the tour's table, JSON report and plots, and one-line errors."""

import json
import shutil
import subprocess
import sys

import pytest

from diffcheck.cli import main


def test_tour_json_subset(tmp_path, capsys):
    code = main(["tour", "--only", "ddpm.alpha_bar_T,iddpm.cosine_table,iddpm.beta_tilde", "--json", "--no-plots", "--out", str(tmp_path)])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    ids = [c["id"] for c in report["checks"]]
    assert ids == ["iddpm.cosine_table", "iddpm.beta_tilde_ratio", "ddpm.alpha_bar_T"]
    for rec in report["checks"]:
        assert {"id", "source", "claim", "expected", "measured", "tolerance", "passed", "seconds"} <= set(rec)
        assert rec["passed"] is True
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert "| PASS |" in (tmp_path / "report.md").read_text()


def test_tour_table_and_plots(tmp_path, capsys):
    code = main(["tour", "--only", "process.subvp", "--out", str(tmp_path), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "PASS process.subvp_below_vp" in out and "1/1 checks passed" in out
    made = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert made == ["forward_sde.png", "schedules.png"]  # the figures of the selected check's module
    for name in made:
        assert (tmp_path / "plots" / name).stat().st_size > 10_000


def test_tour_exit_code_is_one_when_a_check_fails(tmp_path, monkeypatch, capsys):
    from diffcheck import checks

    real = checks.registry()["ddpm.alpha_bar_T"]

    def failing():
        rec = real()
        rec.passed = False
        return rec

    failing.check_id, failing.source, failing.claim = real.check_id, real.source, real.claim
    monkeypatch.setattr(checks, "select", lambda only=None: [failing])
    import diffcheck.tour as tour

    monkeypatch.setattr(tour, "select", lambda only=None: [failing])
    assert main(["tour", "--only", "ddpm.alpha_bar_T", "--no-plots", "--out", str(tmp_path), "--quiet"]) == 1
    assert "FAIL ddpm.alpha_bar_T" in capsys.readouterr().out


def test_unknown_only_is_a_one_line_error(capsys):
    assert main(["tour", "--only", "nothing-matches-this"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no check matches" in err


def test_bad_option_exits_2_with_one_line():
    with pytest.raises(SystemExit) as e:
        main(["tour", "--bogus"])
    assert e.value.code == 2


def test_list(capsys):
    assert main(["tour", "--list", "--only", "ncsnv2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    ids = [line.split()[0] for line in lines]
    assert ids[:2] == ["ncsnv2.technique2", "ncsnv2.technique4"]  # tour order: the ladder checks come first
    assert all("ncsnv2" in line.lower() for line in lines)


def test_console_script_is_installed():
    exe = shutil.which("diffcheck") or str((__import__("pathlib").Path(sys.executable).parent / "diffcheck"))
    res = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "tour" in res.stdout
    res = subprocess.run([exe, "tour", "--nope"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "Traceback" not in res.stderr and res.stderr.count("\n") == 1


def test_sample_command_writes_and_checks(tmp_path, capsys):
    out = tmp_path / "s.npy"
    assert main(["sample", "--preset", "ring", "--process", "ddpm-linear", "--sampler", "ddim", "--steps", "100", "-n", "500", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "consistent with the exact law" in text
    import numpy as np

    assert np.load(out).shape == (500, 2)


@pytest.mark.parametrize("argv, fragment", [
    (["sample", "--sampler", "nope"], "invalid choice"),
    (["sample", "--steps", "-3"], "positive integer"),
    (["sample", "--process", "ddpm-cosine", "--steps", "5000"], "at most the table's T"),
    (["sample", "--out", "x.txt", "-n", "10", "--steps", "5"], "must end in .npy"),
    (["plot", "densities", "--times", "2"], "times in [0, 1]"),
    (["plot", "figure", "--name", "nope"], "unknown figure"),
    (["plot", "scores", "--preset", "ar1_video"], "2D presets"),
    (["bench", "nothing"], "invalid choice"),
])
def test_bad_arguments_exit_2_with_one_line(argv, fragment, capsys):
    code = None
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and err.count("\n") == 1 and "Traceback" not in err


def test_plot_commands(tmp_path):
    for kind in ("densities", "scores", "samples", "trajectories"):
        out = tmp_path / f"{kind}.png"
        assert main(["plot", kind, "--preset", "anisotropic", "--steps", "20", "--out", str(out)]) == 0
        assert out.stat().st_size > 10_000
    assert main(["plot", "figure", "--name", "schedules", "--out", str(tmp_path / "f.png")]) == 0


def test_bench_scores_quick(tmp_path):
    out = tmp_path / "b.json"
    assert main(["bench", "scores", "--quick", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert {"points_per_s", "loop_points_per_s", "speedup_vs_loop", "dtype", "components"} <= set(rows[0])


def test_verify_diffusers_quick(tmp_path, capsys):
    pytest.importorskip("diffusers")
    out = tmp_path / "vd.json"
    assert main(["verify-diffusers", "--quick", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "configuration" in text and "verdict" in text
    report = json.loads(out.read_text())
    assert report["configurations"] and "findings" in report


@pytest.mark.parametrize("name", sorted(__import__("diffcheck.checks", fromlist=["plots"]).plots()))
def test_every_tour_figure_draws(name, tmp_path):
    from diffcheck.checks import plots

    path = plots()[name](tmp_path / name)
    assert path.stat().st_size > 10_000


def test_a_numerical_failure_is_one_line_with_exit_1(monkeypatch, capsys):
    import diffcheck.cli.sample as cli
    from diffcheck.samplers import SamplingError

    def broken(name):
        def run(*a, **k):
            raise SamplingError("ddim: non-finite state after step 3 of 20 (t = 0.9 -> 0.85)")
        return run

    monkeypatch.setattr(cli, "runner", broken)
    assert main(["sample", "-n", "10", "--steps", "5"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "step 3 of 20" in err and "Traceback" not in err
