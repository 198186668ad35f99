"""scikit-learn's bundled 8×8 handwritten digits (1797 images, shipped inside the package: no download)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from toy.validate import check_choice

from .images import ImageData

__all__ = ["load_digits"]

SKLEARN_HINT = "the digits come with scikit-learn: pip install 'diffcheck[sklearn]'"


def load_digits(*, size: int = 8, resize: str = "nearest") -> ImageData:
    """The UCI/scikit-learn digits as (1797, 1, size, size) in [−1, 1] (pixel values 0..16 mapped by v/8 − 1).

    ``size`` 8 keeps them; 16 enlarges them by ``resize``: "nearest" (each pixel becomes 2×2), "bilinear", or
    "pad" (the 8×8 digit centred on a 16×16 background of −1).
    """
    if size not in (8, 16) or isinstance(size, bool):
        raise ValueError(f"size must be 8 or 16, got {size!r}")
    resize = check_choice(resize, "resize", ("nearest", "bilinear", "pad"))
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as err:
        raise ImportError(f"load_digits needs scikit-learn; {SKLEARN_HINT}") from err
    bunch = sk_load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32)[:, None] / 8.0 - 1.0
    if size == 16:
        if resize == "pad":
            x = F.pad(x, (4, 4, 4, 4), value=-1.0)
        elif resize == "nearest":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        else:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False).clamp(-1.0, 1.0)
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    return ImageData(x.contiguous(), labels, tuple(str(i) for i in range(10)))
