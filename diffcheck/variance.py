"""Reverse-step variances: DDPM's fixed choices, Improved DDPM's learned range, and the learned-variance model.

A *learned-variance model* is a model (its ``prediction`` names what its mean output
predicts) that also has ``forward_full(x, t)``, returning the mean output and the
variance output concatenated along dimension 1: Improved DDPM's layout of 2C channels
[eps, v_raw] for images, and 2D coordinates for points of dimension D.
``NetModel(net, prediction, noise_input, out_channels=C)`` is one; ``WithVariance``
builds one from a model and a function. The variance output v_raw is mapped to
v = (v_raw + 1)/2 and Sigma = exp(v log beta_t + (1 - v) log beta_tilde_t), in log
space, with no clamp on v (Nichol & Dhariwal 2021, Eq. 15).

Steps are 1-based indices of a ``Schedule`` (step i goes from t_{i-1} to t_i); beta_tilde
of step 1 is 0 when t_0 is the data, and as in the official code its log is replaced by
that of step 2 ("clipped") wherever a finite log-variance is needed.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from toy.validate import as_index_tensor, check_choice

from .param import PREDICTIONS
from .process.discrete import Schedule

__all__ = [
    "split_output",
    "WithVariance",
    "steps_tensor",
    "log_beta",
    "clipped_log_beta_tilde",
    "fixed_log_variance",
    "learned_range",
    "optimal_v",
]


def split_output(model: Any, x: torch.Tensor, t: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The (mean output, variance output) of a learned-variance model at (x, t), each of x's shape."""
    full = getattr(model, "forward_full", None)
    if not callable(full):
        raise TypeError("model must be a learned-variance model with forward_full(x, t) (see diffcheck.variance)")
    out = full(x, t)
    if out.ndim != x.ndim or out.shape[0] != x.shape[0] or out.shape[1] != 2 * x.shape[1] or out.shape[2:] != x.shape[2:]:
        raise ValueError(
            f"forward_full must return twice x's size along dimension 1, shape "
            f"({x.shape[0]}, {2 * x.shape[1]}, ...), got {tuple(out.shape)} for x of shape {tuple(x.shape)}"
        )
    mean, var = out.split(x.shape[1], dim=1)
    return mean, var


class WithVariance:
    """A learned-variance model from a model and ``v_raw_fn(x, t)`` (the raw variance output, shape of x)."""

    def __init__(self, model: Any, v_raw_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        pred = getattr(model, "prediction", None)
        if pred not in PREDICTIONS or not callable(model):
            raise TypeError(f"model must be callable with a 'prediction' in {PREDICTIONS}")
        if not callable(v_raw_fn):
            raise TypeError("v_raw_fn must be callable")
        self.model = model
        self.v_raw_fn = v_raw_fn
        self.prediction = pred

    def __call__(self, x: torch.Tensor, t: Any, **kwargs: Any) -> torch.Tensor:
        return self.model(x, t, **kwargs)

    def forward_full(self, x: torch.Tensor, t: Any) -> torch.Tensor:
        """[mean output, variance output] along dimension 1."""
        v = self.v_raw_fn(x, t)
        if v.shape != x.shape:
            raise ValueError(f"v_raw_fn must return the shape of x {tuple(x.shape)}, got {tuple(v.shape)}")
        return torch.cat([self.model(x, t), v], dim=1)

    def __repr__(self) -> str:
        return f"WithVariance({self.model!r})"


def steps_tensor(step: Any, schedule: Schedule, x: torch.Tensor) -> torch.Tensor:
    """A step (int or (B,) integers in 1..N) as a (B,) int64 tensor on x's device."""
    s = as_index_tensor(step, "step", device=x.device)
    if s.ndim == 0:
        s = s.expand(x.shape[0])
    if s.shape != (x.shape[0],):
        raise ValueError(f"step must be an integer or have shape ({x.shape[0]},), got {tuple(s.shape)}")
    n = schedule.num_steps
    if bool((s < 1).any()) or bool((s > n).any()):
        raise ValueError(f"step must lie in [1, {n}], got values in [{int(s.min())}, {int(s.max())}]")
    return s


def log_beta(schedule: Schedule) -> torch.Tensor:
    """log beta_i of each step (N,), from the kept times."""
    return torch.log(schedule.beta)


def clipped_log_beta_tilde(schedule: Schedule) -> torch.Tensor:
    """log beta_tilde_i (N,), with step 1's entry replaced by step 2's where beta_tilde_1 = 0 (official code).

    With a single step there is no step 2 and log beta_1 is used.
    """
    lbt = torch.log(schedule.beta_tilde)
    if schedule.beta_tilde[0] == 0:
        lbt = lbt.clone()
        lbt[0] = lbt[1] if schedule.num_steps > 1 else torch.log(schedule.beta[0])
    return lbt


def fixed_log_variance(schedule: Schedule, kind: str = "small") -> torch.Tensor:
    """DDPM's fixed reverse log-variances (N,): ``small`` = beta_tilde, ``large`` = beta (Ho et al. 2020, Sec. 3.2).

    Step 1 uses the clipped beta_tilde in both, as the official code does, so that the
    decoder is not needlessly wide.
    """
    kind = check_choice(kind, "kind", ("small", "large"))
    small = clipped_log_beta_tilde(schedule)
    if kind == "small":
        return small
    large = log_beta(schedule).clone()
    large[0] = small[0]
    return large


def learned_range(v_raw: torch.Tensor, schedule: Schedule, step: Any) -> torch.Tensor:
    """log Sigma = v log beta + (1 - v) log beta_tilde, v = (v_raw + 1)/2 (Nichol & Dhariwal 2021, Eq. 15)."""
    if not isinstance(v_raw, torch.Tensor) or not v_raw.is_floating_point() or v_raw.ndim < 1:
        raise TypeError("v_raw must be a floating tensor of shape (B, ...)")
    s = steps_tensor(step, schedule, v_raw) - 1
    shape = (-1,) + (1,) * (v_raw.ndim - 1)
    hi = log_beta(schedule).to(v_raw)[s].reshape(shape)
    lo = clipped_log_beta_tilde(schedule).to(v_raw)[s].reshape(shape)
    frac = 0.5 * (v_raw + 1.0)
    return frac * hi + (1.0 - frac) * lo


def optimal_v(variance: Any, schedule: Schedule, step: Any) -> torch.Tensor:
    """The interpolation v with exp(v log beta + (1 - v) log beta_tilde) = ``variance`` (the inverse of Eq. 15)."""
    var = torch.as_tensor(variance, dtype=torch.float64)
    if bool((var <= 0).any()) or not bool(torch.isfinite(var).all()):
        raise ValueError("variance must be positive and finite")
    idx = as_index_tensor(step, "step")
    n = schedule.num_steps
    if bool((idx < 1).any()) or bool((idx > n).any()):
        raise ValueError(f"step must lie in [1, {n}]")
    hi = log_beta(schedule)[idx - 1]
    lo = clipped_log_beta_tilde(schedule)[idx - 1]
    while hi.ndim < var.ndim:
        hi, lo = hi[..., None], lo[..., None]
    return (torch.log(var) - lo) / (hi - lo)
