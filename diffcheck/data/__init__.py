"""Real image data without downloads: CIFAR-10 python batches from disk, image folders, scikit-learn's digits.

Every loader returns :class:`ImageData`: images (N, C, H, W) float32 in [−1, 1], labels (N,) int64, class names.
"""

from .cifar import CIFAR10_CLASSES, load_cifar10, read_cifar_batch, restricted_load
from .digits import load_digits
from .folder import load_image_folder
from .images import ImageData, from_uint8

__all__ = ["ImageData", "from_uint8", "load_cifar10", "read_cifar_batch", "restricted_load", "CIFAR10_CLASSES",
           "load_image_folder", "load_digits"]
