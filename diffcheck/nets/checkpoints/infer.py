"""The sizes of a network read off its checkpoint's tensors, for each official layout.

What the weights determine is inferred (widths, multipliers, block counts, which levels attend, label and noise
level tables, a learned variance, the input and output pyramids of NCSN++); what they cannot (the image size,
attention heads and their channel order, dropout, FIR filtering where no weight shows it, the data range) comes
from the named configuration or the caller. Attention is returned as level indices under ``"attention_levels"``;
the caller turns them into resolutions with the final image size.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from torch import Tensor

from .keymap import CheckpointError

__all__ = ["infer_ddim", "infer_openai", "infer_score_sde", "infer_ncsn", "infer_ncsnv2", "INFER"]


def _get(t: Mapping[str, Tensor], key: str, what: str) -> Tensor:
    if key not in t:
        raise CheckpointError(f"not a {what} checkpoint: key {key!r} is missing")
    return t[key]


def _count(t: Mapping[str, Tensor], pattern: str) -> int:
    """How many consecutive indices n from 0 have a key starting with ``pattern.format(n)``."""
    n = 0
    while any(k.startswith(pattern.format(n)) for k in t):
        n += 1
    return n


def _mult(c: int, base: int) -> int | float:
    return c // base if c % base == 0 else c / base


def infer_ddim(t: Mapping[str, Tensor]) -> dict[str, Any]:
    """ddim's DDPM port (``temb.dense``, ``down.{l}.block.{i}``): ch, ch_mult, blocks, attention levels, channels."""
    conv_in = _get(t, "conv_in.weight", "DDPM (ddim layout)")
    ch = conv_in.shape[0]
    levels = _count(t, "down.{}.block.0.")
    return dict(ch=ch, in_channels=conv_in.shape[1], out_channels=_get(t, "conv_out.weight", "DDPM").shape[0],
                ch_mult=tuple(_mult(t[f"down.{lv}.block.0.conv1.weight"].shape[0], ch) for lv in range(levels)),
                num_res_blocks=_count(t, "down.0.block.{}."),
                resamp_with_conv=levels == 1 or "down.0.downsample.conv.weight" in t,
                attention_levels=[lv for lv in range(levels) if f"down.{lv}.attn.0.q.weight" in t])


def _is_res(t: Mapping[str, Tensor], prefix: str) -> bool:
    return f"{prefix}.in_layers.0.weight" in t


