"""``diffcheck convert`` and ``diffcheck sample --weights``: checkpoints on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DModel
from PIL import Image

from diffcheck import nets
from diffcheck.cli import main
from diffcheck.nets.checkpoints import keymap, load

DDPM = dict(sample_size=16, block_out_channels=(32, 64), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"), attention_head_dim=None, downsample_padding=0,
            flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6, layers_per_block=1)


@pytest.fixture
def ddpm_folder(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    UNet2DModel(**DDPM).save_pretrained(tmp_path / "ddpm")
    return tmp_path / "ddpm"


@pytest.fixture
def ncsnv2_file(tmp_path: Path) -> Path:
    """A tiny NCSNv2 saved as ermongroup/ncsnv2 does: [model, optimizer, epoch, step, ema], with its ladder."""
    net = nets.build("ncsnv2_cifar10", seed=0, image_size=16, ngf=8)
    theirs = {"sigmas": torch.tensor([50.0, 5.0, 0.5, 0.05]), **keymap("ncsnv2", net).theirs(net.state_dict())}
    ema = {k: v + 0.01 for k, v in theirs.items() if k != "sigmas"}
    torch.save([{f"module.{k}": v for k, v in theirs.items()}, {"state": {}, "param_groups": []}, 1, 10, ema],
               tmp_path / "checkpoint_10.pth")
    return tmp_path / "checkpoint_10.pth"


def test_convert_writes_safetensors_that_load_back_identically(ncsnv2_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "converted"
    assert main(["convert", str(ncsnv2_file), "--out", str(out), "--set", "image_size=16"]) == 0
    assert "ema weights" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    meta = json.loads((out / "config.json").read_text())
    assert meta["format"] == "diffcheck" and meta["family"] == "ncsnv2" and meta["config"]["ngf"] == 8
    assert meta["sigmas"] == pytest.approx([50.0, 5.0, 0.5, 0.05])
    assert meta["process"] == {"kind": "ve", "sigma_min": pytest.approx(0.05), "sigma_max": pytest.approx(50.0)}
    original, converted = load(None, ncsnv2_file, image_size=16), load("ncsnv2", out)
    assert converted.layout == "diffcheck" and converted.config == original.config
    for a, b in zip(original.net.state_dict().values(), converted.net.state_dict().values()):
        assert torch.equal(a, b)
    raw = load(None, ncsnv2_file, ema=False, image_size=16)
    assert not torch.equal(raw.net.net.begin_conv.weight, original.net.net.begin_conv.weight)


def test_sample_weights_writes_an_image_grid(ddpm_folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "grid.png"
    assert main(["sample", "--weights", str(ddpm_folder), "--steps", "3", "-n", "5", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ddim over 3 steps" in text and f"image grid: {out}" in text
    with Image.open(out) as img:  # 3 x 2 tiles of 16 px with a 2 px border
        assert img.size == (3 * 18 + 2, 2 * 18 + 2) and img.mode == "RGB"
    assert not list(tmp_path.glob(".grid.png.*"))  # written atomically: no temporary left behind


def test_sample_weights_of_a_converted_ncsnv2(ncsnv2_file: Path, tmp_path: Path) -> None:
    assert main(["convert", str(ncsnv2_file), "--out", str(tmp_path / "c"), "--set", "image_size=16"]) == 0
    out = tmp_path / "v2.png"
    assert main(["sample", "--weights", str(tmp_path / "c"), "--steps", "2", "-n", "1", "--out", str(out)]) == 0
    assert out.stat().st_size > 0


@pytest.mark.parametrize(("extra", "fragment"), [
    (["--out", "x.npy"], "give --out FILE.png"),
    (["--process", "VE", "--out", "x.png"], "--process does not apply with --weights"),
    (["--net", "ncsnpp_cifar10_ve", "--out", "x.png"], "holds a ddpm network"),
    (["--set", "nonsense", "--out", "x.png"], "--set expects FIELD=VALUE"),
    (["--set", "no_such_field=3", "--out", "x.png"], "has no field(s) 'no_such_field'"),
])
def test_bad_weights_options_are_one_line(extra: list[str], fragment: str, ddpm_folder: Path, capsys) -> None:
    assert main(["sample", "--weights", str(ddpm_folder), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "\n" not in err


def test_convert_refuses_a_pickle_that_runs_code(tmp_path: Path, capsys) -> None:
    import os

    class Payload:
        def __reduce__(self):
            return (os.makedirs, (str(tmp_path / "made"),))

    torch.save({"w": Payload()}, tmp_path / "evil.pth")
    assert main(["convert", str(tmp_path / "evil.pth"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "refused: it asks to run code" in err and not (tmp_path / "made").exists() and not (tmp_path / "out").exists()


def test_a_weight_file_inside_its_folder_points_to_the_folder(ddpm_folder: Path) -> None:
    from diffcheck.nets.checkpoints import CheckpointError

    with pytest.raises(CheckpointError, match="sits beside a config.json: pass the folder"):
        load(None, ddpm_folder / "diffusion_pytorch_model.safetensors")
