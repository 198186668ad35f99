"""Images from a folder tree ``root/<class>/<image>.png|.jpg``: classes are the sorted subfolder names."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .images import ImageData, from_uint8

__all__ = ["load_image_folder", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) and not isinstance(size, bool) else tuple(size)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair):
        raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
    return pair  # type: ignore[return-value]


def load_image_folder(root: str | os.PathLike, *, channels: int = 3, size: int | Sequence[int] | None = None) -> ImageData:
    """Every PNG/JPEG under ``root/<class>/`` as (N, channels, H, W) in [−1, 1], read with Pillow.

    ``channels`` 3 (RGB) or 1 (grayscale); ``size`` resizes every image (bicubic) to (H, W), otherwise all images
    must already share one size. Files are taken in sorted order within each class; files with other suffixes are
    skipped. A truncated, corrupt or oversized (decompression bomb) image raises ValueError naming the file; PNG
    checks its data, JPEG has no checksum, so a JPEG with flipped bytes can decode to other pixels unnoticed.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"root: {root} is not a directory")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    hw = _size(size)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"root: {root} has no class subfolders (expected root/<class>/<image>.png)")
    pixels, labels, first = [], [], None
    for label, name in enumerate(classes):
        for path in sorted((root / name).iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                continue
            try:
                with Image.open(path) as img:
                    img = img.convert("RGB" if channels == 3 else "L")
                    if hw is not None:
                        img = img.resize((hw[1], hw[0]), Image.Resampling.BICUBIC)
                    arr = np.asarray(img, dtype=np.uint8)
            except MemoryError:
                raise
            except Exception as err:  # Pillow's plugins raise OSError, SyntaxError, DecompressionBombError, ...
                raise ValueError(f"{path} is not a readable image (truncated, corrupt or too large?): "
                                 f"{type(err).__name__}: {err}") from None
            arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
            if first is None:
                first = (path, arr.shape)
            elif arr.shape != first[1]:
                raise ValueError(f"{path} is {arr.shape[1]}×{arr.shape[2]} but {first[0]} is {first[1][1]}×{first[1][2]}; "
                                 "pass size= to resize them all")
            pixels.append(arr)
            labels.append(label)
    if not pixels:
        raise ValueError(f"root: no {'/'.join(IMAGE_SUFFIXES)} images under {root}/<class>/")
    return ImageData(from_uint8(np.stack(pixels)), torch.tensor(labels, dtype=torch.int64), tuple(classes))
