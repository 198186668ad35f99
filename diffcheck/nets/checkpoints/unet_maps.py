"""Key maps of the DDPM-lineage U-Nets: ddim's PyTorch port of DDPM, openai's improved/guided-diffusion, diffusers.

The three codes build the same network in the same order and name it differently. :func:`unet_sites` walks our
U-Net (``diffcheck.nets.unet``) as the official constructors do — input convolution; per level, residual blocks
each followed by attention at the chosen resolutions, then a 2× downsampling; block–attention–block in the
middle; per level from the coarsest, one more block than on the way down, the last followed by upsampling — and
each format names every site:

- ddim (ermongroup/ddim `models/diffusion.py`, also pesser/pytorch_diffusion): ``down.{level}.block.{i}``,
  ``down.{level}.attn.{i}``, ``down.{level}.downsample``, ``mid.block_1``, ``mid.attn_1``, ``mid.block_2``,
  ``up.{level}.block.{i}``, ``up.{level}.attn.{i}``, ``up.{level}.upsample``; separate q, k, v 1×1 convolutions.
- openai (improved-diffusion and guided-diffusion `unet.py`): ``input_blocks.{n}.{m}``, ``middle_block.{m}``,
  ``output_blocks.{n}.{m}`` numbered exactly as our ``encoder.blocks`` and ``decoder``; fused qkv as a conv1d.
- diffusers (`UNet2DModel`): ``down_blocks.{level}.resnets.{i}``, ``.attentions.{i}``, ``.downsamplers.0``,
  ``mid_block``, ``up_blocks.{L-1-level}...``; q, k, v and the output projection as linear layers.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from torch import nn

from ..common import SelfAttention2d
from ..unet import UNetLayout
from .keymap import COPY, QKV, KeyMap, Reshape, Rule, renamed

__all__ = ["Site", "unet_sites", "unet_keymap", "FORMATS"]

Format = Literal["ddim", "openai", "diffusers"]
FORMATS: tuple[Format, ...] = ("ddim", "openai", "diffusers")

RES_NAMES: dict[str, dict[str, str | None]] = {
    "ddim": {"norm1": "norm1", "conv1": "conv1", "emb_proj": "temb_proj", "norm2": "norm2", "conv2": "conv2",
             "skip": "nin_shortcut"},
    "openai": {"norm1": "in_layers.0", "conv1": "in_layers.2", "emb_proj": "emb_layers.1", "norm2": "out_layers.0",
               "conv2": "out_layers.3", "skip": "skip_connection"},
    "diffusers": {"norm1": "norm1", "conv1": "conv1", "emb_proj": "time_emb_proj", "norm2": "norm2",
                  "conv2": "conv2", "skip": "conv_shortcut"},
}
"""Children of a residual block: ours → theirs."""

TOP_NAMES: dict[str, dict[str, str]] = {
    "ddim": {"time_embed.0": "temb.dense.0", "time_embed.2": "temb.dense.1", "out.0": "norm_out", "out.2": "conv_out"},
    "openai": {"time_embed.0": "time_embed.0", "time_embed.2": "time_embed.2", "label_embed": "label_emb",
               "out.0": "out.0", "out.2": "out.2", "out.2.1": "out.3"},
    "diffusers": {"time_embed.0": "time_embedding.linear_1", "time_embed.2": "time_embedding.linear_2",
                  "label_embed": "class_embedding", "out.0": "conv_norm_out", "out.2": "conv_out"},
}
"""Modules outside the levels: ours → theirs."""


@dataclasses.dataclass(frozen=True)
class Site:
    """One module of the U-Net: what it is, our prefix, and where it sits (for the formats' names)."""

    kind: Literal["conv_in", "res", "attn", "down", "up"]
    ours: str
    part: Literal["enc", "mid", "dec"]
    level: int
    index: int
    seq: int
    sub: int


def unet_sites(layout: UNetLayout, *, decoder: bool = True) -> list[Site]:
    """The modules of the U-Net in construction order (Ho et al. 2020, Appendix B; Dhariwal & Nichol 2021, §3)."""
    levels, blocks = len(layout.channel_mult), layout.num_res_blocks
    sites = [Site("conv_in", "encoder.blocks.0.0.conv", "enc", 0, 0, 0, 0)]
    seq = 1
    for level in range(levels):
        for i in range(blocks):
            sites.append(Site("res", f"encoder.blocks.{seq}.0", "enc", level, i, seq, 0))
            if layout.has_attention(level):
                sites.append(Site("attn", f"encoder.blocks.{seq}.1", "enc", level, i, seq, 1))
            seq += 1
        if level != levels - 1:
            sites.append(Site("down", f"encoder.blocks.{seq}.0", "enc", level, blocks, seq, 0))
            seq += 1
    sites += [Site("res", "encoder.middle.0", "mid", levels - 1, 0, 0, 0),
              Site("attn", "encoder.middle.1", "mid", levels - 1, 1, 0, 1),
              Site("res", "encoder.middle.2", "mid", levels - 1, 2, 0, 2)]
    if not decoder:
        return sites
    seq = 0
    for level in reversed(range(levels)):
        for i in range(blocks + 1):
            sites.append(Site("res", f"decoder.{seq}.0", "dec", level, i, seq, 0))
            sub = 1
            if layout.has_attention(level):
                sites.append(Site("attn", f"decoder.{seq}.1", "dec", level, i, seq, 1))
                sub = 2
            if level and i == blocks:
                sites.append(Site("up", f"decoder.{seq}.{sub}", "dec", level, i, seq, sub))
            seq += 1
    return sites


def _prefix(fmt: Format, site: Site, levels: int) -> str:
    """The checkpoint's name of a site's module."""
    if fmt == "openai":
        if site.part == "mid":
            return f"middle_block.{site.sub}"
        return f"{'input_blocks' if site.part == 'enc' else 'output_blocks'}.{site.seq}.{site.sub}"
    if site.kind == "conv_in":
        return "conv_in"
    if fmt == "ddim":
        if site.part == "mid":
            return ("mid.block_1", "mid.attn_1", "mid.block_2")[site.sub]
        side = "down" if site.part == "enc" else "up"
        child = {"res": f"block.{site.index}", "attn": f"attn.{site.index}", "down": "downsample", "up": "upsample"}
        return f"{side}.{site.level}.{child[site.kind]}"
    if site.part == "mid":
        return ("mid_block.resnets.0", "mid_block.attentions.0", "mid_block.resnets.1")[site.sub]
    side = f"down_blocks.{site.level}" if site.part == "enc" else f"up_blocks.{levels - 1 - site.level}"
    child = {"res": f"resnets.{site.index}", "attn": f"attentions.{site.index}", "down": "downsamplers.0",
             "up": "upsamplers.0"}
    return f"{side}.{child[site.kind]}"


def _attention(fmt: Format, ours: str, theirs: str, module: SelfAttention2d) -> list[Rule]:
    """Rules of one self-attention block: norm, q/k/v, output projection."""
    w, b = f"{ours}.qkv.weight", f"{ours}.qkv.bias"
    if fmt == "openai":
        return [Rule(f"{ours}.norm.weight", (f"{theirs}.norm.weight",)), Rule(f"{ours}.norm.bias", (f"{theirs}.norm.bias",)),
                Rule(w, (f"{theirs}.qkv.weight",), Reshape(3)), Rule(b, (f"{theirs}.qkv.bias",)),
                Rule(f"{ours}.proj.weight", (f"{theirs}.proj_out.weight",), Reshape(3)),
                Rule(f"{ours}.proj.bias", (f"{theirs}.proj_out.bias",))]
    names = ("q", "k", "v") if fmt == "ddim" else ("to_q", "to_k", "to_v")
    norm = "norm" if fmt == "ddim" else "group_norm"
    proj = "proj_out" if fmt == "ddim" else "to_out.0"
    fused = QKV(module.num_heads, module.layout, "conv1x1" if fmt == "ddim" else "linear")
    return [Rule(f"{ours}.norm.weight", (f"{theirs}.{norm}.weight",)), Rule(f"{ours}.norm.bias", (f"{theirs}.{norm}.bias",)),
            Rule(w, tuple(f"{theirs}.{n}.weight" for n in names), fused),
            Rule(b, tuple(f"{theirs}.{n}.bias" for n in names), fused),
            Rule(f"{ours}.proj.weight", (f"{theirs}.{proj}.weight",), COPY if fmt == "ddim" else Reshape(2)),
            Rule(f"{ours}.proj.bias", (f"{theirs}.{proj}.bias",))]


def unet_keymap(net: nn.Module, fmt: Format) -> KeyMap:
    """The key map of a UNet or EncoderClassifier (built on any device, e.g. meta) for one checkpoint format."""
    layout: UNetLayout = net.layout  # type: ignore[assignment]
    keys = list(net.state_dict())
    levels = len(layout.channel_mult)
    decoder = hasattr(net, "decoder")
    rules: list[Rule] = []
    top = TOP_NAMES[fmt]
    for ours in ("time_embed.0", "time_embed.2", "label_embed", "out.0"):
        rules += renamed(ours, top[ours], {"": ""}, keys) if ours in top else []
    if decoder or getattr(net, "pool", None) == "attention":
        head = {"": ""} if decoder else {"": "", "qkv": "qkv_proj", "proj": "c_proj"}
        special = None if decoder else {"positional": Rule("out.2.positional", ("out.2.positional_embedding",))}
        rules += renamed("out.2", top["out.2"], head, keys, special)
    else:
        rules += renamed("out.2.1", top["out.2.1"], {"": ""}, keys)
    for site in unet_sites(layout, decoder=decoder):
        theirs = _prefix(fmt, site, levels)
        module = net.get_submodule(site.ours)
        if site.kind == "attn":
            rules += _attention(fmt, site.ours, theirs, module)  # type: ignore[arg-type]
        elif site.kind == "res" or (site.kind in ("down", "up") and layout.resblock_updown):
            rules += renamed(site.ours, theirs, RES_NAMES[fmt], keys)
        elif site.kind == "conv_in":
            rules += renamed(site.ours, theirs, {"": ""}, keys)
        else:  # a resampling convolution: openai's Downsample calls it `op`
            conv = "op" if fmt == "openai" and site.kind == "down" else "conv"
            rules += renamed(site.ours, theirs, {"conv": conv}, keys)
    return KeyMap(tuple(rules))