def infer_openai(t: Mapping[str, Tensor], image_size: int, num_res_blocks: int | None = None) -> dict[str, Any]:
    """improved/guided-diffusion ``UNetModel`` or ``EncoderUNetModel`` (``input_blocks``, ``middle_block``...)."""
    mc = _get(t, "time_embed.0.weight", "improved/guided-diffusion").shape[1]
    conv_in = _get(t, "input_blocks.0.0.weight", "improved/guided-diffusion")
    n_in, n_out = _count(t, "input_blocks.{}."), _count(t, "output_blocks.{}.")
    updown = None
    if n_out:  # the first decoder block that ends in an upsampler is the last block of the coarsest level
        ups = [k for k in range(n_out) if any(
            _is_res(t, f"output_blocks.{k}.{j}") or f"output_blocks.{k}.{j}.conv.weight" in t for j in (1, 2))]
        blocks = ups[0] if ups else n_out - 1
        updown = bool(ups) and any(_is_res(t, f"output_blocks.{ups[0]}.{j}") for j in (1, 2))
    else:
        ops = [i for i in range(n_in) if f"input_blocks.{i}.0.op.weight" in t]
        if ops:
            blocks, updown = ops[0] - 1, False
        elif "out.2.positional_embedding" in t:
            spatial = round((t["out.2.positional_embedding"].shape[1] - 1) ** 0.5)
            levels = (image_size // spatial).bit_length()
            blocks, updown = n_in // levels - 1, True
        elif num_res_blocks is not None:
            blocks, updown = num_res_blocks, True
        else:
            raise CheckpointError("cannot tell the classifier's blocks per level from its weights; give num_res_blocks")
    levels = n_in // (blocks + 1)
    first = [1 + lv * (blocks + 1) for lv in range(levels)]
    widths = [_get(t, f"input_blocks.{i}.0.out_layers.3.weight", "improved/guided-diffusion").shape[0] for i in first]
    out: dict[str, Any] = dict(
        model_channels=mc, in_channels=conv_in.shape[1], num_res_blocks=blocks,
        channel_mult=tuple(_mult(w, mc) for w in widths),
        use_scale_shift_norm=t[f"input_blocks.{first[0]}.0.emb_layers.1.weight"].shape[0] == 2 * widths[0],
        resblock_updown=bool(updown),
        attention_levels=[lv for lv, i in enumerate(first) if f"input_blocks.{i}.1.qkv.weight" in t])
    if n_out:
        out["learn_sigma"] = _get(t, "out.2.weight", "improved/guided-diffusion").shape[0] == 2 * conv_in.shape[1]
        out["num_classes"] = t["label_emb.weight"].shape[0] if "label_emb.weight" in t else None
    else:
        pooled = "out.2.positional_embedding" in t
        out["pool"] = "attention" if pooled else "adaptive"
        out["num_classes"] = (t["out.2.c_proj.weight"] if pooled else _get(t, "out.3.weight", "classifier")).shape[0]
    return out


def _module_keys(t: Mapping[str, Tensor]) -> dict[int, dict[str, Tensor]]:
    mods: dict[int, dict[str, Tensor]] = {}
    for k, v in t.items():
        m = re.match(r"all_modules\.(\d+)\.(.+)", k)
        if m:
            mods.setdefault(int(m.group(1)), {})[m.group(2)] = v
    return mods


def infer_score_sde(t: Mapping[str, Tensor]) -> dict[str, Any]:
    """score_sde's NCSNpp: parse ``all_modules`` in the constructor's order (see ``ncsnpp_maps``)."""
    mods = _module_keys(t)
    if not mods:
        raise CheckpointError("not a score_sde NCSN++ checkpoint: no all_modules.* keys")
    fourier = "W" in mods.get(0, {}) and mods[0]["W"].dim() == 1
    n = 1 if fourier else 0
    conv_in = _get(t, f"all_modules.{n + 2}.weight", "score_sde NCSN++")
    nf, n = conv_in.shape[0], n + 3

    def resample(m: dict[str, Tensor]) -> bool:  # a BigGAN block with a 1x1 skip at equal width resamples
        return "Conv_2.weight" in m and m["Conv_2.weight"].shape[0] == m["Conv_2.weight"].shape[1]

    widths, attention, blocks, pyramid_in, fir = [], [], None, "none", None
    while True:
        count, width, attends = 0, None, False
        while n in mods and "GroupNorm_1.weight" in mods[n] and not resample(mods[n]):
            if blocks is not None and count == blocks:
                break
            width = mods[n]["Conv_1.weight"].shape[0]
            count, n = count + 1, n + 1
            if "NIN_0.W" in mods.get(n, {}):
                attends, n = True, n + 1
        if blocks is None:
            blocks = count
        if count != blocks or width is None:
            raise CheckpointError("score_sde checkpoint: the residual blocks do not repeat per level as NCSN++ builds them")
        widths.append(width)
        attention.append(attends)
        if not (n in mods and resample(mods[n])):
            break  # the middle block follows the last level
        n += 1
        extra = mods.get(n, {})
        if "Conv2d_0.weight" in extra or ("Conv_0.weight" in extra and extra["Conv_0.weight"].shape[-1] == 3 and len(extra) == 2):
            pyramid_in, fir, n = "residual", "Conv2d_0.weight" in extra, n + 1
        elif "Conv_0.weight" in extra and len(extra) == 2:
            pyramid_in, n = "input_skip", n + 1
    # the output pyramid puts a bare GroupNorm (and a conv to the image) at every decoder level, not only at the end
    bare = [i for i, m in mods.items() if set(m) == {"weight", "bias"} and m["weight"].dim() == 1]
    output_skip = any(i < max(mods) - 1 for i in bare)
    out: dict[str, Any] = dict(nf=nf, channels=conv_in.shape[1], ch_mult=tuple(_mult(w, nf) for w in widths),
                               num_res_blocks=blocks, attention_levels=[lv for lv, a in enumerate(attention) if a],
                               embedding_type="fourier" if fourier else "positional", progressive_input=pyramid_in,
                               progressive="output_skip" if output_skip else "none")
    if fir is not None:
        out["fir"] = fir
    return out


def infer_ncsn(t: Mapping[str, Tensor]) -> dict[str, Any]:
    """ermongroup/ncsn CondRefineNetDilated: ngf, channels and the number of noise levels."""
    conv = _get(t, "begin_conv.weight", "NCSN")
    return dict(ngf=conv.shape[0], channels=conv.shape[1],
                num_classes=_get(t, "normalizer.embed.weight", "NCSN (conditional InstanceNorm++)").shape[0])


def infer_ncsnv2(t: Mapping[str, Tensor]) -> dict[str, Any]:
    """ermongroup/ncsnv2 NCSNv2 or NCSNv2Deeper: ngf, channels and depth."""
    conv = _get(t, "begin_conv.weight", "NCSNv2")
    if any(k.startswith(("res31.", "refine31.")) for k in t):
        raise CheckpointError("NCSNv2Deepest (the FFHQ 256 model, with res31/refine31) has no diffcheck counterpart")
    return dict(ngf=conv.shape[0], channels=conv.shape[1], depth="deeper" if "res5.0.conv1.weight" in t else "standard")


INFER = {"ddim": infer_ddim, "score_sde": infer_score_sde, "ncsn": infer_ncsn, "ncsnv2": infer_ncsnv2}
"""Inference by layout (openai takes the image size as well: see :func:`infer_openai`)."""
