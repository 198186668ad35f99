"""Argument checks shared by `toy` and `diffcheck`: each error names the argument."""

from __future__ import annotations

import numbers
from typing import Any

import torch

__all__ = [
    "as_float_tensor",
    "as_index_tensor",
    "check_finite",
    "check_positive",
    "check_probability_vector",
    "check_covariance",
    "check_choice",
    "check_int",
    "check_float",
]

_DEFAULT_DTYPE = torch.float64


def as_float_tensor(
    value: Any,
    name: str,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    finite: bool = True,
    ndim: int | tuple[int, ...] | None = None,
) -> torch.Tensor:
    """Convert ``value`` to a floating tensor, rejecting non-numbers, NaN/inf and wrong ranks."""
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"{name} must be a real floating tensor, got dtype {value.dtype}")
        t = value
        if not t.is_floating_point():
            t = t.to(dtype or _DEFAULT_DTYPE)
        if dtype is not None and t.dtype != dtype:
            t = t.to(dtype)
        if device is not None:
            t = t.to(device)
    else:
        if isinstance(value, (str, bytes)) or value is None:
            raise TypeError(f"{name} must be a number or an array of numbers, got {type(value).__name__}")
        try:
            t = torch.as_tensor(value, dtype=dtype or _DEFAULT_DTYPE, device=device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name} must be a number or an array of numbers ({err})") from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if t.ndim not in allowed:
            raise ValueError(f"{name} must have {' or '.join(map(str, allowed))} dimensions, got shape {tuple(t.shape)}")
    if finite:
        check_finite(t, name)
    return t


def as_index_tensor(value: Any, name: str, *, device: torch.device | str | None = None) -> torch.Tensor:
    """Convert ``value`` to an int64 tensor, rejecting floats that are not whole numbers."""
    if isinstance(value, torch.Tensor):
        t = value
    else:
        try:
            t = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name} must be integers ({err})") from None
    if t.dtype == torch.bool:
        raise TypeError(f"{name} must be integers, got booleans")
    if t.is_floating_point():
        if not torch.isfinite(t).all() or (t != t.round()).any():
            raise TypeError(f"{name} must be integers, got non-integer values")
    return t.to(dtype=torch.int64, device=device)


def check_finite(t: torch.Tensor, name: str) -> torch.Tensor:
    """Raise ``ValueError`` naming ``name`` if ``t`` holds NaN or inf."""
    if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
        bad = "NaN" if bool(torch.isnan(t).any()) else "inf"
        raise ValueError(f"{name} contains {bad}")
    return t


def check_positive(t: torch.Tensor, name: str, *, strict: bool = True) -> torch.Tensor:
    """Raise ``ValueError`` unless every entry is > 0 (or >= 0 with ``strict=False``)."""
    bad = (t <= 0) if strict else (t < 0)
    if bool(bad.any()):
        word = "positive" if strict else "non-negative"
        raise ValueError(f"{name} must be {word}, got minimum {float(t.min()):.6g}")
    return t


def check_probability_vector(w: torch.Tensor, name: str, *, atol: float = 1e-6) -> torch.Tensor:
    """Raise unless ``w`` is a non-empty vector of non-negative numbers summing to one."""
    if w.ndim != 1 or w.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D vector, got shape {tuple(w.shape)}")
    check_finite(w, name)
    if bool((w < 0).any()):
        raise ValueError(f"{name} must be non-negative, got minimum {float(w.min()):.6g}")
    total = float(w.sum())
    if abs(total - 1.0) > atol:
        raise ValueError(f"{name} must sum to 1, got {total:.10g}")
    return w


def check_covariance(cov: torch.Tensor, name: str, *, rtol: float = 1e-9) -> torch.Tensor:
    """Raise unless ``cov`` (..., D, D) is finite, symmetric and positive semi-definite.

    Symmetry and semi-definiteness are judged relative to the largest absolute entry ``scale``:
    asymmetry above ``max(rtol, 64 eps) * scale`` (eps of ``cov``'s dtype, so that a float32
    R D R^T, asymmetric by rounding, passes) or an eigenvalue below ``-1e3 * eps64 * scale * D``
    is rejected.
    """
    if cov.ndim < 2 or cov.shape[-1] != cov.shape[-2]:
        raise ValueError(f"{name} must be square matrices (..., D, D), got shape {tuple(cov.shape)}")
    check_finite(cov, name)
    scale = float(cov.abs().amax()) if cov.numel() else 0.0
    asym = float((cov - cov.transpose(-1, -2)).abs().amax()) if cov.numel() else 0.0
    eps = torch.finfo(cov.dtype).eps if cov.is_floating_point() else 0.0
    if asym > max(rtol, 64.0 * eps) * max(scale, 1e-300):
        raise ValueError(f"{name} must be symmetric (largest asymmetry {asym:.3g})")
    evals = torch.linalg.eigvalsh(cov.to(torch.float64))
    tol = 1e3 * torch.finfo(torch.float64).eps * max(scale, 1e-300) * cov.shape[-1]
    if evals.numel() and float(evals.min()) < -tol:
        raise ValueError(
            f"{name} must be positive semi-definite, got eigenvalue {float(evals.min()):.6g}"
        )
    return cov


def check_choice(value: Any, name: str, choices: tuple[str, ...] | list[str]) -> str:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an int, rejecting non-integers and values outside [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
            value = int(value)
        else:
            raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_float(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite float inside the given (open or closed) bounds."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, torch.Tensor)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"{name} must be a single number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value
