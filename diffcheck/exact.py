"""The exact model: (mixture, process) -> a model that predicts score, eps, x_0 or v in closed form.

It is interchangeable with a network: any sampler, loss or guidance rule can run on it,
and what it should then produce is known. Each quantity is computed by its most stable
formula (x_0 from the exact posterior mean rather than Tweedie's subtraction, eps as
-sigma times the score), at scalar or per-sample t, for points of any shape whose
flattened size is the mixture's dimension.
"""

from __future__ import annotations

from typing import Any

import torch

from toy.mixture import GaussianMixture, NoisedMixture
from toy.validate import check_choice

from .param import PREDICTIONS
from .process.base import Process
from .tensor import per_sample

__all__ = ["ExactModel"]


class ExactModel:
    """Closed-form predictions of the law ``process.marginal(mixture, t)``; ``prediction`` picks what ``__call__`` returns."""

    def __init__(self, mixture: GaussianMixture, process: Process, prediction: str = "eps") -> None:
        if not isinstance(mixture, GaussianMixture):
            raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
        if not isinstance(process, Process):
            raise TypeError(f"process must be a Process, got {type(process).__name__}")
        self.mixture = mixture
        self.process = process
        self.prediction = check_choice(prediction, "prediction", PREDICTIONS)

    def __repr__(self) -> str:
        return f"ExactModel({self.mixture!r}, {self.process!r}, prediction={self.prediction!r})"

    def with_prediction(self, prediction: str) -> "ExactModel":
        """The same exact model predicting another quantity."""
        return ExactModel(self.mixture, self.process, prediction)

    # -- plumbing -------------------------------------------------------------------------
    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError("x must be a floating tensor of shape (B, ...)")
        if x.ndim < 2:
            raise ValueError(f"x must have a batch dimension, shape (B, ...), got {tuple(x.shape)}")
        flat = x.reshape(x.shape[0], -1)
        if flat.shape[1] != self.mixture.dim:
            raise ValueError(
                f"x has {flat.shape[1]} values per sample but the mixture has dimension {self.mixture.dim}"
            )
        return flat

    def _time(self, t: Any, x: torch.Tensor) -> torch.Tensor:
        self._flat(x)
        t = torch.as_tensor(t, dtype=torch.float64 if not isinstance(t, torch.Tensor) else None)
        if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != x.shape[0]):
            raise ValueError(f"t must be a scalar or have shape ({x.shape[0]},), got {tuple(t.shape)}")
        return t

    def law(self, t: Any) -> NoisedMixture:
        """The exact marginal of x_t."""
        return self.process.marginal(self.mixture, t)

    # -- predictions ----------------------------------------------------------------------
    def score(self, x: torch.Tensor, t: Any, y: Any = None) -> torch.Tensor:
        """grad log p_t(x) (or grad log p_t(x | y))."""
        flat = self._flat(x)
        return self.law(self._time(t, x)).score(flat, y).reshape(x.shape)

    def eps(self, x: torch.Tensor, t: Any, y: Any = None) -> torch.Tensor:
        """E[eps | x_t = x] = -sigma(t) grad log p_t(x)."""
        t = self._time(t, x)
        return -per_sample(self.process.sigma(t), x) * self.score(x, t, y)

    def x0(self, x: torch.Tensor, t: Any, y: Any = None) -> torch.Tensor:
        """E[x_0 | x_t = x], the exact posterior mean."""
        flat = self._flat(x)
        return self.law(self._time(t, x)).posterior_mean(flat, y).reshape(x.shape)

    def v(self, x: torch.Tensor, t: Any, y: Any = None) -> torch.Tensor:
        """E[v | x_t = x] = alpha(t) E[eps | x] - sigma(t) E[x_0 | x]."""
        t = self._time(t, x)
        return per_sample(self.process.alpha(t), x) * self.eps(x, t, y) - per_sample(self.process.sigma(t), x) * self.x0(x, t, y)

    def __call__(self, x: torch.Tensor, t: Any, y: Any = None) -> torch.Tensor:
        return getattr(self, self.prediction)(x, t, y)

    # -- further exact quantities --------------------------------------------------------------
    def log_prob(self, x: torch.Tensor, t: Any, y: Any = None) -> torch.Tensor:
        """log p_t(x) (or log p_t(x | y)), shape (B,)."""
        return self.law(self._time(t, x)).log_prob(self._flat(x), y)

    def posterior_cov(self, x: torch.Tensor, t: Any, y: Any = None) -> torch.Tensor:
        """Cov[x_0 | x_t = x] on the flattened coordinates, shape (B, D, D)."""
        return self.law(self._time(t, x)).posterior_cov(self._flat(x), y)

    def log_class_posterior(self, x: torch.Tensor, t: Any) -> torch.Tensor:
        """log p(c | x_t = x) for every class, shape (B, C)."""
        return self.law(self._time(t, x)).log_class_posterior(self._flat(x))
