"""``diffcheck bench gpu`` on the command line: the dry run writes its document and table; bad combinations end
with one line and exit code 2."""

from __future__ import annotations

import json

import pytest
import torch

from diffcheck.bench import gpu
from diffcheck.cli import main


def test_dry_run_writes_the_document_and_prints_the_table(tmp_path, capsys):
    out = tmp_path / "cli.json"
    assert main(["bench", "gpu", "--dry-run", "--budget-s", "0.3", "--no-diffusers", "--quiet", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["complete"] and doc["dry_run"] and doc["settings"]["budget_s"] == 0.3 and doc["settings"]["diffusers"] is False
    text = capsys.readouterr().out
    assert "ceiling (bf16 matrix product" in text and "budget:" in text and str(out) in text


@pytest.mark.parametrize("argv, fragment", [
    (["bench", "scores", "--budget-s", "5"], "--budget-s applies to 'bench gpu' only"),
    (["bench", "samplers", "--dry-run"], "--dry-run applies to 'bench gpu' only"),
    (["bench", "gpu", "--dry-run", "--device", "cuda"], "contradicts"),
    (["bench", "gpu", "--dry-run", "--budget-s", "-1"], "--budget-s must be a positive number"),
    (["bench", "gpu", "--dry-run", "--budget-s", "10", "--hard-stop-s", "5"], "hard_stop_s"),
    (["bench", "gpu", "--budget-s", "soon"], "invalid float value"),
])
def test_bad_arguments_exit_2_with_one_line(argv, fragment, capsys):
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU this would run the full benchmark")
def test_full_benchmark_without_cuda_is_a_clear_error(capsys):
    assert main(["bench", "gpu"]) == 2
    err = capsys.readouterr().err
    assert "--dry-run" in err and err.count("\n") == 1


def test_module_command_line_parses_the_same_options():
    a = gpu.parser().parse_args(["--dry-run", "--budget-s", "60", "--out", "x.json"])
    opts = gpu.options_from(a)
    assert opts.tiny and opts.device == "cpu" and opts.budget_s == 60.0 and opts.stop_s == 60.0 + gpu.HARD_STOP_GRACE_S
    assert gpu.options_from(gpu.parser().parse_args(["--budget-s", "0"])).budget_s is None


def _tiny_diffusers_ddpm(folder):
    """A small DDPM U-Net saved in diffusers' folder layout (config.json + safetensors)."""
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    UNet2DModel(sample_size=16, block_out_channels=(32, 64), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                up_block_types=("AttnUpBlock2D", "UpBlock2D"), attention_head_dim=None, downsample_padding=0,
                flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6, layers_per_block=1).save_pretrained(folder)
    return folder


def test_weights_replace_the_ddpm_network_with_the_loaded_one(tmp_path, monkeypatch):
    from diffcheck.bench import gpu
    from diffcheck.nets import load

    folder = _tiny_diffusers_ddpm(tmp_path / "ddpm")
    seen = {}

    def fake_run(opts, out, *, ddpm_net=None, **kw):
        seen["net"], seen["opts"] = ddpm_net, opts
        return {"runs": [], "summary": {}}

    monkeypatch.setattr(gpu, "run", fake_run)
    monkeypatch.setattr(gpu, "table", lambda doc: "")
    assert main(["bench", "gpu", "--dry-run", "--weights", str(folder), "--out", str(tmp_path / "g.json")]) == 0
    assert seen["opts"].weights == str(folder) and seen["opts"].tiny
    expected = load(None, folder).net.state_dict()
    got = seen["net"].state_dict()
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_weights_that_cannot_stand_in_for_the_ddpm_network_are_one_line(tmp_path, capsys):
    from diffcheck import nets
    from diffcheck.nets.checkpoints import keymap

    net = nets.build("ncsnv2_cifar10", seed=0, image_size=16, ngf=8)  # a score network: not an eps predictor
    torch.save([{f"module.{k}": v for k, v in keymap("ncsnv2", net).theirs(net.state_dict()).items()}],
               tmp_path / "checkpoint.pth")
    for weights, fragment in ((tmp_path / "checkpoint.pth", "eps"), (tmp_path / "missing", "no such file")):
        assert main(["bench", "gpu", "--dry-run", "--weights", str(weights)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and fragment in err, err
