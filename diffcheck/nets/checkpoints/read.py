"""Reading checkpoint files without running any code stored in them.

safetensors files are read as they are; ``.pt``, ``.pth``, ``.bin`` and ``.ckpt`` pickles go through
``torch.load(weights_only=True)``, which rebuilds tensors, numbers, strings and containers and refuses every
other object a pickle names. The containers the official codes save are recognised: a plain state dict,
score_sde's ``{"model", "ema", "optimizer", "step"}`` (EMA as a list of the trainable parameters), the lists of
ermongroup/ncsn ``[model, optimizer]`` and of ermongroup/ncsnv2 and ddim ``[model, optimizer, epoch, step, ema]``,
``torch.nn.DataParallel``'s ``module.`` prefix, a diffusers ``UNet2DModel`` folder and a diffcheck conversion.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import struct
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from .keymap import CheckpointError

__all__ = ["Raw", "read", "read_file", "PICKLED", "WEIGHT_FILES"]

PICKLED = (".pt", ".pth", ".bin", ".ckpt")
"""Suffixes of pickled PyTorch files, read with ``weights_only=True``."""

WEIGHT_FILES = ("model.safetensors", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin",
                "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.fp16.bin")
"""Weight files looked for in a folder, in order of preference (safetensors first)."""


@dataclasses.dataclass
class Raw:
    """What a checkpoint holds: the model's tensors, EMA weights stored beside them, and a folder's config.json."""

    path: Path
    tensors: dict[str, Tensor]
    ema: dict[str, Tensor] | list[Tensor] | None = None
    layout: str = "state dict"
    config_json: dict[str, Any] | None = None


def read_file(path: str | Path) -> Any:
    """The object stored in one file: safetensors directly, pickles with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as err:  # safetensors raises its own error type for truncated or malformed files
            raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt?): {err}") from None
    if suffix not in PICKLED:
        raise CheckpointError(f"{path}: unknown checkpoint type {suffix!r}; expected a folder, .safetensors, "
                              f"or a PyTorch pickle ({', '.join(PICKLED)})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = next((line.strip() for line in str(err).splitlines() if "GLOBAL" in line or "global" in line),
                      str(err).splitlines()[0] if str(err) else type(err).__name__)
        raise CheckpointError(f"{path} was refused: it asks to run code while loading ({reason}); only tensors, "
                              "numbers, strings and containers are read from a pickle. Convert it where you trust it, "
                              "or obtain the original file") from None
    except (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError, struct.error) as err:
        # torch's weights-only unpickler raises IndexError, KeyError or struct.error on some truncated pickles
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path} cannot be read: truncated or corrupt ({first})") from None


def _is_state(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def _strip(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drop ``torch.nn.DataParallel``'s ``module.`` prefix when every key has it."""
    if all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _unwrap(obj: Any, path: Path) -> Raw:
    if _is_state(obj):
        return Raw(path, _strip(obj))
    if isinstance(obj, Mapping) and _is_state(obj.get("model")):
        ema = obj.get("ema")
        shadow = ema.get("shadow_params") if isinstance(ema, Mapping) else None
        if not (isinstance(shadow, (list, tuple)) and all(isinstance(t, Tensor) for t in shadow)):
            shadow = None
        return Raw(path, _strip(obj["model"]), list(shadow) if shadow else None,
                   "score_sde checkpoint {model, ema, optimizer, step}")
    if isinstance(obj, (list, tuple)) and obj and _is_state(obj[0]):
        ema = _strip(obj[-1]) if len(obj) >= 5 and _is_state(obj[-1]) else None
        return Raw(path, _strip(obj[0]), ema, f"training checkpoint list of {len(obj)} entries [model, optimizer, ...]")
    kind = type(obj).__name__
    keys = f" with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, Mapping) else ""
    raise CheckpointError(f"{path} holds a {kind}{keys}, not a network's state dict; expected a state dict, a "
                          "score_sde checkpoint {model, ema, ...} or an ncsn/ncsnv2/ddim list [model, optimizer, ...]")


def _folder(path: Path) -> Raw:
    if not (path / "config.json").is_file() and (path / "unet" / "config.json").is_file():
        path = path / "unet"  # a diffusers pipeline folder: the network lives in unet/
    config_file = path / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"folder {path} has no config.json: expected a diffusers UNet2DModel folder "
                              "(config.json + diffusion_pytorch_model.safetensors or .bin) or a diffcheck conversion")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{config_file} is not valid JSON: {err}") from None
    for name in WEIGHT_FILES:
        if (path / name).is_file():
            raw = _unwrap(read_file(path / name), path / name)
            raw.config_json = config
            return raw
    raise CheckpointError(f"folder {path} has a config.json but no weights: looked for {', '.join(WEIGHT_FILES)}")


def read(path: str | Path) -> Raw:
    """Read a checkpoint file or folder into a :class:`Raw` without running pickled code."""
    path = Path(path).expanduser()
    if path.is_dir():
        return _folder(path)
    return _unwrap(read_file(path), path)
