"""The command line never shows a traceback: an output path that cannot be written is refused in one line, with a
non-zero exit, before any work starts; a file that fails mid-run ends in one line too."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import diffcheck.cli.plot  # noqa: F401  (imported before any patch: a module importing a patched name would keep it)
import diffcheck.cli.sample  # noqa: F401
import diffcheck.learned.__main__  # noqa: F401
from diffcheck.cli import main

ROOT = Path(__file__).resolve().parent.parent


class WorkStarted(Exception):
    pass


def _no_work(*a, **kw):
    raise WorkStarted("the command started its work before checking --out")


# command line with {out} for the output path, the function its work starts with, whether --out is a folder
COMMANDS = {
    "sample": (["sample", "--out", "{out}"], "diffcheck.cli.sample.setup", "x.npy"),
    "plot": (["plot", "densities", "--out", "{out}"], "diffcheck.cli.plot.setup", "x.png"),
    "plot figure": (["plot", "figure", "--name", "schedules", "--out", "{out}"], "diffcheck.tour.draw_figures", "x.png"),
    "tour": (["tour", "--only", "process.subvp", "--out", "{out}"], "diffcheck.tour.run_tour", ""),
    "bench": (["bench", "scores", "--quick", "--out", "{out}"], "diffcheck.bench.scores.main", "x.json"),
    "verify-diffusers": (["verify-diffusers", "--quick", "--out", "{out}"], "diffcheck.adapters.verify_diffusers", "x.json"),
    "train digits": (["train", "digits", "--out", "{out}"], "diffcheck.demos.digits.load_digits", ""),
    "train toy": (["train", "toy", "--out", "{out}"], "diffcheck.learned.report.error_table", ""),
}


def _argv(name: str, out: Path) -> list[str]:
    return [a.replace("{out}", str(out)) for a in COMMANDS[name][0]]


def _block_work(monkeypatch, name: str) -> None:
    target = COMMANDS[name][1]
    module, attr = target.rsplit(".", 1)
    import importlib

    monkeypatch.setattr(importlib.import_module(module), attr, _no_work)
    if name == "train toy":  # imported by name into the trainer's entry point
        monkeypatch.setattr("diffcheck.learned.__main__.error_table", _no_work)


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("name", list(COMMANDS))
def test_an_output_under_a_file_is_refused_before_the_work(name, tmp_path, monkeypatch, capsys):
    _block_work(monkeypatch, name)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "sub" / COMMANDS[name][2] if COMMANDS[name][2] else blocker / "sub"
    assert main(_argv(name, out)) == 2
    err = _one_line(capsys.readouterr().err)
    assert "--out" in err and "is a file, not a folder" in err


@pytest.mark.parametrize("name", list(COMMANDS))
def test_an_output_in_a_folder_that_refuses_writes_is_refused_before_the_work(name, tmp_path, monkeypatch, capsys):
    # the operating system's refusal, as a read-only or foreign folder gives it
    import tempfile

    _block_work(monkeypatch, name)

    def denied(*a, **kw):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    out = tmp_path / (COMMANDS[name][2] or "run")
    assert main(_argv(name, out)) == 2
    err = _one_line(capsys.readouterr().err)
    assert "--out" in err and "cannot write in" in err and "Permission denied" in err


@pytest.mark.parametrize("argv, message", [
    (["sample", "--out", "{tmp}/samples.txt"], "--out must end in .npy, .pt, .csv"),
    (["sample", "--out", "{tmp}"], "--out must end in"),
    (["plot", "densities", "--out", "{tmp}/x.txt"], "--out must end in .png, .pdf, .svg"),
    (["plot", "densities", "--out", "{tmp}/folder.png"], "is a folder"),
    (["bench", "scores", "--out", "{tmp}/x.csv"], "--out must end in .json"),
])
def test_bad_output_names_are_refused(argv, message, tmp_path, monkeypatch, capsys):
    (tmp_path / "folder.png").mkdir()
    monkeypatch.setattr("diffcheck.cli.sample.setup", _no_work)
    monkeypatch.setattr("diffcheck.cli.plot.setup", _no_work)
    monkeypatch.setattr("diffcheck.bench.scores.main", _no_work)
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    assert message in _one_line(capsys.readouterr().err)


def test_a_file_that_fails_mid_run_ends_in_one_line(tmp_path, monkeypatch, capsys):
    def full(*a, **kw):
        raise OSError(28, "No space left on device", str(tmp_path / "x.npy"))

    monkeypatch.setattr("diffcheck.cli.sample.save_samples", full)
    assert main(["sample", "-n", "50", "--steps", "5", "--out", str(tmp_path / "x.npy")]) == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("diffcheck: failed:") and "No space left on device" in err and "x.npy" in err


def _unwritable_folder(tmp_path: Path) -> tuple[Path, list[str]]:
    """A folder the command cannot write in, and the prefix that runs a command without root's override."""
    ro = tmp_path / "read-only"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    prefix: list[str] = []
    if os.geteuid() == 0:  # root ignores permission bits unless it drops the capabilities that override them
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: permission bits cannot be enforced")
        prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search,-fowner"]
    return ro, prefix


@pytest.mark.parametrize("argv, out", [
    (["sample", "-n", "200000", "--steps", "1000", "--sampler", "ddpm"], "x.npy"),
    (["verify-diffusers"], "report.json"),
])
def test_a_read_only_folder_fails_at_once_in_a_real_process(argv, out, tmp_path):
    ro, prefix = _unwritable_folder(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    proc = subprocess.run([*prefix, sys.executable, "-m", "diffcheck.cli", *argv, "--out", str(ro / out)],
                          capture_output=True, text=True, env=env, timeout=300)
    seconds = time.perf_counter() - start
    assert proc.returncode == 2, proc.stderr
    err = _one_line(proc.stderr)
    assert "--out" in err and "cannot write in" in err and "Permission denied" in err
    assert not list(ro.iterdir())
    assert seconds < 60  # refused at start-up: the work itself takes minutes


def test_figures_and_long_checks_show_moving_progress(tmp_path, capfd):
    # a figure that takes 2.5 s: the bar names it and its elapsed time moves while it is drawn
    import time as _time

    from diffcheck.tour import draw_figures

    def slow(path):
        _time.sleep(2.5)
        path.write_text("x")
        return path

    made = draw_figures([("slow.png", slow, tmp_path / "slow.png")], progress=True)
    assert made == [str(tmp_path / "slow.png")]
    err = capfd.readouterr().err
    assert "figures" in err and "slow.png" in err
    assert "0/1 [00:01" in err or "0/1 [00:02" in err  # redrawn while the figure is drawn, not only after it
