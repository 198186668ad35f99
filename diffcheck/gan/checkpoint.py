"""Checkpoints as one safetensors file: tensors (weights, optimiser moments, RNG state) plus JSON metadata.

Written atomically (a temporary file moved into place); loading reads tensors and JSON only, so no
pickled code is ever executed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..io import atomic_path

__all__ = ["save_checkpoint", "load_checkpoint", "flatten_optimizer", "restore_optimizer"]

_META_KEY = "diffcheck_meta"


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``tensors`` and JSON-serialisable ``meta`` to ``path`` atomically."""
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise TypeError("tensors must be a dict of tensors")
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    text = json.dumps(meta)
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata={_META_KEY: text})
    return Path(path)


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, meta) from a file written by ``save_checkpoint``; a truncated or garbage file raises ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} is not a checkpoint file")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get(_META_KEY, "{}"))
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable checkpoint (truncated or corrupt safetensors file?): {err}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: its metadata is a {type(meta).__name__}, not an object")
    return tensors, meta


def flatten_optimizer(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimiser's state as flat tensors ``prefix/state/<param>/<key>`` and its param groups as JSON."""
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            tensors[f"{prefix}/state/{idx}/{key}"] = val if isinstance(val, torch.Tensor) else torch.tensor(val)
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups}


def restore_optimizer(opt: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Load what ``flatten_optimizer`` wrote back into ``opt``."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    head = f"{prefix}/state/"
    for name, val in tensors.items():
        if name.startswith(head):
            idx, key = name[len(head):].split("/", 1)
            state.setdefault(int(idx), {})[key] = val
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})
