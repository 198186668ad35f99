"""Key maps of NCSN++/DDPM++ (Song et al. 2021): score_sde_pytorch's flat module list and diffusers' skip blocks.

score_sde (`models/ncsnpp.py`) keeps every layer in one ``all_modules`` list, numbered in construction order:
[Fourier W], two Dense layers, the input conv; per level, BigGAN residual blocks (GroupNorm_0, Conv_0, Dense_0,
GroupNorm_1, Conv_1, Conv_2) each followed by attention (GroupNorm_0, NIN_0..NIN_3) at the chosen resolutions,
then a downsampling block and the input pyramid's Combine (Conv_0) or FIR/strided conv (Conv2d_0/Conv_0);
block–attention–block; per level from the coarsest, one more block than on the way down, attention once, the
output pyramid's GroupNorm and conv, an upsampling block; a final GroupNorm and conv unless the output pyramid
ends the network. A buffer ``sigmas`` (the training noise ladder) is stored beside them. NIN weights are
(in, out) matrices applied as x·W.

diffusers' ``SkipDownBlock2D``/``AttnSkipDownBlock2D``/``SkipUpBlock2D``/``AttnSkipUpBlock2D`` express the
configuration with the input pyramid "input_skip" and the output pyramid "output_skip" (the score_sde
checkpoints of CelebA-HQ, FFHQ and LSUN): ``resnet_down``/``skip_conv`` per down level, ``skip_norm``/
``skip_conv``/``resnet_up`` per up level, and the finest level's output conv as ``conv_norm_out``/``conv_out``.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from .keymap import QKV, KeyMap, Reshape, Rule, Transpose, renamed

__all__ = ["score_sde_keymap", "diffusers_ncsnpp_keymap", "SCORE_SDE_RES", "SCORE_SDE_BUFFERS"]

SCORE_SDE_RES = {"norm1": "GroupNorm_0", "conv1": "Conv_0", "emb_proj": "Dense_0", "norm2": "GroupNorm_1",
                 "conv2": "Conv_1", "skip": "Conv_2"}
"""Children of a BigGAN residual block (score_sde ``ResnetBlockBigGANpp``): ours → theirs."""

DIFFUSERS_RES = {"norm1": "norm1", "conv1": "conv1", "emb_proj": "time_emb_proj", "norm2": "norm2", "conv2": "conv2",
                 "skip": "conv_shortcut"}

SCORE_SDE_BUFFERS = ("sigmas",)
"""Buffers score_sde stores with the model: read as metadata."""


def _attention(ours: str, theirs: str, fmt: Literal["score_sde", "diffusers"]) -> list[Rule]:
    """score_sde's AttnBlockpp (NIN_0..3 = q, k, v, out) or diffusers' Attention (to_q, to_k, to_v, to_out.0); one head."""
    if fmt == "score_sde":
        nin = QKV(1, "qkv_first", "nin")
        return [Rule(f"{ours}.norm.weight", (f"{theirs}.GroupNorm_0.weight",)),
                Rule(f"{ours}.norm.bias", (f"{theirs}.GroupNorm_0.bias",)),
                Rule(f"{ours}.qkv.weight", tuple(f"{theirs}.NIN_{i}.W" for i in range(3)), nin),
                Rule(f"{ours}.qkv.bias", tuple(f"{theirs}.NIN_{i}.b" for i in range(3)), nin),
                Rule(f"{ours}.proj.weight", (f"{theirs}.NIN_3.W",), Transpose()),
                Rule(f"{ours}.proj.bias", (f"{theirs}.NIN_3.b",))]
    lin = QKV(1, "qkv_first", "linear")
    return [Rule(f"{ours}.norm.weight", (f"{theirs}.group_norm.weight",)),
            Rule(f"{ours}.norm.bias", (f"{theirs}.group_norm.bias",)),
            Rule(f"{ours}.qkv.weight", tuple(f"{theirs}.{n}.weight" for n in ("to_q", "to_k", "to_v")), lin),
            Rule(f"{ours}.qkv.bias", tuple(f"{theirs}.{n}.bias" for n in ("to_q", "to_k", "to_v")), lin),
            Rule(f"{ours}.proj.weight", (f"{theirs}.to_out.0.weight",), Reshape(2)),
            Rule(f"{ours}.proj.bias", (f"{theirs}.to_out.0.bias",))]


def score_sde_keymap(net: nn.Module) -> KeyMap:
    """``all_modules.{n}`` of score_sde's NCSNpp for our NCSNpp (resblock_type "biggan", conditional)."""
    keys = list(net.state_dict())
    rules: list[Rule] = []
    n = 0

    def module(ours: str, names: dict[str, str | None]) -> None:
        nonlocal n
        rules.extend(renamed(ours, f"all_modules.{n}", names, keys))
        n += 1

    if net.fourier is not None:
        rules.append(Rule("fourier.frequencies", ("all_modules.0.W",)))
        n = 1
    module("time_mlp.0", {"": ""})
    module("time_mlp.2", {"": ""})
    module("conv_in", {"": ""})
    for level, stage in enumerate(net.down):
        for i, attention in enumerate(stage.attentions):
            module(f"down.{level}.blocks.{i}", SCORE_SDE_RES)
            if not isinstance(attention, nn.Identity):
                rules.extend(_attention(f"down.{level}.attentions.{i}", f"all_modules.{n}", "score_sde"))
                n += 1
        if stage.downsample is not None:
            module(f"down.{level}.downsample", SCORE_SDE_RES)
            if stage.combine is not None:
                module(f"down.{level}.combine", {"": "Conv_0"})
            elif stage.pyramid_down is not None:
                module(f"down.{level}.pyramid_down", {"conv": "Conv2d_0" if net.config.fir else "Conv_0"})
    module("middle.0", SCORE_SDE_RES)
    rules.extend(_attention("middle.1", f"all_modules.{n}", "score_sde"))
    n += 1
    module("middle.2", SCORE_SDE_RES)
    for k, stage in enumerate(net.up):
        for i in range(len(stage.blocks)):
            module(f"up.{k}.blocks.{i}", SCORE_SDE_RES)
        if not isinstance(stage.attentions[0], nn.Identity):
            rules.extend(_attention(f"up.{k}.attentions.0", f"all_modules.{n}", "score_sde"))
            n += 1
        if stage.pyramid_norm is not None:
            module(f"up.{k}.pyramid_norm", {"": ""})
            module(f"up.{k}.pyramid_conv", {"": ""})
        if stage.upsample is not None:
            module(f"up.{k}.upsample", SCORE_SDE_RES)
    if net.norm_out is not None:
        module("norm_out", {"": ""})
        module("conv_out", {"": ""})
    return KeyMap(tuple(rules), extras=SCORE_SDE_BUFFERS)


