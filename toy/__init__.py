"""Ground truth: distributions with exact answers (torch only, float64 by default).

``toy`` knows nothing of diffusion. Its key operation is the push-forward
``GaussianMixture.noised(alpha, sigma)``, the law of alpha X + sigma Z, under which a
Gaussian mixture stays a Gaussian mixture, so scores, densities and posteriors of every
noised marginal are closed form.
"""

from .gaussian import complement, condition_gaussian, kl_diagonal, kl_gaussian, log_normal
from .mixture import GaussianMixture, NoisedMixture, SequenceMixture
from .presets import (
    PRESETS,
    anisotropic,
    ar1_video,
    grid,
    narrow,
    preset,
    ring,
    single_gaussian,
    three_classes,
    two_modes,
)

__all__ = [
    "GaussianMixture",
    "NoisedMixture",
    "SequenceMixture",
    "log_normal",
    "kl_gaussian",
    "kl_diagonal",
    "condition_gaussian",
    "complement",
    "PRESETS",
    "preset",
    "two_modes",
    "three_classes",
    "ring",
    "grid",
    "anisotropic",
    "narrow",
    "single_gaussian",
    "ar1_video",
]
