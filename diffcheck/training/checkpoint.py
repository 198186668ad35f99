"""Checkpoints that load without executing code: weights in safetensors, the rest as tensors and JSON.

A checkpoint is a directory ``step_<step, 8 digits>`` holding ``model.safetensors`` and ``ema.safetensors`` (weights and
EMA weights), ``state.pt`` (optimizer and grad-scaler state and generator states: tensors, numbers and
containers only, read with ``torch.load(weights_only=True)``) and ``meta.json`` (step, data order, config).

Crash safety. The files are written and flushed to disk in a hidden temporary folder that is renamed into place
in one step, so a ``step_*`` folder is always complete; ``latest.json`` (written atomically) then points at it.
Old checkpoints are renamed to a hidden name before they are deleted. A writer killed at any moment leaves at
most hidden leftovers, which the next save removes; :func:`latest_checkpoint` falls back to the newest complete
folder when ``latest.json`` is missing, unreadable or points at nothing. One process writes a checkpoint root.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..io import write_json

__all__ = ["Checkpoint", "CheckpointError", "save_checkpoint", "latest_checkpoint", "load_checkpoint", "load_safetensors",
           "clean_leftovers", "FORMAT"]

FORMAT = 1
_LATEST = "latest.json"
_FILES = ("model.safetensors", "ema.safetensors", "state.pt", "meta.json")
_STEP_DIR = re.compile(r"step_\d{8}")
_LEFTOVER = re.compile(r"\.(step_\d{8}\..*\.tmp|step_\d{8}\.deleting.*|latest\.json\..*\.tmp)")


class CheckpointError(ValueError):
    """A checkpoint file is truncated, garbage, or holds something other than data."""


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


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    """Delete a checkpoint folder: renamed to a hidden name first, so no half-deleted ``step_*`` folder is ever seen."""
    aside = path.with_name(f".{path.name}.deleting")
    if aside.exists():
        shutil.rmtree(aside, ignore_errors=True)
    os.replace(path, aside)
    shutil.rmtree(aside, ignore_errors=True)


def clean_leftovers(root: str | os.PathLike) -> list[Path]:
    """Remove what interrupted saves left under ``root`` (hidden temporary folders and files); return them."""
    root = Path(root)
    removed = []
    for p in root.iterdir() if root.is_dir() else []:
        if _LEFTOVER.fullmatch(p.name):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def save_checkpoint(root: str | os.PathLike, *, step: int, model: dict[str, torch.Tensor], ema: dict[str, torch.Tensor],
                    state: dict[str, Any], meta: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoint ``step`` under ``root`` atomically, point ``latest.json`` at it and keep the last ``keep``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    clean_leftovers(root)
    name = f"step_{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=root))
    try:
        save_file(_tensors(model), str(tmp / "model.safetensors"))
        save_file(_tensors(ema), str(tmp / "ema.safetensors"))
        torch.save(state, tmp / "state.pt")
        (tmp / "meta.json").write_text(json.dumps({"format": FORMAT, "step": step, **meta}, indent=2) + "\n")
        for f in _FILES:
            _fsync(tmp / f)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes the folder private; give it the usual permissions
        final = root / name
        if final.exists():  # written before by a run that was cut off before pointing latest.json at it
            _remove(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _fsync(root)
    write_json(root / _LATEST, {"step": step, "dir": name})
    kept = _step_dirs(root)
    for old in kept[:-keep]:
        if old.name != name:
            _remove(old)
    return final


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _step_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and _STEP_DIR.fullmatch(p.name)) if root.is_dir() else []


def _complete(path: Path) -> bool:
    if not all((path / f).is_file() for f in _FILES):
        return False
    try:
        return json.loads((path / "meta.json").read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The checkpoint to resume from: the folder ``latest.json`` points at, else the newest complete one, else None."""
    root = Path(root)
    pointer = root / _LATEST
    try:
        target = root / json.loads(pointer.read_text())["dir"]
        if _STEP_DIR.fullmatch(target.name) and _complete(target):
            return target
    except (OSError, ValueError, KeyError, TypeError):
        pass  # missing, unreadable or pointing at nothing: fall back on the folders themselves
    complete = [p for p in _step_dirs(root) if _complete(p)]
    return complete[-1] if complete else None


def load_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; a truncated or garbage file raises CheckpointError naming it."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt?): {err}") from None


def _load_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        i = text.find("WeightsUnpickler error:")
        reason = text[i + len("WeightsUnpickler error:"):].strip().split("\n")[0].split(". ")[0] if i >= 0 else "not a pickle of data"
        raise CheckpointError(f"{path} was refused: a checkpoint state holds only tensors, numbers and containers, "
                              f"and this file does not ({reason})") from None
    except (EOFError, RuntimeError, OSError, ValueError, IndexError, KeyError, struct.error) as err:
        # torch's weights-only unpickler raises IndexError, KeyError or struct.error on some truncated pickles
        raise CheckpointError(f"{path} is not a readable checkpoint state (truncated or corrupt?): "
                              f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'empty file'}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a checkpoint state dict")
    return state


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint directory; nothing in it can run code (safetensors, weights-only torch.load, JSON)."""
    path = Path(path)
    missing = [f for f in _FILES if not (path / f).exists()]
    if missing:
        raise FileNotFoundError(f"checkpoint {path} lacks {', '.join(missing)}")
    try:
        meta = json.loads((path / "meta.json").read_text())
        if not isinstance(meta, dict):
            raise ValueError(f"a {type(meta).__name__}, not an object")
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path / 'meta.json'} is not checkpoint metadata: {err}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {meta.get('format')!r}, this version reads {FORMAT}")
    if not isinstance(meta.get("step"), int):
        raise CheckpointError(f"{path / 'meta.json'} has no step")
    state = _load_state(path / "state.pt")
    return Checkpoint(path, meta["step"], load_safetensors(path / "model.safetensors"),
                      load_safetensors(path / "ema.safetensors"), state, meta)
