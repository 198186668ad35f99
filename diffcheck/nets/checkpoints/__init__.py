"""Published checkpoints loaded into diffcheck's reference networks, with their keys mapped and shapes checked.

>>> loaded = load("ddpm_cifar10", "ddpm-cifar10-32/")            # doctest: +SKIP  a diffusers folder
>>> loaded = load("adm_64", "64x64_diffusion.pt")                 # doctest: +SKIP  guided-diffusion
>>> loaded = load("ncsnpp", "checkpoint_8.pth")                   # doctest: +SKIP  sizes inferred
>>> x = samplers.ddim(loaded.model(), loaded.process(), x_T, grid)  # doctest: +SKIP

``name`` is a published checkpoint (:data:`PRESETS`, which knows the process it was trained on) or a named
configuration (``nets.names()``): the file must fit it, and a mismatch is one error naming every missing,
unexpected or misshapen key. Or ``name`` is a family (:data:`FAMILIES`): the sizes are read off the weights and
the rest taken from the family's defaults and ``overrides``. ``None`` detects the family from the file. Nothing
pickled is executed (see :mod:`.read`); :func:`convert` writes a safetensors copy that loads without key maps.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from ..base import replace
from .diffusers_config import current_keys, from_diffusers
from .infer import INFER, infer_openai
from .keymap import CheckpointError, KeyMap, Rule
from .loaded import FAMILIES, Loaded, config_from_json, family_of, materialised, save
from .ncsnpp_maps import SCORE_SDE_BUFFERS, diffusers_ncsnpp_keymap, score_sde_keymap
from .presets import PRESETS, Preset
from .read import Raw, read
from .refinenet_maps import refinenet_keymap
from .unet_maps import unet_keymap

__all__ = ["load", "convert", "save", "detect", "keymap", "check_named", "Loaded", "CheckpointError", "PRESETS",
           "FAMILIES", "LAYOUTS"]

LAYOUTS: dict[str, tuple[str, ...]] = {
    "ddpm": ("diffusers", "ddim"), "adm": ("openai", "diffusers"), "adm_classifier": ("openai",),
    "ncsnpp": ("score_sde", "diffusers"), "ncsn": ("ncsn",), "ncsnv2": ("ncsnv2",)}
"""The layouts each family is read from (besides a diffcheck conversion)."""

_NOT_ARCHITECTURE = {"dropout", "fourier_scale", "init_scale", "use_new_attention_order", "num_heads",
                     "num_head_channels", "num_heads_upsample"}
"""Fields a diffusers config cannot tell (heads are compared as built)."""


def detect(raw: Raw) -> tuple[str, str]:
    """(layout, family) of a checkpoint, from its config.json or its keys."""
    if raw.config_json is not None:
        if raw.config_json.get("format") == "diffcheck":
            return "diffcheck", str(raw.config_json.get("family"))
        return "diffusers", from_diffusers(raw.config_json)[0]
    keys = raw.tensors
    if "temb.dense.0.weight" in keys:
        return "ddim", "ddpm"
    if "input_blocks.0.0.weight" in keys:
        return "openai", "adm" if any(k.startswith("output_blocks.") for k in keys) else "adm_classifier"
    if any(k.startswith("all_modules.") for k in keys):
        return "score_sde", "ncsnpp"
    if "res1.0.normalize1.embed.weight" in keys:
        return "ncsn", "ncsn"
    if "res1.0.normalize1.alpha" in keys:
        return "ncsnv2", "ncsnv2"
    if (raw.path.parent / "config.json").is_file():
        raise CheckpointError(f"{raw.path} sits beside a config.json: pass the folder {raw.path.parent}, which says "
                              "what network the weights belong to")
    if any(k.startswith(("down_blocks.", "conv_in.")) for k in keys):
        raise CheckpointError(f"{raw.path} looks like diffusers weights without their config.json: pass the folder")
    raise CheckpointError(f"{raw.path}: unrecognised checkpoint layout (first keys: {', '.join(list(keys)[:5])}); "
                          "supported: diffusers UNet2DModel, ddim/pytorch_diffusion DDPM, improved/guided-diffusion, "
                          "score_sde NCSN++/DDPM++, NCSN, NCSNv2, diffcheck conversions")


def keymap(layout: str, net: torch.nn.Module) -> KeyMap:
    """The key map of ``net`` (any device, e.g. meta) for one checkpoint layout."""
    if layout == "diffcheck":
        return KeyMap(tuple(Rule(k, (k,)) for k in net.state_dict()))
    family = family_of(net.config)
    if layout not in LAYOUTS[family]:
        raise CheckpointError(f"a {family} network is not read from the {layout} layout (only {', '.join(LAYOUTS[family])})")
    if family == "ncsnpp":
        return score_sde_keymap(net) if layout == "score_sde" else diffusers_ncsnpp_keymap(net)
    if family in ("ncsn", "ncsnv2"):
        return refinenet_keymap(net)
    return unet_keymap(net, layout)  # type: ignore[arg-type]


def _resolve(name: str | None) -> tuple[str | None, Any, Preset | None]:
    """(family, named configuration or None, preset or None)."""
    from .. import config as named_config, names

    if name is None or name in FAMILIES:
        return name, None, None
    if name in PRESETS:
        preset = PRESETS[name]
        return family_of(preset.config), preset.config, preset
    if name in names("image"):
        cfg = named_config(name)
        return family_of(cfg), cfg, None
    raise CheckpointError(f"unknown checkpoint name {name!r}: use a published checkpoint ({', '.join(sorted(PRESETS))}), "
                          f"a named configuration, or a family ({', '.join(FAMILIES)})")


def _inferred(layout: str, tensors: dict, start: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    """Configuration fields read off the weights, attention levels turned into resolutions."""
    size = overrides.get("image_size", start.image_size)
    if layout == "openai":
        found = infer_openai(tensors, size, overrides.get("num_res_blocks"))
    else:
        found = INFER[layout](tensors)
    levels = found.pop("attention_levels", None)
    if levels is not None:
        field = "attention_resolutions" if hasattr(start, "attention_resolutions") else "attn_resolutions"
        found[field] = tuple(size // 2**lv for lv in levels)
    return {k: v for k, v in found.items() if k in {f.name for f in dataclasses.fields(start)}}


def _family_config(family: str, found: dict[str, Any], overrides: dict[str, Any]) -> Any:
    """A family's configuration from inferred sizes, the family's defaults for what the weights cannot tell, and overrides.

    NCSN++ with a positional embedding is DDPM++ as score_sde trains it on the VP SDE (ε output, 999·t input, data
    in [-1, 1]); FIR resampling is assumed wherever an input pyramid is present (as in every published NCSN++) unless
    its weights show otherwise. ADM's attention heads cannot be read off the weights and must be given.
    """
    cls = FAMILIES[family]
    defaults: dict[str, Any] = {}
    if family == "ncsnpp":
        if found.get("embedding_type") == "positional":
            defaults.update(scale_by_sigma=False, noise_input="time_999", prediction="eps", centered=True)
        defaults["fir"] = found.pop("fir", found.get("progressive_input", "none") != "none")
    if family == "adm" and not {"num_heads", "num_head_channels"} & set(overrides):
        raise CheckpointError("the weights of an iDDPM/ADM U-Net do not say how attention splits into heads: pass "
                              "num_heads= or num_head_channels= (and use_new_attention_order=True for ADM 64x64), or "
                              f"load it by its published name ({', '.join(n for n in sorted(PRESETS) if n.startswith(('iddpm', 'adm_')) and 'classifier' not in n)})")
    return replace(cls(), **{**defaults, **found, **overrides})


def _heads(cfg: Any) -> list[int]:
    from ..common import SelfAttention2d

    with torch.device("meta"):
        net = cfg.build()
    return [m.num_heads for m in net.modules() if isinstance(m, SelfAttention2d)]


def check_named(found: Any, wanted: Any, label: str, path: Path) -> None:
    """The configuration a file states must be the named one, up to what cannot be told from it."""
    diffs = [f"{f.name}: file {getattr(found, f.name)!r}, {label!r} {getattr(wanted, f.name)!r}"
             for f in dataclasses.fields(wanted)
             if f.name not in _NOT_ARCHITECTURE and getattr(found, f.name) != getattr(wanted, f.name)]
    if _heads(found) != _heads(wanted):
        diffs.append(f"attention heads: file {_heads(found)}, {label!r} {_heads(wanted)}")
    if diffs:
        raise CheckpointError(f"{path} is not {label!r}: " + "; ".join(diffs))


def _weights(raw: Raw, layout: str, ema: bool) -> tuple[dict, str]:
    """The tensors to load: the EMA set where the file stores one and ``ema`` asks for it."""
    if raw.ema is None:
        return raw.tensors, "single"
    if not ema:
        return raw.tensors, "raw"
    if isinstance(raw.ema, dict):
        bad = [k for k, v in raw.ema.items() if k not in raw.tensors or raw.tensors[k].shape != v.shape]
        if bad:
            raise CheckpointError(f"{raw.path}: EMA entries do not match the model's: {', '.join(bad[:8])}")
        return {**raw.tensors, **raw.ema}, "ema"
    # score_sde keeps the EMA of the trainable parameters as a list, in their order (not the buffers or Fourier W)
    trainable = [k for k in raw.tensors if k not in SCORE_SDE_BUFFERS and not (k == "all_modules.0.W" and raw.tensors[k].dim() == 1)]
    if len(trainable) != len(raw.ema) or any(raw.tensors[k].shape != v.shape for k, v in zip(trainable, raw.ema)):
        raise CheckpointError(f"{raw.path}: the EMA list holds {len(raw.ema)} tensors but the model has {len(trainable)} "
                              "trainable parameters of other shapes; load with ema=False for the raw weights")
    return {**raw.tensors, **dict(zip(trainable, raw.ema))}, "ema"


def _hint(layout: str, raw: Raw, cfg: Any) -> str:
    """What the weights suggest where a named configuration does not fit them (best effort)."""
    if layout in ("diffusers", "diffcheck"):
        return ""
    try:
        seen = _inferred(layout, raw.tensors, cfg, {})
    except (CheckpointError, KeyError, IndexError, ZeroDivisionError, ValueError):
        return ""
    diffs = [f"{k}={v!r}" for k, v in seen.items() if getattr(cfg, k) != v]
    return f"; its weights suggest {', '.join(diffs)}" if diffs else ""


def _configure(layout: str, family: str, raw: Raw, base: Any, overrides: dict[str, Any]) -> Any:
    """The configuration: stated by the folder (diffusers, diffcheck), named, or read off the weights (a family)."""
    if layout == "diffcheck":
        return replace(config_from_json(family, raw.config_json["config"]), **overrides)  # type: ignore[index]
    if layout == "diffusers":
        return replace(from_diffusers(raw.config_json)[1], **overrides)  # type: ignore[arg-type]
    if base is not None:
        return replace(base, **overrides)
    return _family_config(family, _inferred(layout, raw.tensors, FAMILIES[family](), overrides), overrides)


def load(name: str | None, path: str | Path, *, ema: bool = True, dtype: torch.dtype = torch.float32,
         **overrides: Any) -> Loaded:
    """Read a local checkpoint into its diffcheck network (see the module docstring); ``overrides`` replace config fields."""
    family, base, preset = _resolve(name)
    raw = read(path)
    layout, found_family = detect(raw)
    if family is not None and found_family != family:
        raise CheckpointError(f"{raw.path} holds a {found_family} network ({layout} layout), not {family}"
                              + (f" ({name!r})" if name != family else ""))
    family = found_family
    cfg = _configure(layout, family, raw, base, overrides)
    label = name or family
    if base is not None and layout in ("diffusers", "diffcheck"):
        check_named(cfg, replace(base, **overrides), label, raw.path)
    tensors, which = _weights(raw, layout, ema)
    if layout == "diffusers":
        tensors = current_keys(tensors)
    with torch.device("meta"):
        net = cfg.build().to(dtype)
    what = f"{label} ({type(cfg).__name__})"
    try:
        state = keymap(layout, net).ours(tensors, net.state_dict(), what)
    except CheckpointError as err:
        raise CheckpointError(f"{raw.path}: {err}{_hint(layout, raw, cfg) if base is not None else ''}") from None
    net.load_state_dict(state, assign=True)
    if not materialised(net):
        raise CheckpointError(f"{raw.path}: some tensors of {what} were not set by the checkpoint")
    net.eval()
    sigmas = raw.tensors.get("sigmas")
    config_json = raw.config_json or {}
    process = preset.process if preset else config_json.get("process") if layout == "diffcheck" else None
    wrap = dict(preset.wrap) if preset else dict(config_json.get("wrap") or {}) if layout == "diffcheck" else {}
    if sigmas is None and layout == "diffcheck" and config_json.get("sigmas") is not None:
        sigmas = torch.tensor(config_json["sigmas"], dtype=torch.float64)
    return Loaded(net, cfg, label, family, layout, raw.path, which, None if sigmas is None else sigmas.double(),
                  process, wrap)


def convert(name: str | None, path: str | Path, out: str | Path, *, ema: bool = True, **overrides: Any) -> Loaded:
    """Load a checkpoint and write it as a diffcheck conversion (``model.safetensors`` + ``config.json``) in ``out``."""
    loaded = load(name, path, ema=ema, **overrides)
    save(loaded, out)
    return loaded
