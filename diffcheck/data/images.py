"""The common currency of the loaders: images in [−1, 1] as (N, C, H, W) float32, with integer labels."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import Tensor

__all__ = ["ImageData", "from_uint8"]


@dataclasses.dataclass(frozen=True)
class ImageData:
    """Images (N, C, H, W) float32 in [−1, 1], labels (N,) int64 indexing ``classes``."""

    images: Tensor
    labels: Tensor
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        x, y = self.images, self.labels
        if not isinstance(x, Tensor) or x.ndim != 4 or x.dtype != torch.float32:
            raise ValueError(f"images must be a float32 tensor (N, C, H, W), got {getattr(x, 'dtype', type(x))} "
                             f"{tuple(getattr(x, 'shape', ()))}")
        if x.numel() and (not bool(torch.isfinite(x).all()) or float(x.min()) < -1.0 or float(x.max()) > 1.0):
            raise ValueError("images must be finite and lie in [-1, 1]")
        if not isinstance(y, Tensor) or y.dtype != torch.int64 or y.shape != (x.shape[0],):
            raise ValueError(f"labels must be an int64 tensor of shape ({x.shape[0]},), got {getattr(y, 'dtype', type(y))} "
                             f"{tuple(getattr(y, 'shape', ()))}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= len(self.classes)):
            raise ValueError(f"labels must lie in [0, {len(self.classes)}) to index classes")

    def __len__(self) -> int:
        return self.images.shape[0]

    def tensors(self) -> tuple[Tensor, Tensor]:
        """(images, labels), the form the training loop takes."""
        return self.images, self.labels


def from_uint8(pixels: np.ndarray | Tensor) -> Tensor:
    """uint8 pixels (N, C, H, W) → float32 in [−1, 1]: x/127.5 − 1 (Ho et al. 2020's scaling)."""
    t = torch.as_tensor(np.asarray(pixels))
    if t.dtype != torch.uint8 or t.ndim != 4:
        raise ValueError(f"pixels must be uint8 (N, C, H, W), got {t.dtype} {tuple(t.shape)}")
    return t.to(torch.float32) / 127.5 - 1.0
