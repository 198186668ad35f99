"""``diffcheck train toy --out`` resumes: a second run continues each recipe from its checkpoint and equals one
uninterrupted run; another recipe in the same folder is refused in one line."""

from __future__ import annotations

import json

import pytest

from diffcheck.cli import main

ARGS = ["--presets", "two_modes", "--objectives", "ddpm", "--batch-size", "32", "--hidden", "16", "--blocks", "1",
        "--n", "50", "--samples", "10", "--no-progress"]


def _table(out):
    table = json.loads((out / "table.json").read_text())
    for r in table["reports"]:
        r.pop("train_seconds")
    return table


def test_a_second_run_continues_each_recipe_and_equals_one_uninterrupted_run(tmp_path, capsys):
    cut, whole = tmp_path / "cut", tmp_path / "whole"
    assert main(["train", "toy", "--out", str(cut), "--steps", "12", *ARGS]) == 0
    runs = list((cut / "runs").iterdir())
    assert [p.name for p in runs] == ["00-two_modes-ddpm"]
    assert json.loads((runs[0] / "checkpoints" / "latest.json").read_text())["step"] == 12
    assert main(["train", "toy", "--out", str(cut), "--steps", "30", *ARGS]) == 0  # resumes at step 12
    log = [json.loads(line)["step"] for line in (runs[0] / "log.jsonl").read_text().splitlines()]
    assert log == list(range(1, 31))
    assert main(["train", "toy", "--out", str(whole), "--steps", "30", *ARGS]) == 0
    assert _table(cut) == _table(whole)
    capsys.readouterr()


def test_another_recipe_in_the_same_folder_is_refused_in_one_line(tmp_path, capsys):
    assert main(["train", "toy", "--out", str(tmp_path), "--steps", "5", *ARGS]) == 0
    capsys.readouterr()
    changed = [a if a != "16" else "24" for a in ARGS]  # another width
    assert main(["train", "toy", "--out", str(tmp_path), "--steps", "5", *changed]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a run of another recipe" in err and "hidden: 16 there, 24 now" in err
