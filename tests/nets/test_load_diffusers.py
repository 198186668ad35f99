"""diffusers ``UNet2DModel`` weights loaded into diffcheck compute what diffusers computes.

Proof by an independent implementation: diffusers (0.42) builds each configuration below with random weights
(every norm scale and bias perturbed as well, so that no parameter is at a neutral value); the folder written by
``save_pretrained`` (or, for the largest networks, the state dict itself) is loaded by ``diffcheck.nets.load``;
both networks are evaluated on the same random images, noise levels and labels. Agreement is measured as
max |ours − diffusers| / max |diffusers| and must be below 1e-10 in float64 and 1e-5 in float32.

diffusers computes its positional sinusoids in float32 whatever the model's dtype; for the float64 comparison
its ``time_proj`` is given the same formula in float64 (exp(−k ln 10⁴/(half − shift)), [sin, cos] or flipped:
Ho et al. 2020, Appendix B; Nichol & Dhariwal 2021), so that the comparison measures the networks, not the
rounding of one embedding.

The configurations are the seed models diffusers' ``UNet2DModel`` can express: DDPM CIFAR-10 (google/ddpm-cifar10-32,
35,746,307 parameters), DDPM CelebA 64, DDPM 256 (google/ddpm-celebahq-256 and the LSUN models), NCSN++ 256
(google/ncsnpp-celebahq-256, -ffhq-256, -church-256, -bedroom-256) and NCSN++ FFHQ 1024 (google/ncsnpp-ffhq-1024),
taken from their published config.json; and, written in diffusers' vocabulary from the official flags, iDDPM
CIFAR-10 and LSUN bedroom, ADM 64 and ADM 256 (parameter counts equal to the official builds'). It cannot
express NCSN++/DDPM++ CIFAR-10 (residual input pyramid, attention once per decoder level), ADM 128 and iDDPM
ImageNet-64 (a fixed head count over different widths), ADM 512 (a first level of half width), the ADM classifier,
NCSN and NCSNv2; those are proven by key lists and round trips (test_load_official.py).

Departure found and recorded: diffusers' NCSN++ blocks give attention GroupNorm(32) and, in ``AttnSkipUpBlock2D``,
``groups=min(resnet_in_channels + res_skip_channels // 4, 32)`` (operator precedence), where score_sde
(`layerspp.AttnBlockpp`, `ResnetBlockBigGANpp`) uses GroupNorm(min(C // 4, 32)). The two agree whenever the
attention level is at least 128 channels wide — every published NCSN++ — and differ below; diffcheck follows
score_sde (test_narrow_ncsnpp_departs_from_score_sde_in_diffusers).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DModel

from diffcheck import nets
from diffcheck.nets import load
from diffcheck.nets.checkpoints import PRESETS, CheckpointError, check_named, keymap
from diffcheck.nets.checkpoints.diffusers_config import from_diffusers

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}

DDPM = dict(attention_head_dim=None, downsample_padding=0, flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6)
ADM = dict(flip_sin_to_cos=True, freq_shift=0, norm_eps=1e-5, downsample_padding=1, resnet_time_scale_shift="scale_shift",
           attn_norm_num_groups=32)
ADM_UPDOWN = dict(ADM, downsample_type="resnet", upsample_type="resnet")
NCSNPP = dict(time_embedding_type="fourier", norm_num_groups=None, attention_head_dim=None, norm_eps=1e-6,
              mid_block_scale_factor=math.sqrt(2.0), flip_sin_to_cos=True, freq_shift=0, downsample_padding=1)


def _blocks(levels: int, attention: set[int], plain: str, attn: str) -> tuple[str, ...]:
    return tuple(attn if i in attention else plain for i in range(levels))


def _ddpm(size, channels, attention, layers=2, **kw):
    n = len(channels)
    return dict(DDPM, sample_size=size, block_out_channels=channels, layers_per_block=layers,
                down_block_types=_blocks(n, attention, "DownBlock2D", "AttnDownBlock2D"),
                up_block_types=_blocks(n, {n - 1 - a for a in attention}, "UpBlock2D", "AttnUpBlock2D"), **kw)


def _adm(size, channels, attention, layers, head, updown, **kw):
    n = len(channels)
    plain = ("ResnetDownsampleBlock2D", "ResnetUpsampleBlock2D") if updown else ("DownBlock2D", "UpBlock2D")
    return dict(ADM_UPDOWN if updown else ADM, sample_size=size, block_out_channels=channels, layers_per_block=layers,
                attention_head_dim=head, down_block_types=_blocks(n, attention, plain[0], "AttnDownBlock2D"),
                up_block_types=_blocks(n, {n - 1 - a for a in attention}, plain[1], "AttnUpBlock2D"), **kw)


def _ncsnpp(size, channels, attention, layers, **kw):
    n = len(channels)
    return dict(NCSNPP, sample_size=size, block_out_channels=channels, layers_per_block=layers,
                down_block_types=_blocks(n, attention, "SkipDownBlock2D", "AttnSkipDownBlock2D"),
                up_block_types=_blocks(n, {n - 1 - a for a in attention}, "SkipUpBlock2D", "AttnSkipUpBlock2D"), **kw)


# Published config.json facts (google/ddpm-cifar10-32, google/ddpm-celebahq-256, google/ncsnpp-celebahq-256,
# google/ncsnpp-ffhq-1024) and the official flags in diffusers' vocabulary (iDDPM, ADM), with the name to load by.
FULL = {
    "ddpm_cifar10": (_ddpm(32, (128, 256, 256, 256), {1}), "ddpm_cifar10", 35_746_307),
    "ddpm_celeba64": (_ddpm(64, (128, 256, 256, 256, 512), {2}), "ddpm_celeba64", 78_700_803),
    "ddpm_256": (_ddpm(256, (128, 128, 256, 256, 512, 512), {4}), "ddpm_celebahq256", None),
    "ncsnpp_256": (_ncsnpp(256, (128, 128, 256, 256, 256, 256, 256), {4}, 2, center_input_sample=True),
                   "ncsnpp_celebahq256_ve", None),
    "ncsnpp_1024": (_ncsnpp(1024, (16, 32, 64, 128, 256, 512, 512, 512), {6}, 1, center_input_sample=True),
                    "ncsnpp_ffhq1024_ve", None),
    "iddpm_cifar10": (_adm(32, (128, 256, 256, 256), {1, 2}, 3, 64, False, out_channels=6), "iddpm_cifar10", 52_546_438),
    "iddpm_lsun": (_adm(256, (128, 128, 256, 256, 512, 512), {4}, 2, 512, False, out_channels=6,
                        resnet_time_scale_shift="default", attn_norm_num_groups=None), "iddpm_lsun_bedroom", None),
    "adm_64": (_adm(64, (192, 384, 576, 768), {1, 2, 3}, 3, 64, True, out_channels=6, num_class_embeds=1000),
               "adm_64", 295_904_454),
    "adm_256": (_adm(256, (256, 256, 512, 512, 1024, 1024), {3, 4, 5}, 2, 64, True, out_channels=6,
                     num_class_embeds=1000), "adm_256", 553_838_086),
}

# Small configurations with every option of each kind; the key maps do not depend on the sizes.
SMALL = {
    "ddpm": (_ddpm(16, (32, 32, 64), {0, 2}, layers=2), "ddpm"),
    "iddpm": (_adm(16, (32, 64, 64), {1, 2}, 1, 16, False, out_channels=6), "adm"),
    "adm_updown_labels": (_adm(16, (32, 64, 64), {1, 2}, 1, 16, True, out_channels=6, num_class_embeds=5), "adm"),
    "adm_plain_shift_one_head": (_adm(16, (32, 64), {1}, 1, None, False, resnet_time_scale_shift="default",
                                      attn_norm_num_groups=None), "adm"),
    "ncsnpp": (_ncsnpp(16, (32, 128, 128), {1, 2}, 1, center_input_sample=True), "ncsnpp"),
}


def _sinusoid64(dim: int, flip: bool, shift: int):
    """The positional embedding of DDPM (flip False, shift 1) or iDDPM/ADM (flip True, shift 0), in float64."""
    def embed(t: torch.Tensor) -> torch.Tensor:
        half = dim // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float64) / (half - shift))
        args = t.to(torch.float64)[:, None] * freqs[None, :]
        return torch.cat([args.cos(), args.sin()] if flip else [args.sin(), args.cos()], dim=1)
    return embed


def _diffusers(config: dict, seed: int = 0) -> UNet2DModel:
    torch.manual_seed(seed)
    model = UNet2DModel(**config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model


def _inputs(config: dict, batch: int, dtype: torch.dtype, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    size = config["sample_size"]
    x = torch.randn(batch, config.get("in_channels", 3), size, size, generator=g, dtype=dtype)
    if config.get("time_embedding_type") == "fourier":
        t = torch.exp(torch.empty(batch, dtype=dtype).uniform_(math.log(0.01), math.log(50.0), generator=g))
    else:
        t = torch.randint(0, 1000, (batch,), generator=g).to(dtype)
        t[0] = 999.0
    classes = config.get("num_class_embeds")
    y = None if classes is None else torch.randint(0, classes, (batch,), generator=g)
    return x, t, y


def _agreement(theirs: UNet2DModel, ours: torch.nn.Module, config: dict, dtype: torch.dtype, batch: int = 2) -> float:
    """max |ours − diffusers| / max |diffusers| on random inputs (positional sinusoids in float64 when dtype is)."""
    theirs = theirs.to(dtype)
    ours = ours.to(dtype)
    if dtype == torch.float64 and config.get("time_embedding_type", "positional") == "positional":
        theirs.time_proj.forward = _sinusoid64(config["block_out_channels"][0], config["flip_sin_to_cos"],
                                               config["freq_shift"])
    x, t, y = _inputs(config, batch, dtype)
    with torch.no_grad():
        a = theirs(x, t, class_labels=y).sample
        b = ours(x, t, y)
    assert a.shape == b.shape
    return float((a - b).abs().max() / a.abs().max())


@pytest.mark.parametrize("case", sorted(SMALL))
def test_small_configurations_agree_in_float64_and_float32(case: str, tmp_path: Path) -> None:
    config, family = SMALL[case]
    model = _diffusers(config)
    model.save_pretrained(tmp_path / "f32")
    loaded = load(family, tmp_path / "f32")
    assert loaded.layout == "diffusers" and loaded.family == family
    assert _agreement(model, loaded.net, config, torch.float32, batch=3) < TOL[torch.float32]
    model.double().save_pretrained(tmp_path / "f64")
    assert _agreement(model, load(family, tmp_path / "f64", dtype=torch.float64).net, config, torch.float64,
                      batch=3) < TOL[torch.float64]


def _in_memory(model: UNet2DModel, name: str, dtype: torch.dtype) -> torch.nn.Module:
    """diffusers' state dict mapped without a file (the folder path is the small configurations' test)."""
    _, found = from_diffusers(dict(model.config))
    check_named(found, PRESETS[name].config if name in PRESETS else nets.config(name), name, Path(name))
    with torch.device("meta"):
        net = found.build().to(dtype)
    state = keymap("diffusers", net).ours(model.to(dtype).state_dict(), net.state_dict(), name)
    net.load_state_dict(state, assign=True)
    return net.eval()


def test_ddpm_cifar10_full_size_agrees() -> None:
    """The one full-size network of the default suite: DDPM CIFAR-10 as google/ddpm-cifar10-32 configures it."""
    config, name, count = FULL["ddpm_cifar10"]
    model = _diffusers(config)
    assert sum(p.numel() for p in model.parameters()) == count
    error32 = _agreement(model, _in_memory(model, name, torch.float32), config, torch.float32)
    error64 = _agreement(model, _in_memory(model, name, torch.float64), config, torch.float64)
    assert error64 < TOL[torch.float64] and error32 < TOL[torch.float32], (error64, error32)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(set(FULL) - {"ddpm_cifar10"}))
def test_full_size_configurations_agree(case: str) -> None:
    """Every other seed configuration diffusers can express, at full size; the two largest in float32 only."""
    config, name, count = FULL[case]
    model = _diffusers(config)
    if count is not None:
        assert sum(p.numel() for p in model.parameters()) == count
    big = (count or 0) > 200_000_000 and config["sample_size"] > 64 or config["sample_size"] > 256
    for dtype in (torch.float32,) if big else (torch.float32, torch.float64):
        error = _agreement(model, _in_memory(model, name, dtype), config, dtype, batch=1 if big else 2)
        assert error < TOL[dtype], (case, dtype, error)


def test_early_diffusers_key_names_load(tmp_path: Path) -> None:
    """Weights saved in 2022 (attention query/key/value/proj_attn, Fourier W beside weight) as a .bin load alike."""
    config, family = SMALL["ncsnpp"]
    model = _diffusers(config).double()
    model.save_pretrained(tmp_path)
    state = {}
    for k, v in model.state_dict().items():
        for new, old in (("to_q", "query"), ("to_k", "key"), ("to_v", "value"), ("to_out.0", "proj_attn")):
            k = k.replace(f".{new}.", f".{old}.")
        state[k] = v
    state["time_proj.W"] = state["time_proj.weight"].clone()
    (tmp_path / "diffusion_pytorch_model.safetensors").unlink()
    torch.save(state, tmp_path / "diffusion_pytorch_model.bin")
    loaded = load("ncsnpp", tmp_path, dtype=torch.float64)
    assert _agreement(model, loaded.net, config, torch.float64) < TOL[torch.float64]


def test_named_configuration_must_match_the_folder(tmp_path: Path) -> None:
    _diffusers(SMALL["ddpm"][0]).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"is not 'ddpm_cifar10'.*image_size: file 16.*ch: file 32"):
        load("ddpm_cifar10", tmp_path)
    with pytest.raises(CheckpointError, match="holds a ddpm network .*not ncsnpp"):
        load("ncsnpp_celebahq256_ve", tmp_path)


@pytest.mark.parametrize(("change", "message"), [
    (dict(attention_head_dim=8), "attention_head_dim=8 .*DDPM attention has one head"),
    (dict(downsample_padding=1), "downsample_padding=1 .*TF 'SAME'"),
    (dict(act_fn="gelu"), "act_fn='gelu'"),
    (dict(freq_shift=0), "neither DDPM's"),
])
def test_configurations_without_counterpart_are_refused(change: dict, message: str, tmp_path: Path) -> None:
    _diffusers(SMALL["ddpm"][0]).save_pretrained(tmp_path)
    data = {**json.loads((tmp_path / "config.json").read_text()), **change}
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=message):
        load(None, tmp_path)


def test_narrow_ncsnpp_departs_from_score_sde_in_diffusers(tmp_path: Path) -> None:
    """Below 128 channels at the attention level diffusers' NCSN++ normalises differently from score_sde.

    score_sde_pytorch `models/layerspp.py`: ``AttnBlockpp`` and ``ResnetBlockBigGANpp`` use
    GroupNorm(num_groups=min(C // 4, 32)). diffusers: the attention of the Skip blocks uses 32 groups, and
    ``AttnSkipUpBlock2D`` computes ``min(resnet_in_channels + res_skip_channels // 4, 32)``. With those GroupNorms set
    to score_sde's rule, diffusers agrees with diffcheck to rounding: the departure is diffusers', and only there.
    """
    config = _ncsnpp(16, (32, 64, 64), {1}, 1, center_input_sample=True)
    model = _diffusers(config).double()
    model.save_pretrained(tmp_path)
    ours = load("ncsnpp", tmp_path, dtype=torch.float64).net
    assert _agreement(model, ours, config, torch.float64) > 1e-3
    fixed = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.GroupNorm):
            rule = min(module.num_channels // 4, 32)
            if module.num_groups != rule:
                assert ".attentions." in name or "up_blocks.1.resnets" in name, name
                module.num_groups = rule
                fixed += 1
    assert fixed >= 3
    assert _agreement(model, ours, config, torch.float64) < TOL[torch.float64]