def diffusers_ncsnpp_keymap(net: nn.Module) -> KeyMap:
    """diffusers' UNet2DModel with Skip blocks for our NCSNpp with progressive "output_skip" and "input_skip"."""
    keys = list(net.state_dict())
    levels = len(net.down)
    rules = [Rule("fourier.frequencies", ("time_proj.weight",))]
    rules += renamed("time_mlp.0", "time_embedding.linear_1", {"": ""}, keys)
    rules += renamed("time_mlp.2", "time_embedding.linear_2", {"": ""}, keys)
    rules += renamed("conv_in", "conv_in", {"": ""}, keys)
    for level, stage in enumerate(net.down):
        block = f"down_blocks.{level}"
        for i, attention in enumerate(stage.attentions):
            rules += renamed(f"down.{level}.blocks.{i}", f"{block}.resnets.{i}", DIFFUSERS_RES, keys)
            if not isinstance(attention, nn.Identity):
                rules += _attention(f"down.{level}.attentions.{i}", f"{block}.attentions.{i}", "diffusers")
        if stage.downsample is not None:
            rules += renamed(f"down.{level}.downsample", f"{block}.resnet_down", DIFFUSERS_RES, keys)
            rules += renamed(f"down.{level}.combine", f"{block}.skip_conv", {"": ""}, keys)
    rules += renamed("middle.0", "mid_block.resnets.0", DIFFUSERS_RES, keys)
    rules += _attention("middle.1", "mid_block.attentions.0", "diffusers")
    rules += renamed("middle.2", "mid_block.resnets.1", DIFFUSERS_RES, keys)
    for k, stage in enumerate(net.up):
        block = f"up_blocks.{k}"
        for i in range(len(stage.blocks)):
            rules += renamed(f"up.{k}.blocks.{i}", f"{block}.resnets.{i}", DIFFUSERS_RES, keys)
        if not isinstance(stage.attentions[0], nn.Identity):
            rules += _attention(f"up.{k}.attentions.0", f"{block}.attentions.0", "diffusers")
        last = k == levels - 1
        rules += renamed(f"up.{k}.pyramid_norm", "conv_norm_out" if last else f"{block}.skip_norm", {"": ""}, keys)
        rules += renamed(f"up.{k}.pyramid_conv", "conv_out" if last else f"{block}.skip_conv", {"": ""}, keys)
        if stage.upsample is not None:
            rules += renamed(f"up.{k}.upsample", f"{block}.resnet_up", DIFFUSERS_RES, keys)
    return KeyMap(tuple(rules))
