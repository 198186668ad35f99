"""CIFAR-10 from the python batches on disk (no download), read by an unpickler that can only build data.

The python version of CIFAR-10 (``cifar-10-batches-py``) stores each batch as a pickled dict: b'data' a uint8
array (N, 3072) (1024 red, then green, then blue values, each a 32×32 image row by row) and b'labels' a list of
N ints in 0..9. A pickle can name any callable to run while loading, so these files are read with an unpickler
that resolves only numpy's array and dtype reconstruction (and ``_codecs.encode``, with which Python 3 writes bytes
under protocol 2) and refuses every other global: a file that names anything else fails instead of running it.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .images import ImageData, from_uint8

__all__ = ["load_cifar10", "read_cifar_batch", "restricted_load", "RefusedGlobal", "CIFAR10_CLASSES"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)

_ALLOWED = {
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class RefusedGlobal(pickle.UnpicklingError):
    """A dataset pickle named a callable outside the allowed few."""


class _DataOnlyUnpickler(pickle.Unpickler):
    """Builds containers, strings, numbers and numpy arrays; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("numpy.core"):  # numpy 1.x names, written by older pickles
            module = "numpy._core" + module[len("numpy.core"):]
        if (module, name) not in _ALLOWED:
            raise RefusedGlobal(f"refusing to load global {module}.{name}: only numpy arrays and plain data "
                                         "are allowed in a dataset file")
        return super().find_class(module, name)


def restricted_load(data: bytes) -> Any:
    """Unpickle ``data`` allowing only plain containers and numpy arrays (Python 2 strings read as bytes)."""
    return _DataOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()


def _field(batch: dict, key: str) -> Any:
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise ValueError(f"the batch has no {key!r} entry (keys: {sorted(map(repr, batch))})")


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One python-format batch: pixels uint8 (N, 3, 32, 32) and labels int64 (N,)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no CIFAR-10 batch file at {path}")
    try:
        batch = restricted_load(path.read_bytes())
    except RefusedGlobal as err:
        raise ValueError(f"{path}: {err}") from None
    except Exception as err:  # truncated or not a pickle at all
        raise ValueError(f"{path} is not a CIFAR-10 python batch: {type(err).__name__}: {err}") from None
    if not isinstance(batch, dict):
        raise ValueError(f"{path} holds a {type(batch).__name__}, not a CIFAR-10 batch dict")
    data, labels = _field(batch, "data"), _field(batch, "labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: data must be a uint8 array (N, 3072), got {getattr(data, 'dtype', type(data))} "
                         f"{getattr(data, 'shape', '')}")
    labels = np.asarray(labels)
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: labels must be {data.shape[0]} integers, got {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels must lie in 0..9")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _classes(root: Path) -> tuple[str, ...]:
    meta = root / "batches.meta"
    if not meta.is_file():
        return CIFAR10_CLASSES
    try:
        names = _field(restricted_load(meta.read_bytes()), "label_names")
    except Exception as err:
        raise ValueError(f"{meta} is not a CIFAR-10 batches.meta: {type(err).__name__}: {err}") from None
    names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    if len(names) != 10:
        raise ValueError(f"{meta}: expected 10 label names, got {len(names)}")
    return names


def load_cifar10(root: str | os.PathLike, *, train: bool = True) -> ImageData:
    """CIFAR-10 from ``root`` (the ``cifar-10-batches-py`` folder or its parent): the 5 training batches or the test batch."""
    root = Path(root)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    if not root.is_dir():
        raise FileNotFoundError(f"root: {root} is not a directory")
    files = TRAIN_FILES if train else TEST_FILES
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        raise FileNotFoundError(f"root: {root} lacks {', '.join(missing)} (the python version of CIFAR-10)")
    parts = [read_cifar_batch(root / f) for f in files]
    pixels = np.concatenate([p for p, _ in parts])
    labels = np.concatenate([y for _, y in parts])
    return ImageData(from_uint8(pixels), torch.from_numpy(labels), _classes(root))
