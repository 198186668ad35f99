"""The digits demo end to end at toy length: files written, resume from its checkpoint, per-seed sampling."""

from __future__ import annotations

import json

import matplotlib.image
import torch
from safetensors.torch import load_file

from diffcheck import process as P
from diffcheck.demos import digits


def test_demo_writes_its_outputs_and_resumes(tmp_path, capsys):
    args = ["--out", str(tmp_path), "--minutes", "5", "--max-steps", "3", "--samples", "4", "--sample-steps", "8",
            "--batch-size", "16", "--no-progress"]
    assert digits.main(args) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["steps_this_run"] == 3
    assert {p.name for p in tmp_path.iterdir()} >= {"samples.png", "loss.png", "samples.safetensors", "summary.json",
                                                    "log.jsonl", "checkpoints"}
    assert load_file(str(tmp_path / "samples.safetensors"))["samples"].shape == (4, 1, 8, 8)
    image = matplotlib.image.imread(tmp_path / "samples.png")
    assert image.ndim == 3 and image.shape[0] > 50
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries
    # a second run with a larger step budget continues from step 3
    assert digits.main([*args[:4], "--max-steps", "5", *args[6:]]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 5 and summary["steps_this_run"] == 2
    steps = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]
    assert "train_seconds" in capsys.readouterr().out


def test_demo_sample_i_depends_on_seed_i_alone():
    process = P.DiscreteVP.linear()
    model = digits.build_model(process, 8, 32, seed=0).eval()  # DDPM's U-Net has no zero-initialised output
    pair = digits.sample(model, process, [5, 6], 8, steps=6)
    alone = digits.sample(model, process, [6], 8, steps=6)
    assert pair.shape == (2, 1, 8, 8)
    torch.testing.assert_close(pair[1:], alone, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(pair[0], pair[1])
