"""Public verification API: calibrated statistical assertions, convergence-order fits, exact Gaussian laws, strategies.

Submodules load on first use, so importing ``diffcheck.testing`` costs nothing until a
name from it is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TestResult": "stats",
    "two_sample_test": "stats",
    "exact_law_test": "exact_law",
    "mean_test": "stats",
    "covariance_test": "stats",
    "zero_mean_test": "stats",
    "binomial_interval": "stats",
    "proportions_test": "stats",
    "mode_assignment": "stats",
    "mode_weights_test": "stats",
    "fit_order": "stats",
    "normal_quantile": "stats",
    "DiffcheckAssertionError": "assertions",
    "assert_samples_match": "assertions",
    "assert_moments": "assertions",
    "assert_mode_weights": "assertions",
    "assert_order": "assertions",
    "assert_gaussian_kl": "assertions",
    "rejection_rate": "calibration",
    "RejectionRate": "calibration",
    "affine_law": "gaussian_law",
    "NotAffineError": "gaussian_law",
    "law_resolution": "resolution",
    "gaussian_kl": "resolution",
    "gaussian_distance": "resolution",
    "LawVerdict": "resolution",
    "gaussian_law_check": "resolution",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    if name in ("stats", "strategies", "assertions", "gaussian_law", "resolution", "plugin", "calibration", "exact_law"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
