"""Checkpoints that load without executing code: weights in safetensors, the rest as tensors and JSON.

A checkpoint is a directory ``step_<step, 8 digits>`` holding ``model.safetensors`` and ``ema.safetensors`` (weights and
EMA weights), ``state.pt`` (optimizer and grad-scaler state and generator states: tensors, numbers and
containers only, read with ``torch.load(weights_only=True)``) and ``meta.json`` (step, data order, config).
It is written under a temporary name and renamed into place; ``latest.json`` then points at it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..io import write_json

__all__ = ["Checkpoint", "save_checkpoint", "latest_checkpoint", "load_checkpoint", "FORMAT"]

FORMAT = 1
_LATEST = "latest.json"


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint holds, as loaded."""

    path: Path
    step: int
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    state: dict[str, Any]
    meta: dict[str, Any]


def _tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU copies that own their memory (safetensors refuses shared or strided storage)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}


def save_checkpoint(root: str | os.PathLike, *, step: int, model: dict[str, torch.Tensor], ema: dict[str, torch.Tensor],
                    state: dict[str, Any], meta: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoint ``step`` under ``root`` atomically, point ``latest.json`` at it and keep the last ``keep``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=root))
    try:
        save_file(_tensors(model), str(tmp / "model.safetensors"))
        save_file(_tensors(ema), str(tmp / "ema.safetensors"))
        torch.save(state, tmp / "state.pt")
        (tmp / "meta.json").write_text(json.dumps({"format": FORMAT, "step": step, **meta}, indent=2) + "\n")
        final = root / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    write_json(root / _LATEST, {"step": step, "dir": name})
    kept = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in kept[:-keep]:
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The directory ``latest.json`` points at, or None when there is none."""
    pointer = Path(root) / _LATEST
    if not pointer.exists():
        return None
    try:
        target = Path(root) / json.loads(pointer.read_text())["dir"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{pointer} is not a checkpoint pointer: {err}") from None
    if not target.is_dir():
        raise FileNotFoundError(f"{pointer} points at {target}, which does not exist")
    return target


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint directory; nothing in it can run code (safetensors, weights-only torch.load, JSON)."""
    path = Path(path)
    missing = [f for f in ("model.safetensors", "ema.safetensors", "state.pt", "meta.json") if not (path / f).exists()]
    if missing:
        raise FileNotFoundError(f"checkpoint {path} lacks {', '.join(missing)}")
    meta = json.loads((path / "meta.json").read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path} has format {meta.get('format')!r}, this version reads {FORMAT}")
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    return Checkpoint(path, int(meta["step"]), load_file(str(path / "model.safetensors")),
                      load_file(str(path / "ema.safetensors")), state, meta)
