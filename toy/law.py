"""The pointwise exact quantities shared by a Gaussian mixture and its noised laws: densities, scores, moments.

A law here is sum_k pi_k N(alpha mu_k, alpha^2 S_k + sigma^2 I) for a mixture and scales (alpha, sigma): the
mixture itself (alpha = 1, sigma = 0) or a push-forward. Points are checked here; ``toy.evaluate`` evaluates.
"""

from __future__ import annotations

from typing import Any

import torch

from .evaluate import ENGINES, evaluate
from .validate import as_float_tensor, as_index_tensor, check_choice

__all__ = ["MixtureLaw"]


def _broadcastable(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Whether shapes a and b broadcast together."""
    return all(i == j or i == 1 or j == 1 for i, j in zip(reversed(a), reversed(b)))


class MixtureLaw:
    """Pointwise exact quantities of sum_k pi_k N(alpha mu_k, alpha^2 S_k + sigma^2 I)."""

    mixture: "GaussianMixture"

    # -- to be provided by subclasses -------------------------------------------------
    def _scales(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise TypeError  # pragma: no cover - both subclasses override

    # -- shape helpers ------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Dimension D of the points."""
        return self.mixture._dim

    @property
    def classes(self) -> torch.Tensor:
        """Sorted distinct class labels (components' labels)."""
        return self.mixture._classes

    def _prepare(self, x: Any, name: str = "x") -> torch.Tensor:
        m = self.mixture
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            t = x
        else:
            t = as_float_tensor(x, name, dtype=m._dtype, device=m._device, finite=False)
        if t.ndim == 0 or t.shape[-1] != m._dim:
            raise ValueError(f"{name} must have trailing dimension {m._dim}, got shape {tuple(t.shape)}")
        if t.numel() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or inf")
        return t

    def _broadcast_scales(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, s = self._scales()
        a = a.to(dtype=x.dtype, device=x.device)
        s = s.to(dtype=x.dtype, device=x.device)
        batch = x.shape[:-1]
        if not _broadcastable(a.shape, batch):
            raise ValueError(
                f"alpha and sigma of shape {tuple(a.shape)} do not broadcast against the batch shape "
                f"{tuple(batch)} of x"
            )
        return a, s

    def _label_index(self, y: Any, batch: torch.Size, device) -> torch.Tensor:
        m = self.mixture
        if m._labels is None:
            raise ValueError("y was given but this mixture has no class labels")
        y = as_index_tensor(y, "y", device=device)
        known = torch.isin(y, m._classes.to(device))
        if not bool(known.all()):
            raise ValueError(f"y holds labels outside the mixture's classes {m._classes.tolist()}")
        if not _broadcastable(y.shape, batch):
            raise ValueError(f"y of shape {tuple(y.shape)} does not broadcast against the batch shape {tuple(batch)}")
        return torch.searchsorted(m._classes.to(device), y.contiguous())

    def _run(self, kind: str, x: Any, y: Any, engine: str = "auto") -> torch.Tensor:
        check_choice(engine, "engine", ENGINES)
        x = self._prepare(x)
        a, s = self._broadcast_scales(x)
        yi = None if y is None else self._label_index(y, x.shape[:-1], x.device)
        return evaluate(self.mixture, kind, x, a, s, yi, engine)

    # -- densities ----------------------------------------------------------------------
    def log_prob(self, x: Any, y: Any = None, *, engine: str = "auto") -> torch.Tensor:
        """log p(x), or log p(x | y) for class labels ``y``; shape x.shape[:-1]."""
        return self._run("log_prob", x, y, engine)

    def responsibilities(self, x: Any, *, engine: str = "auto") -> torch.Tensor:
        """p(component k | x), shape (…, K)."""
        return self._run("responsibilities", x, None, engine)

    def log_class_posterior(self, x: Any, *, engine: str = "auto") -> torch.Tensor:
        """log p(c | x) for every class c in ``classes``, shape (…, C)."""
        self._require_labels()
        return self._run("log_class_posterior", x, None, engine)

    def class_posterior(self, x: Any) -> torch.Tensor:
        """p(c | x) for every class c in ``classes``, shape (…, C)."""
        return self.log_class_posterior(x).exp()

    def score(self, x: Any, y: Any = None, *, engine: str = "auto") -> torch.Tensor:
        """grad_x log p(x), or grad_x log p(x | y); shape of x."""
        return self._run("score", x, y, engine)

    def log_class_posterior_grad(self, x: Any, y: Any) -> torch.Tensor:
        """grad_x log p(y | x) = score(x | y) - score(x), closed form; shape of x."""
        return self.score(x, y) - self.score(x)

    # -- moments ------------------------------------------------------------------------
    def _require_labels(self) -> None:
        if self.mixture._labels is None:
            raise ValueError("this mixture has no class labels")

    def _require_scalar(self, what: str) -> tuple[torch.Tensor, torch.Tensor]:
        a, s = self._scales()
        if a.ndim or s.ndim:
            raise ValueError(f"{what} needs a single (alpha, sigma); this law has per-sample values")
        return a, s

    def mean(self) -> torch.Tensor:
        """Mean of the law, shape (D,) (or (…, D) for per-sample alpha)."""
        a, _ = self._scales()
        m = self.mixture
        base = (m._weights[:, None] * m._means).sum(0)
        return a[..., None] * base

    def covariance(self) -> torch.Tensor:
        """Covariance of the law, shape (D, D) (or (…, D, D) for per-sample alpha, sigma)."""
        a, s = self._scales()
        m = self.mixture
        mu = (m._weights[:, None] * m._means).sum(0)
        dev = m._means - mu
        base = (m._weights[:, None, None] * (m._covs + dev[:, :, None] * dev[:, None, :])).sum(0)
        eye = torch.eye(m._dim, dtype=m._dtype, device=m._device)
        return (a * a)[..., None, None] * base + (s * s)[..., None, None] * eye
