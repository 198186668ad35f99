"""Gaussian mixtures with exact scores, posteriors and push-forwards under linear-Gaussian noise.

A mixture p = sum_k pi_k N(mu_k, S_k) pushed through x -> alpha x + sigma z (z ~ N(0, I))
is again a mixture, sum_k pi_k N(alpha mu_k, alpha^2 S_k + sigma^2 I). Each S_k is
eigendecomposed once, S_k = U_k diag(lam_k) U_k^T, so the noised law is evaluated for a
whole batch of per-sample (alpha, sigma) without building one covariance per sample:
in the eigenbasis of component k its covariance is diag(alpha^2 lam_k + sigma^2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .gaussian import complement, _check_index
from .validate import (
    as_float_tensor,
    as_index_tensor,
    check_covariance,
    check_probability_vector,
    check_int,
)

__all__ = ["GaussianMixture", "NoisedMixture", "SequenceMixture"]

_LOG_2PI = math.log(2.0 * math.pi)
_CHUNK = 1 << 15  # rows evaluated at once; keeps (rows, K, D) temporaries in cache


@dataclass(frozen=True)
class _Params:
    log_weights: torch.Tensor  # (K,)
    means: torch.Tensor  # (K, D)
    evals: torch.Tensor  # (K, D), >= 0
    evecs: torch.Tensor  # (K, D, D), columns are eigenvectors
    evecs_cat: torch.Tensor  # (D, K*D) = [U_1 ... U_K]: x @ evecs_cat gives every x U_k at once
    means_rot: torch.Tensor  # (K, D), row k = mu_k^T U_k
    class_logmask: torch.Tensor  # (C, K): 0 where component k has class c, -inf elsewhere


def _rotate_back(coef: torch.Tensor, p: _Params) -> torch.Tensor:
    """sum_k U_k coef_k for coefficients (..., K, D) in the eigenbases, as one matrix product."""
    return coef.reshape(*coef.shape[:-2], -1) @ p.evecs_cat.T


class _MixtureLaw:
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
        try:
            torch.broadcast_shapes(a.shape, batch)
        except RuntimeError:
            raise ValueError(
                f"alpha and sigma of shape {tuple(a.shape)} do not broadcast against the batch shape "
                f"{tuple(batch)} of x"
            ) from None
        return a, s

    def _label_index(self, y: Any, batch: torch.Size, device) -> torch.Tensor:
        m = self.mixture
        if m._labels is None:
            raise ValueError("y was given but this mixture has no class labels")
        y = as_index_tensor(y, "y", device=device)
        known = torch.isin(y, m._classes.to(device))
        if not bool(known.all()):
            raise ValueError(f"y holds labels outside the mixture's classes {m._classes.tolist()}")
        try:
            torch.broadcast_shapes(y.shape, batch)
        except RuntimeError:
            raise ValueError(f"y of shape {tuple(y.shape)} does not broadcast against the batch shape {tuple(batch)}") from None
        return torch.searchsorted(m._classes.to(device), y.contiguous())

    def _chunked(self, fn, x: torch.Tensor, a: torch.Tensor, s: torch.Tensor, yi: torch.Tensor | None):
        n = x.shape[0] if x.ndim == 2 else 0
        if x.ndim != 2 or n <= _CHUNK:
            return fn(x, a, s, yi)
        outs = []
        for lo in range(0, n, _CHUNK):
            hi = min(lo + _CHUNK, n)
            pick = lambda v: v[lo:hi] if (v is not None and v.ndim >= 1 and v.shape[0] == n) else v
            outs.append(fn(x[lo:hi], pick(a), pick(s), pick(yi)))
        if isinstance(outs[0], tuple):
            return tuple(torch.cat(parts) for parts in zip(*outs))
        return torch.cat(outs)

    def _parts(self, x, a, s, yi):
        """Rotated residuals z (…,K,D), inverse variances (…,K,D), log pi_k N_k(x) (…,K) and params."""
        p = self.mixture._params(x.dtype, x.device)
        a3 = a[..., None, None]
        s3 = s[..., None, None]
        var = a3 * a3 * p.evals + s3 * s3
        if bool((var <= 0).any()):
            raise ValueError(
                "the density is singular here: a component covariance has a zero eigenvalue and sigma = 0"
            )
        inv_var = 1.0 / var
        k, dim = p.means.shape
        # z_k = (x - alpha mu_k)^T U_k for every k with one matrix product
        z = (x @ p.evecs_cat).reshape(*x.shape[:-1], k, dim) - a3 * p.means_rot
        logn = -0.5 * ((z * z * inv_var).sum(-1) + torch.log(var).sum(-1) + self.dim * _LOG_2PI)
        logj = p.log_weights + logn
        if yi is not None:
            logj = logj + p.class_logmask[yi]
        return z, inv_var, logj, p

    def _run(self, fn, x, y):
        x = self._prepare(x)
        a, s = self._broadcast_scales(x)
        yi = None if y is None else self._label_index(y, x.shape[:-1], x.device)
        return self._chunked(fn, x, a, s, yi)

    # -- densities ----------------------------------------------------------------------
    def log_prob(self, x: Any, y: Any = None) -> torch.Tensor:
        """log p(x), or log p(x | y) for class labels ``y``; shape x.shape[:-1]."""

        def fn(x, a, s, yi):
            _, _, logj, p = self._parts(x, a, s, yi)
            out = torch.logsumexp(logj, -1)
            if yi is not None:
                out = out - torch.logsumexp(p.log_weights + p.class_logmask[yi], -1)
            return out

        return self._run(fn, x, y)

    def responsibilities(self, x: Any) -> torch.Tensor:
        """p(component k | x), shape (…, K)."""
        return self._run(lambda x, a, s, yi: torch.softmax(self._parts(x, a, s, None)[2], -1), x, None)

    def log_class_posterior(self, x: Any) -> torch.Tensor:
        """log p(c | x) for every class c in ``classes``, shape (…, C)."""
        self._require_labels()

        def fn(x, a, s, yi):
            _, _, logj, p = self._parts(x, a, s, None)
            per_class = torch.logsumexp(logj[..., None, :] + p.class_logmask, -1)
            return per_class - torch.logsumexp(logj, -1, keepdim=True)

        return self._run(fn, x, None)

    def class_posterior(self, x: Any) -> torch.Tensor:
        """p(c | x) for every class c in ``classes``, shape (…, C)."""
        return self.log_class_posterior(x).exp()

    def score(self, x: Any, y: Any = None) -> torch.Tensor:
        """grad_x log p(x), or grad_x log p(x | y); shape of x."""

        def fn(x, a, s, yi):
            z, inv_var, logj, p = self._parts(x, a, s, yi)
            r = torch.softmax(logj, -1)
            return -_rotate_back(r[..., None] * z * inv_var, p)

        return self._run(fn, x, y)

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


class GaussianMixture(_MixtureLaw):
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
            raise ValueError(f"weights must have one entry per component ({k}), got shape {tuple(weights.shape)}")
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
        self._cache: dict[tuple, _Params] = {}
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

    def _params(self, dtype: torch.dtype, device: torch.device) -> _Params:
        key = (dtype, str(device))
        p = self._cache.get(key)
        if p is None:
            if self._labels is None:
                mask = torch.zeros(1, self.num_components)
            else:
                hit = self._labels[None, :].cpu() == self._classes[:, None].cpu()
                mask = torch.where(hit, 0.0, float("-inf"))
            p = _Params(
                log_weights=torch.log(self._weights).to(dtype=dtype, device=device),
                means=self._means.to(dtype=dtype, device=device),
                evals=self._evals.to(dtype=dtype, device=device),
                evecs=self._evecs.to(dtype=dtype, device=device),
                evecs_cat=self._evecs.permute(1, 0, 2).reshape(self._dim, -1).to(dtype=dtype, device=device),
                means_rot=torch.einsum("kd,kde->ke", self._means.to(torch.float64), self._evecs).to(dtype=dtype, device=device),
                class_logmask=mask.to(dtype=dtype, device=device),
            )
            self._cache[key] = p
        return p

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
    def _conditional_parts(self, observed, values):
        obs = _check_index(observed, self._dim)
        values = as_float_tensor(values, "values", dtype=self._dtype, device=self._device)
        if values.ndim not in (1, 2) or values.shape[-1] != obs.numel():
            raise ValueError(
                f"values must have shape ({obs.numel()},) or (B, {obs.numel()}), got {tuple(values.shape)}"
            )
        free = complement(obs, self._dim)
        s_aa = self._covs[:, obs][:, :, obs]
        s_ba = self._covs[:, free][:, :, obs]
        s_bb = self._covs[:, free][:, :, free]
        chol, info = torch.linalg.cholesky_ex(s_aa)
        if bool((info != 0).any()):
            raise ValueError("the covariance of a component restricted to the observed coordinates is singular")
        gain = torch.cholesky_solve(s_ba.transpose(-1, -2), chol).transpose(-1, -2)  # (K, b, a)
        cond_cov = s_bb - gain @ s_ba.transpose(-1, -2)
        cond_cov = 0.5 * (cond_cov + cond_cov.transpose(-1, -2))
        v = values if values.ndim == 2 else values[None]
        resid = v[:, None, :] - self._means[None][:, :, obs]  # (B, K, a)
        cond_mean = self._means[None][:, :, free] + torch.einsum("kba,nka->nkb", gain, resid)
        w = torch.linalg.solve_triangular(chol[None].expand(v.shape[0], -1, -1, -1), resid[..., None], upper=False)[..., 0]
        logdet = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        logn = -0.5 * ((w * w).sum(-1) + logdet + obs.numel() * _LOG_2PI)
        logw = torch.log_softmax(torch.log(self._weights) + logn, -1)  # (B, K)
        return obs, free, logw, cond_mean, cond_cov, values.ndim == 1

    def condition(self, observed: Any, values: Any) -> "GaussianMixture":
        """The mixture of the free coordinates given ``x[observed] = values`` (values of shape (m,))."""
        obs, free, logw, cmean, ccov, single = self._conditional_parts(observed, values)
        if not single:
            raise ValueError("condition takes one observed vector; use conditional_sample or conditional_mean for batches")
        return GaussianMixture(logw[0].exp(), cmean[0], ccov, self._labels, dtype=self._dtype, device=self._device)

    def conditional_mean(self, observed: Any, values: Any) -> torch.Tensor:
        """E[x | x[observed] = values] as full vectors (observed coordinates kept), batched."""
        obs, free, logw, cmean, _, single = self._conditional_parts(observed, values)
        v = torch.as_tensor(values, dtype=self._dtype, device=self._device).reshape(-1, obs.numel())
        out = torch.empty(v.shape[0], self._dim, dtype=self._dtype, device=self._device)
        out[:, obs] = v
        out[:, free] = (logw.exp()[..., None] * cmean).sum(1)
        return out[0] if single else out

    def conditional_sample(self, observed: Any, values: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        """One exact draw of x given x[observed] = values per row of ``values`` (full vectors)."""
        obs, free, logw, cmean, ccov, single = self._conditional_parts(observed, values)
        v = torch.as_tensor(values, dtype=self._dtype, device=self._device).reshape(-1, obs.numel())
        n = v.shape[0]
        dev = generator.device if generator is not None else self._device
        comps = torch.multinomial(logw.exp().to(dev), 1, generator=generator)[:, 0].to(self._device)
        evals, evecs = torch.linalg.eigh(ccov)
        root = evecs * evals.clamp_min(0).sqrt()[:, None, :]
        z = torch.randn(n, free.numel(), generator=generator, dtype=self._dtype, device=dev).to(self._device)
        x = torch.empty(n, self._dim, dtype=self._dtype, device=self._device)
        x[:, obs] = v
        x[:, free] = cmean[torch.arange(n), comps] + torch.einsum("nde,ne->nd", root[comps], z)
        return x[0] if single else x

    def marginal(self, coords: Any) -> "GaussianMixture":
        """The mixture of a subset of coordinates."""
        idx = as_index_tensor(coords, "coords", device=self._device)
        if idx.ndim != 1 or idx.numel() == 0 or bool((idx < 0).any() or (idx >= self._dim).any()):
            raise ValueError(f"coords must be a non-empty list of coordinates in [0, {self._dim - 1}]")
        return GaussianMixture(self._weights, self._means[:, idx], self._covs[:, idx][:, :, idx], self._labels, dtype=self._dtype, device=self._device)


class NoisedMixture(_MixtureLaw):
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
        try:
            torch.broadcast_shapes(a.shape, s.shape)
        except RuntimeError:
            raise ValueError(f"alpha of shape {tuple(a.shape)} and sigma of shape {tuple(s.shape)} do not broadcast") from None
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
    def posterior_mean(self, x: Any, y: Any = None) -> torch.Tensor:
        """E[X | alpha X + sigma Z = x] (optionally also given class y), exact; shape of x."""

        def fn(x, a, s, yi):
            z, inv_var, logj, p = self._parts(x, a, s, yi)
            r = torch.softmax(logj, -1)
            gain = a[..., None, None] * p.evals * inv_var
            shift = _rotate_back(r[..., None] * gain * z, p)
            return (r[..., None] * p.means).sum(-2) + shift

        return self._run(fn, x, y)

    def posterior_cov(self, x: Any, y: Any = None) -> torch.Tensor:
        """Cov[X | alpha X + sigma Z = x] (optionally also given class y), exact; shape (…, D, D)."""

        def fn(x, a, s, yi):
            z, inv_var, logj, p = self._parts(x, a, s, yi)
            r = torch.softmax(logj, -1)
            a3 = a[..., None, None]
            s3 = s[..., None, None]
            mk = p.means + torch.einsum("...ke,kde->...kd", a3 * p.evals * inv_var * z, p.evecs)  # (…,K,D)
            m = (r[..., None] * mk).sum(-2)
            within = torch.einsum("...ke,kde,kfe->...df", r[..., None] * p.evals * s3 * s3 * inv_var, p.evecs, p.evecs)
            dev = mk - m[..., None, :]
            between = torch.einsum("...k,...kd,...ke->...de", r, dev, dev)
            return within + between

        return self._run(fn, x, y)


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
