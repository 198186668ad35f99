"""A diffusers ``UNet2DModel`` config.json as a diffcheck configuration, and which configurations it can express.

Three kinds of UNet2DModel are seed models of this project, told apart by the time embedding:

- DDPM (Ho et al. 2020; google/ddpm-*): positional, [sin, cos] (``flip_sin_to_cos`` false) with ``freq_shift`` 1,
  ``DownBlock2D``/``AttnDownBlock2D``, padding 0 (TF 'SAME' on the right), GroupNorm(32, eps 1e-6), one head.
- iDDPM/ADM (Nichol & Dhariwal 2021; Dhariwal & Nichol 2021): positional, [cos, sin] with ``freq_shift`` 0,
  GroupNorm eps 1e-5, ``resnet_time_scale_shift`` "scale_shift" or "default", heads of ``attention_head_dim``
  channels, symmetric padding, BigGAN up/down blocks when ``downsample_type`` is "resnet", labels by
  ``num_class_embeds``. With scale-shift the middle attention needs ``attn_norm_num_groups`` 32 to have a norm.
- NCSN++ (Song et al. 2021; google/ncsnpp-*): Gaussian Fourier σ embedding, ``SkipDownBlock2D``/``SkipUpBlock2D``
  with FIR resampling, the input and output pyramids, skip rescaling by √2, GroupNorm(min(C/4, 32), eps 1e-6).

Any other setting has no counterpart here and is refused with the setting named.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from torch import Tensor

from ..adm import ADMConfig
from ..ddpm import DDPMConfig
from ..ncsnpp import NCSNppConfig
from .keymap import CheckpointError

__all__ = ["from_diffusers", "current_keys"]

def _require(cfg: dict[str, Any], key: str, allowed: tuple[Any, ...], default: Any, why: str) -> None:
    value = cfg.get(key, default)
    if value not in allowed:
        raise CheckpointError(f"diffusers config {key}={value!r} has no diffcheck counterpart ({why}; "
                              f"supported: {', '.join(map(repr, allowed))})")


def _mults(channels: list[int], base: int) -> tuple[Any, ...]:
    mults = []
    for c in channels:
        if c % base:
            raise CheckpointError(f"diffusers block_out_channels {channels} are not multiples of the first ({base})")
        mults.append(c // base)
    return tuple(mults)


def _attention_levels(down: list[str], up: list[str], attn_down: set[str], attn_up: set[str]) -> list[int]:
    levels = [i for i, b in enumerate(down) if b in attn_down]
    mirrored = [len(up) - 1 - k for k, b in enumerate(up) if b in attn_up]
    if sorted(mirrored) != levels:
        raise CheckpointError(f"diffusers down_block_types {down} and up_block_types {up} put attention at different "
                              "levels on the way down and up; every diffcheck U-Net mirrors them")
    return levels


def _block_names(names: list[str]) -> list[str]:
    """Block type names without the "UNetRes" prefix that diffusers also accepts."""
    return [n[len("UNetRes"):] if n.startswith("UNetRes") else n for n in names]


def from_diffusers(cfg: dict[str, Any]) -> tuple[str, Any]:
    """(family, configuration) of a diffusers UNet2DModel config.json; a CheckpointError names what has no counterpart."""
    if cfg.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise CheckpointError(f"diffusers model class {cfg.get('_class_name')!r} is not supported; only UNet2DModel")
    down, up = _block_names(cfg["down_block_types"]), _block_names(cfg["up_block_types"])
    channels = list(cfg["block_out_channels"])
    if not (len(down) == len(up) == len(channels)):
        raise CheckpointError("diffusers config: down_block_types, up_block_types and block_out_channels differ in length")
    _require(cfg, "act_fn", ("silu", "swish"), "silu", "every seed network uses SiLU")
    _require(cfg, "class_embed_type", (None,), None, "labels enter by an embedding table")
    _require(cfg, "time_embedding_dim", (None,), None, "the embedding MLP is 4x the base width")
    _require(cfg, "add_attention", (True,), True, "the middle block has attention")
    _require(cfg, "mid_block_type", ("UNetMidBlock2D",), "UNetMidBlock2D", "block–attention–block middle")
    size = cfg.get("sample_size")
    if not isinstance(size, int):
        raise CheckpointError(f"diffusers config sample_size={size!r}: a square image size is needed")
    in_ch, out_ch = cfg.get("in_channels", 3), cfg.get("out_channels", 3)
    nrb = cfg.get("layers_per_block", 2)
    dropout = float(cfg.get("dropout", 0.0))
    kind = cfg.get("time_embedding_type", "positional")
    if kind == "fourier":
        _require(cfg, "norm_num_groups", (None,), 32, "NCSN++ uses GroupNorm(min(C/4, 32))")
        _require(cfg, "attention_head_dim", (None,), 8, "NCSN++ attention has one head")
        _require(cfg, "norm_eps", (1e-6,), 1e-5, "NCSN++ norms use eps 1e-6")
        _require(cfg, "resnet_time_scale_shift", ("default",), "default", "NCSN++ adds the embedding")
        if not math.isclose(float(cfg.get("mid_block_scale_factor", 1.0)), math.sqrt(2.0), rel_tol=1e-9):
            raise CheckpointError("diffusers NCSN++ config needs mid_block_scale_factor √2 (skip rescaling)")
        if not (set(down) <= {"SkipDownBlock2D", "AttnSkipDownBlock2D"} and set(up) <= {"SkipUpBlock2D", "AttnSkipUpBlock2D"}):
            raise CheckpointError(f"diffusers Fourier-embedded U-Net with blocks {down}/{up}: only the Skip blocks of NCSN++")
        if in_ch != 3 or out_ch != 3:
            raise CheckpointError("diffusers' Skip blocks hard-code 3 image channels")
        levels = _attention_levels(down, up, {"AttnSkipDownBlock2D"}, {"AttnSkipUpBlock2D"})
        return "ncsnpp", NCSNppConfig(
            image_size=size, channels=in_ch, nf=channels[0], ch_mult=_mults(channels, channels[0]), num_res_blocks=nrb,
            attn_resolutions=tuple(size // 2**lv for lv in levels), dropout=dropout, fir=True, skip_rescale=True,
            progressive="output_skip", progressive_input="input_skip", progressive_combine="sum",
            embedding_type="fourier", scale_by_sigma=True, centered=not cfg.get("center_input_sample", False))
    if kind != "positional":
        raise CheckpointError(f"diffusers time_embedding_type={kind!r} has no diffcheck counterpart")
    _require(cfg, "center_input_sample", (False,), False, "DDPM and ADM take data in [-1, 1]")
    _require(cfg, "norm_num_groups", (32,), 32, "GroupNorm(32)")
    _require(cfg, "mid_block_scale_factor", (1, 1.0), 1, "no skip rescaling in DDPM/ADM")
    flip, shift = cfg.get("flip_sin_to_cos", True), cfg.get("freq_shift", 0)
    if (flip, shift) == (False, 1):  # DDPM
        _require(cfg, "resnet_time_scale_shift", ("default",), "default", "DDPM adds the embedding")
        _require(cfg, "attention_head_dim", (None,), 8, "DDPM attention has one head")
        _require(cfg, "norm_eps", (1e-6,), 1e-5, "DDPM norms use eps 1e-6")
        _require(cfg, "downsample_padding", (0,), 1, "DDPM pads (0, 1) like TF 'SAME'")
        _require(cfg, "downsample_type", ("conv",), "conv", "strided conv downsampling")
        _require(cfg, "upsample_type", ("conv",), "conv", "nearest + conv upsampling")
        if not (set(down) <= {"DownBlock2D", "AttnDownBlock2D"} and set(up) <= {"UpBlock2D", "AttnUpBlock2D"}):
            raise CheckpointError(f"diffusers DDPM-style U-Net with blocks {down}/{up} has no diffcheck counterpart")
        levels = _attention_levels(down, up, {"AttnDownBlock2D"}, {"AttnUpBlock2D"})
        return "ddpm", DDPMConfig(image_size=size, in_channels=in_ch, out_channels=out_ch, ch=channels[0],
                                  ch_mult=_mults(channels, channels[0]), num_res_blocks=nrb,
                                  attn_resolutions=tuple(size // 2**lv for lv in levels), dropout=dropout)
    if (flip, shift) != (True, 0):
        raise CheckpointError(f"diffusers flip_sin_to_cos={flip!r}, freq_shift={shift!r}: neither DDPM's "
                              "(False, 1) nor iDDPM/ADM's (True, 0) sinusoidal embedding")
    scale_shift = cfg.get("resnet_time_scale_shift", "default")
    _require(cfg, "resnet_time_scale_shift", ("default", "scale_shift"), "default", "ADM's two conditionings")
    _require(cfg, "norm_eps", (1e-5,), 1e-5, "ADM norms use eps 1e-5")
    _require(cfg, "downsample_padding", (1,), 1, "ADM pads 1 on every side")
    if scale_shift == "scale_shift":
        _require(cfg, "attn_norm_num_groups", (32,), None, "with scale-shift the middle attention has a norm only so")
    updown = cfg.get("downsample_type", "conv")
    _require(cfg, "downsample_type", ("conv", "resnet"), "conv", "strided conv or BigGAN downsampling")
    _require(cfg, "upsample_type", (updown,), "conv", "up- and downsampling of the same kind")
    plain = ("DownBlock2D", "UpBlock2D") if updown == "conv" else ("ResnetDownsampleBlock2D", "ResnetUpsampleBlock2D")
    if not (set(down) <= {plain[0], "AttnDownBlock2D"} and set(up) <= {plain[1], "AttnUpBlock2D"}):
        raise CheckpointError(f"diffusers ADM-style U-Net with blocks {down}/{up} and {updown!r} resampling "
                              "has no diffcheck counterpart")
    levels = _attention_levels(down, up, {"AttnDownBlock2D"}, {"AttnUpBlock2D"})
    if out_ch not in (in_ch, 2 * in_ch):
        raise CheckpointError(f"diffusers config out_channels={out_ch}: ADM outputs ε ({in_ch}) or ε and v ({2 * in_ch})")
    head = cfg.get("attention_head_dim", 8)
    classes = cfg.get("num_class_embeds")
    return "adm", ADMConfig(
        image_size=size, in_channels=in_ch, model_channels=channels[0], num_res_blocks=nrb,
        attention_resolutions=tuple(size // 2**lv for lv in levels), dropout=dropout,
        channel_mult=_mults(channels, channels[0]), num_classes=classes, num_heads=1, num_head_channels=head,
        use_scale_shift_norm=scale_shift == "scale_shift", resblock_updown=updown == "resnet",
        use_new_attention_order=True, learn_sigma=out_ch == 2 * in_ch)


_DEPRECATED = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def current_keys(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """Weights saved by early diffusers (2022) under today's names: attention ``query``/``key``/``value``/``proj_attn``
    become ``to_q``/``to_k``/``to_v``/``to_out.0`` (as diffusers' own loader renames them), and the Fourier
    embedding's duplicate ``time_proj.W`` is dropped beside ``time_proj.weight`` (both were saved then)."""
    out: dict[str, Tensor] = {}
    for key, value in tensors.items():
        m = re.match(r"(.*\.attentions\.\d+)\.(query|key|value|proj_attn)\.(weight|bias)$", key)
        out[f"{m.group(1)}.{_DEPRECATED[m.group(2)]}.{m.group(3)}" if m else key] = value
    if "time_proj.W" in out:
        w = out.pop("time_proj.W")
        if "time_proj.weight" not in out:
            out["time_proj.weight"] = w
        elif not torch.equal(w, out["time_proj.weight"]):
            raise CheckpointError("diffusers weights hold time_proj.W and time_proj.weight with different values")
    return out
