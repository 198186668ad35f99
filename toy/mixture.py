"""Gaussian mixtures with exact scores, posteriors and push-forwards under linear-Gaussian noise.

A mixture p = sum_k pi_k N(mu_k, S_k) pushed through x -> alpha x + sigma z (z ~ N(0, I))
is again a mixture, sum_k pi_k N(alpha mu_k, alpha^2 S_k + sigma^2 I). Each S_k is
eigendecomposed once; ``toy.evaluate`` evaluates the noised law at a batch of points, for one
(alpha, sigma) or per-sample ones, and ``toy.conditional`` conditions on coordinates.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch

from . import conditional
from .law import MixtureLaw, _broadcastable
from .validate import as_float_tensor, as_index_tensor, check_covariance, check_int, check_probability_vector

__all__ = ["GaussianMixture", "NoisedMixture", "SequenceMixture"]


class GaussianMixture(MixtureLaw):
    """sum_k pi_k N(mu_k, S_k) in any dimension, with optional class labels per component.

    ``covs`` may be (K, D, D) full covariances, one (D, D) shared by all components,
    (K,) per-component isotropic variances, or a single number. Parameters are stored in
    float64 unless ``dtype`` says otherwise; every method follows the dtype and device
    of its input points.
    """

    def __init__(
        self,
        weights: Any,
        means: Any,
        covs: Any,
        labels: Any = None,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        dtype = dtype or torch.float64
        weights = as_float_tensor(weights, "weights", dtype=dtype, device=device, ndim=1)
        means = as_float_tensor(means, "means", dtype=dtype, device=device, ndim=2)
        k, d = means.shape
        if k == 0 or d == 0:
            raise ValueError(f"means must be a non-empty (K, D) array, got shape {tuple(means.shape)}")
        if weights.shape != (k,):
            raise ValueError(f"weights must have one entry per component of means ({k}), got shape {tuple(weights.shape)}")
        atol = 1e-6 if dtype == torch.float64 else 1e-4
        check_probability_vector(weights, "weights", atol=atol)
        covs = as_float_tensor(covs, "covs", dtype=dtype, device=means.device)
        if covs.ndim == 0:
            covs = covs * torch.eye(d, dtype=dtype, device=means.device).expand(k, d, d)
        elif covs.ndim == 1:
            if covs.shape != (k,):
                raise ValueError(f"isotropic covs must have one variance per component ({k}), got shape {tuple(covs.shape)}")
            covs = covs[:, None, None] * torch.eye(d, dtype=dtype, device=means.device)
        elif covs.ndim == 2:
            if covs.shape != (d, d):
                raise ValueError(f"a shared covariance must have shape ({d}, {d}), got {tuple(covs.shape)}")
            covs = covs.expand(k, d, d)
        elif covs.shape != (k, d, d):
            raise ValueError(f"covs must have shape ({k}, {d}, {d}), got {tuple(covs.shape)}")
        if covs.ndim == 3 and (covs.diagonal(dim1=-2, dim2=-1) < 0).any():
            raise ValueError("covs must be positive semi-definite, got a negative variance")
        check_covariance(covs, "covs")
        covs = 0.5 * (covs + covs.transpose(-1, -2)).contiguous()
        if labels is not None:
            labels = as_index_tensor(labels, "labels", device=means.device)
            if labels.shape != (k,):
                raise ValueError(f"labels must have one entry per component ({k}), got shape {tuple(labels.shape)}")
        evals, evecs = torch.linalg.eigh(covs.to(torch.float64))
        self._weights = weights
        self._means = means
        self._covs = covs
        self._labels = labels
        self._classes = labels.unique() if labels is not None else torch.zeros(0, dtype=torch.int64)
        self._evals = evals.clamp_min(0.0)
        self._evecs = evecs
        self._dtype = dtype
        self._device = means.device
        self._dim = d
        self._cache: dict[tuple, Any] = {}  # per-component parameters per (dtype, device)
        self._dense: OrderedDict = OrderedDict()  # dense tables per (alpha, sigma, dtype, device)
        self.mixture = self

    # -- basic attributes ---------------------------------------------------------------
    @property
    def weights(self) -> torch.Tensor:
        """Component weights pi, shape (K,)."""
        return self._weights

    @property
    def means(self) -> torch.Tensor:
        """Component means, shape (K, D)."""
        return self._means

    @property
    def covs(self) -> torch.Tensor:
        """Component covariances, shape (K, D, D)."""
        return self._covs

    @property
    def labels(self) -> torch.Tensor | None:
        """Class label of each component, shape (K,), or None."""
        return self._labels

    @property
    def num_components(self) -> int:
        """Number of components K."""
        return self._means.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the stored parameters."""
        return self._dtype

    @property
    def device(self) -> torch.device:
        """Device of the stored parameters."""
        return self._device

    def __repr__(self) -> str:
        lab = "" if self._labels is None else f", classes={self._classes.tolist()}"
        return f"GaussianMixture(K={self.num_components}, D={self._dim}{lab})"

    def _scales(self):
        one = torch.ones((), dtype=self._dtype, device=self._device)
        return one, torch.zeros_like(one)

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> "GaussianMixture":
        """A copy with parameters in another dtype or on another device."""
        return GaussianMixture(
            self._weights, self._means, self._covs, self._labels,
            dtype=dtype or self._dtype, device=device or self._device,
        )

    # -- sampling -----------------------------------------------------------------------
    def sample(
        self, n: int, generator: torch.Generator | None = None, *, return_components: bool = False
    ):
        """Draw ``n`` points (n, D); with ``return_components`` also each point's component index."""
        n = check_int(n, "n", minimum=0)
        dev = generator.device if generator is not None else self._device
        comps = torch.multinomial(self._weights.to(dev), n, replacement=True, generator=generator) if n else torch.zeros(0, dtype=torch.int64, device=dev)
        z = torch.randn(n, self._dim, generator=generator, dtype=self._dtype, device=dev)
        root = self._evecs.to(self._dtype).to(dev) * self._evals.to(self._dtype).to(dev).sqrt()[:, None, :]
        x = self._means.to(dev)[comps] + torch.einsum("nde,ne->nd", root[comps], z)
        return (x, comps) if return_components else x

    # -- derived mixtures ---------------------------------------------------------------
    def noised(self, alpha: Any, sigma: Any) -> "NoisedMixture":
        """The law of alpha X + sigma Z, with alpha, sigma scalars or per-sample tensors."""
        return NoisedMixture(self, alpha, sigma)

    def given(self, label: int) -> "GaussianMixture":
        """The class-conditional mixture p(x | y = label)."""
        self._require_labels()
        label = check_int(label, "label")
        keep = self._labels == label
        if not bool(keep.any()):
            raise ValueError(f"label must be one of {self._classes.tolist()}, got {label}")
        w = self._weights[keep]
        return GaussianMixture(w / w.sum(), self._means[keep], self._covs[keep], self._labels[keep], dtype=self._dtype, device=self._device)

    def class_prior(self) -> torch.Tensor:
        """p(c) for every class c in ``classes``, shape (C,)."""
        self._require_labels()
        hit = (self._labels[None, :] == self._classes[:, None]).to(self._dtype)
        return hit @ self._weights

    def permuted(self, order: Any) -> "GaussianMixture":
        """The same mixture with its components listed in another order."""
        order = as_index_tensor(order, "order", device=self._device)
        if sorted(order.tolist()) != list(range(self.num_components)):
            raise ValueError(f"order must be a permutation of range({self.num_components})")
        lab = None if self._labels is None else self._labels[order]
        return GaussianMixture(self._weights[order], self._means[order], self._covs[order], lab, dtype=self._dtype, device=self._device)

    # -- conditioning on coordinates ----------------------------------------------------
    def condition(self, observed: Any, values: Any) -> "GaussianMixture":
        """The mixture of the free coordinates given ``x[observed] = values`` (values of shape (m,))."""
        obs, free, logw, cmean, ccov, single = conditional.conditional_parts(self, observed, values)
        if not single:
            raise ValueError("condition takes one observed vector; use conditional_sample or conditional_mean for batches")
        return GaussianMixture(logw[0].exp(), cmean[0], ccov, self._labels, dtype=self._dtype, device=self._device)

    def conditional_mean(self, observed: Any, values: Any) -> torch.Tensor:
        """E[x | x[observed] = values] as full vectors (observed coordinates kept), batched."""
        return conditional.conditional_mean(self, observed, values)

    def conditional_sample(self, observed: Any, values: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        """One exact draw of x given x[observed] = values per row of ``values`` (full vectors)."""
        return conditional.conditional_sample(self, observed, values, generator)

    def marginal(self, coords: Any) -> "GaussianMixture":
        """The mixture of a subset of coordinates."""
        idx = as_index_tensor(coords, "coords", device=self._device)
        if idx.ndim != 1 or idx.numel() == 0 or bool((idx < 0).any() or (idx >= self._dim).any()):
            raise ValueError(f"coords must be a non-empty list of coordinates in [0, {self._dim - 1}]")
        return GaussianMixture(self._weights, self._means[:, idx], self._covs[:, idx][:, :, idx], self._labels, dtype=self._dtype, device=self._device)


class NoisedMixture(MixtureLaw):
    """The law of alpha X + sigma Z for X ~ mixture and Z ~ N(0, I), with exact posteriors of X.

    ``alpha`` and ``sigma`` are numbers or per-sample tensors that broadcast against the
    batch shape of the points the law is evaluated at.
    """

    def __init__(self, mixture: GaussianMixture, alpha: Any, sigma: Any) -> None:
        if not isinstance(mixture, GaussianMixture):
            raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
        a = as_float_tensor(alpha, "alpha", dtype=mixture.dtype if not isinstance(alpha, torch.Tensor) else None)
        s = as_float_tensor(sigma, "sigma", dtype=mixture.dtype if not isinstance(sigma, torch.Tensor) else None)
        if bool((a < 0).any()):
            raise ValueError(f"alpha must be non-negative, got minimum {float(a.min()):.6g}")
        if bool((s < 0).any()):
            raise ValueError(f"sigma must be non-negative, got minimum {float(s.min()):.6g}")
        if not _broadcastable(a.shape, s.shape):
            raise ValueError(f"alpha of shape {tuple(a.shape)} and sigma of shape {tuple(s.shape)} do not broadcast")
        self.mixture = mixture
        self.alpha = a
        self.sigma = s

    def __repr__(self) -> str:
        if self.alpha.ndim == 0 and self.sigma.ndim == 0:
            return f"NoisedMixture({self.mixture!r}, alpha={float(self.alpha):.6g}, sigma={float(self.sigma):.6g})"
        return f"NoisedMixture({self.mixture!r}, per-sample alpha/sigma of shape {tuple(torch.broadcast_shapes(self.alpha.shape, self.sigma.shape))})"

    def _scales(self):
        return self.alpha, self.sigma

    def noised(self, alpha: Any, sigma: Any) -> "NoisedMixture":
        """The law of alpha' Y + sigma' Z' for Y from this law: alpha' alpha X + sqrt(alpha'^2 sigma^2 + sigma'^2) Z."""
        a2 = as_float_tensor(alpha, "alpha", dtype=self.alpha.dtype, device=self.alpha.device)
        s2 = as_float_tensor(sigma, "sigma", dtype=self.alpha.dtype, device=self.alpha.device)
        return NoisedMixture(self.mixture, a2 * self.alpha, torch.sqrt(a2 * a2 * self.sigma**2 + s2 * s2))

    def given(self, label: int) -> "NoisedMixture":
        """The noised class-conditional law."""
        return NoisedMixture(self.mixture.given(label), self.alpha, self.sigma)

    def to_mixture(self) -> GaussianMixture:
        """This law as an explicit GaussianMixture (needs a single alpha, sigma)."""
        a, s = self._require_scalar("to_mixture")
        m = self.mixture
        eye = torch.eye(m._dim, dtype=m._dtype, device=m._device)
        return GaussianMixture(m._weights, a * m._means, a * a * m._covs + s * s * eye, m._labels, dtype=m._dtype, device=m._device)

    def sample(self, n: int | None = None, generator: torch.Generator | None = None, *, return_x0: bool = False):
        """Draw alpha X + sigma Z: ``n`` points for scalar alpha, sigma; one per entry for per-sample ones."""
        a, s = self.alpha, self.sigma
        batch = torch.broadcast_shapes(a.shape, s.shape)
        if len(batch) > 1:
            raise ValueError("sampling needs alpha, sigma that are scalars or 1-D per-sample tensors")
        if batch:
            if n is not None and n != batch[0]:
                raise ValueError(f"n must equal the number of per-sample (alpha, sigma), {batch[0]}, or be None")
            n = batch[0]
        elif n is None:
            raise ValueError("n is required when alpha and sigma are scalars")
        x0 = self.mixture.sample(n, generator)
        z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        x = a.to(x0)[..., None] * x0 + s.to(x0)[..., None] * z
        return (x, x0) if return_x0 else x

    # -- posterior of X given Y = alpha X + sigma Z ---------------------------------------
    def posterior_mean(self, x: Any, y: Any = None, *, engine: str = "auto") -> torch.Tensor:
        """E[X | alpha X + sigma Z = x] (optionally also given class y), exact; shape of x."""
        return self._run("posterior_mean", x, y, engine)

    def posterior_cov(self, x: Any, y: Any = None) -> torch.Tensor:
        """Cov[X | alpha X + sigma Z = x] (optionally also given class y), exact; shape (…, D, D)."""
        return self._run("posterior_cov", x, y)


class SequenceMixture(GaussianMixture):
    """A Gaussian mixture over F frames of d-dimensional points, laid out frame after frame."""

    def __init__(self, weights, means, covs, labels=None, *, frames: int, frame_dim: int, dtype=None, device=None):
        frames = check_int(frames, "frames", minimum=1)
        frame_dim = check_int(frame_dim, "frame_dim", minimum=1)
        super().__init__(weights, means, covs, labels, dtype=dtype, device=device)
        if self._dim != frames * frame_dim:
            raise ValueError(f"frames * frame_dim = {frames * frame_dim} must equal the dimension {self._dim}")
        self.frames = frames
        self.frame_dim = frame_dim

    def __repr__(self) -> str:
        return f"SequenceMixture(K={self.num_components}, frames={self.frames}, frame_dim={self.frame_dim})"

    def frame_coords(self, frames: Any) -> torch.Tensor:
        """Coordinates (indices into the flat vector) of the given frame indices."""
        f = as_index_tensor(frames, "frames", device=self._device).reshape(-1)
        if bool((f < 0).any() or (f >= self.frames).any()):
            raise ValueError(f"frames must lie in [0, {self.frames - 1}], got {f.tolist()}")
        return (f[:, None] * self.frame_dim + torch.arange(self.frame_dim, device=self._device)).reshape(-1)

    def as_frames(self, x: torch.Tensor) -> torch.Tensor:
        """View flat points (…, F*d) as (…, F, d)."""
        if x.shape[-1] != self._dim:
            raise ValueError(f"x must have trailing dimension {self._dim}, got {tuple(x.shape)}")
        return x.reshape(*x.shape[:-1], self.frames, self.frame_dim)
