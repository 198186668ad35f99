"""Evaluating a noised mixture's exact quantities at a batch of points: the per-component path, the dense path, and the choice.

The per-component path works in each component's eigenbasis: with S_k = U_k diag(lam_k) U_k^T, the law of
alpha X + sigma Z has covariance U_k diag(alpha^2 lam_k + sigma^2) U_k^T, so a whole batch of per-sample
(alpha, sigma) needs no covariance per sample, and z_k = (x - alpha mu_k)^T U_k for every k is one matrix
product. The dense path (``toy.dense``) evaluates every component's quadratic form as one product of
quadratic features with a coefficient table; it is faster in low dimension, for one (alpha, sigma) per batch.
``evaluate`` chooses: the dense path where it applies (dimension at most DENSE_MAX_DIM, alpha and sigma the
same for every point, at least DENSE_MIN_WORK points x components, no gradient through x, float32 or float64),
the per-component path elsewhere and at the points the dense path flags as losing precision.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch

from . import dense

__all__ = ["evaluate", "KINDS", "ENGINES", "DENSE_MAX_DIM", "DENSE_MIN_WORK", "params"]

_LOG_2PI = math.log(2.0 * math.pi)
_CHUNK = 1 << 15  # rows evaluated at once by the per-component path; keeps (rows, K, D) temporaries in cache
# the dense path is used up to this dimension, for batches of at least this many points x components (below it,
# building its tables costs more than it saves); both crossovers are measured by ``diffcheck bench scores``
DENSE_MAX_DIM = 12
DENSE_MIN_WORK = 16384
_TABLES_KEPT = 64  # dense tables kept per mixture (samplers revisit the same times)

KINDS = ("log_prob", "responsibilities", "log_class_posterior", "score", "posterior_mean", "posterior_cov")
ENGINES = ("auto", "dense", "reference")


@dataclass(frozen=True)
class Params:
    """A mixture's parameters in one dtype and device, arranged for the per-component path."""

    log_weights: torch.Tensor  # (K,)
    means: torch.Tensor  # (K, D)
    evals: torch.Tensor  # (K, D), >= 0
    evecs: torch.Tensor  # (K, D, D), columns are eigenvectors
    evecs_cat: torch.Tensor  # (D, K*D) = [U_1 ... U_K]: x @ evecs_cat gives every x U_k at once
    means_rot: torch.Tensor  # (K, D), row k = mu_k^T U_k
    class_logmask: torch.Tensor  # (C, K): 0 where component k has class c, -inf elsewhere
    scalar_terms: OrderedDict  # (alpha, sigma) -> (1/var (K, D), log pi_k - log det / 2 - D/2 log 2 pi (K,), alpha mu_k^T U_k)


def params(mixture, dtype: torch.dtype, device: torch.device) -> Params:
    """The per-component parameters of ``mixture`` (a GaussianMixture) in ``dtype`` on ``device``, cached."""
    key = (dtype, str(device))
    p = mixture._cache.get(key)
    if p is None:
        k = mixture.num_components
        if mixture._labels is None:
            mask = torch.zeros(1, k)
        else:
            hit = mixture._labels[None, :].cpu() == mixture._classes[:, None].cpu()
            mask = torch.where(hit, 0.0, float("-inf"))
        evecs = mixture._evecs
        kw = dict(dtype=dtype, device=device)
        p = Params(
            log_weights=torch.log(mixture._weights).to(**kw),
            means=mixture._means.to(**kw),
            evals=mixture._evals.to(**kw),
            evecs=evecs.to(**kw),
            evecs_cat=evecs.permute(1, 0, 2).reshape(mixture._dim, -1).to(**kw),
            means_rot=torch.einsum("kd,kde->ke", mixture._means.to(torch.float64), evecs).to(**kw),
            class_logmask=mask.to(**kw),
            scalar_terms=OrderedDict(),
        )
        mixture._cache[key] = p
    return p


def _sum_last(t: torch.Tensor) -> torch.Tensor:
    """t.sum(-1), unrolled for the few coordinates of a toy (a reduction over a short last axis is slow in torch)."""
    if t.shape[-1] > 4:
        return t.sum(-1)
    out = t[..., 0]
    for i in range(1, t.shape[-1]):
        out = out + t[..., i]
    return out


def _softmax(logj: torch.Tensor) -> torch.Tensor:
    """Responsibilities over the last (component) axis: exp(l - max l), normalised (faster than torch.softmax there)."""
    e = torch.exp(logj - logj.amax(-1, keepdim=True))
    return e / e.sum(-1, keepdim=True)


def _rotate_back(coef: torch.Tensor, p: Params) -> torch.Tensor:
    """sum_k U_k coef_k for coefficients (..., K, D) in the eigenbases, as one matrix product."""
    return coef.reshape(*coef.shape[:-2], -1) @ p.evecs_cat.T


def _terms(p: Params, a: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-component terms of the law for one (alpha, sigma), kept for the next call at the same scales."""
    key = (float(a), float(s))
    hit = p.scalar_terms.get(key)
    if hit is not None:
        p.scalar_terms.move_to_end(key)
        return hit
    var = a * a * p.evals + s * s
    if bool((var <= 0).any()):
        raise ValueError("the density is singular here: a component covariance has a zero eigenvalue and sigma = 0")
    offset = p.log_weights - 0.5 * (torch.log(var).sum(-1) + p.means.shape[1] * _LOG_2PI)
    hit = p.scalar_terms[key] = (1.0 / var, offset, a * p.means_rot)
    if len(p.scalar_terms) > _TABLES_KEPT:
        p.scalar_terms.popitem(last=False)
    return hit


def parts(p: Params, x: torch.Tensor, a: torch.Tensor, s: torch.Tensor, yi: torch.Tensor | None):
    """Rotated residuals z (…,K,D), inverse variances (…,K,D) and log pi_k N_k(x) (…,K), per component."""
    k, dim = p.means.shape
    if a.ndim == 0 and s.ndim == 0:
        inv_var, offset, shift = _terms(p, a, s)
        z = (x @ p.evecs_cat).reshape(*x.shape[:-1], k, dim) - shift
        logj = offset - 0.5 * _sum_last(z * z * inv_var)
    else:
        a3 = a[..., None, None]
        s3 = s[..., None, None]
        var = a3 * a3 * p.evals + s3 * s3
        if bool((var <= 0).any()):
            raise ValueError("the density is singular here: a component covariance has a zero eigenvalue and sigma = 0")
        inv_var = 1.0 / var
        z = (x @ p.evecs_cat).reshape(*x.shape[:-1], k, dim) - a3 * p.means_rot
        logj = p.log_weights - 0.5 * (_sum_last(z * z * inv_var) + torch.log(var).sum(-1) + dim * _LOG_2PI)
    if yi is not None:
        logj = logj + p.class_logmask[yi]
    return z, inv_var, logj


def _log_prob(p, x, a, s, yi):
    out = torch.logsumexp(parts(p, x, a, s, yi)[2], -1)
    return out if yi is None else out - torch.logsumexp(p.log_weights + p.class_logmask[yi], -1)


def _responsibilities(p, x, a, s, yi):
    return _softmax(parts(p, x, a, s, None)[2])


def _log_class_posterior(p, x, a, s, yi):
    logj = parts(p, x, a, s, None)[2]
    return _per_class(p, logj)


def _per_class(p: Params, logj: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(logj[..., None, :] + p.class_logmask, -1) - torch.logsumexp(logj, -1, keepdim=True)


def _score(p, x, a, s, yi):
    z, inv_var, logj = parts(p, x, a, s, yi)
    r = _softmax(logj)
    return -_rotate_back(r[..., None] * z * inv_var, p)


def _posterior_mean(p, x, a, s, yi):
    z, inv_var, logj = parts(p, x, a, s, yi)
    r = _softmax(logj)
    gain = a[..., None, None] * p.evals * inv_var
    return r @ p.means + _rotate_back(r[..., None] * gain * z, p)


def _posterior_cov(p, x, a, s, yi):
    z, inv_var, logj = parts(p, x, a, s, yi)
    r = _softmax(logj)
    a3 = a[..., None, None]
    s3 = s[..., None, None]
    mk = p.means + torch.einsum("...ke,kde->...kd", a3 * p.evals * inv_var * z, p.evecs)  # (…,K,D)
    m = (r[..., None] * mk).sum(-2)
    within = torch.einsum("...ke,kde,kfe->...df", r[..., None] * p.evals * s3 * s3 * inv_var, p.evecs, p.evecs)
    dev = mk - m[..., None, :]
    between = torch.einsum("...k,...kd,...ke->...de", r, dev, dev)
    return within + between


def _log_joint(p, x, a, s, yi):
    return parts(p, x, a, s, yi)[2]


_REFERENCE = {"log_joint": _log_joint, "log_prob": _log_prob, "responsibilities": _responsibilities, "log_class_posterior": _log_class_posterior,
              "score": _score, "posterior_mean": _posterior_mean, "posterior_cov": _posterior_cov}


def reference(p: Params, kind: str, x: torch.Tensor, a: torch.Tensor, s: torch.Tensor, yi: torch.Tensor | None):
    """The per-component path, in row chunks for large 2-D batches."""
    fn = _REFERENCE[kind]
    n = x.shape[0] if x.ndim == 2 else 0
    if x.ndim != 2 or n <= _CHUNK:
        return fn(p, x, a, s, yi)
    outs = []
    for lo in range(0, n, _CHUNK):
        hi = min(lo + _CHUNK, n)
        pick = lambda v: v[lo:hi] if (v is not None and v.ndim >= 1 and v.shape[0] == n) else v
        outs.append(fn(p, x[lo:hi], pick(a), pick(s), pick(yi)))
    return torch.cat(outs)


def _one_value(v: torch.Tensor) -> bool:
    return v.numel() == 1 or bool((v == v.reshape(-1)[0]).all())


def _tables(mixture, a: float, s: float, dtype: torch.dtype, device: torch.device) -> dense.Tables | None:
    cache = mixture._dense
    key = (a, s, dtype, str(device))
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    p = params(mixture, torch.float64, torch.device("cpu"))
    t = dense.build(p.means, p.evals, p.evecs, p.log_weights, a, s, dtype, device)
    cache[key] = t
    if len(cache) > _TABLES_KEPT:
        cache.popitem(last=False)
    return t


_DENSE_WANT = {"log_prob": "log_prob", "responsibilities": "log_joint", "log_class_posterior": "log_joint",
               "score": "score", "posterior_mean": "mean"}


def _dense(mixture, kind, x, a, s, yi, forced: bool):
    """The dense path with per-point fallback, or None where it does not apply."""
    why = None
    if kind not in _DENSE_WANT:
        why = f"{kind} has no dense form"
    elif x.numel() == 0 or a.numel() == 0 or s.numel() == 0:
        why = "no points"
    elif x.dtype not in (torch.float32, torch.float64):
        why = f"dtype {x.dtype}"
    elif not _one_value(a) or not _one_value(s):
        why = "alpha and sigma differ between points"
    elif x.requires_grad and torch.is_grad_enabled():
        why = "x requires a gradient"
    elif not forced and mixture._dim > DENSE_MAX_DIM:
        why = f"dimension {mixture._dim} > {DENSE_MAX_DIM}"
    elif not forced and x.numel() // mixture._dim * mixture.num_components < DENSE_MIN_WORK:
        why = "batch too small"
    t = None
    if why is None:
        t = _tables(mixture, float(a.reshape(-1)[0]), float(s.reshape(-1)[0]), x.dtype, x.device)
        if t is None:
            why = "components too spread for few feature groups"
    if why is not None:
        if forced:
            raise ValueError(f"engine='dense' does not apply here: {why}")
        return None
    batch = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    p = params(mixture, x.dtype, x.device)
    logmask = None
    if yi is not None and kind in ("log_prob", "score", "posterior_mean"):
        logmask = p.class_logmask[yi.expand(batch).reshape(-1)]
    out, bad = dense.run(t, flat, _DENSE_WANT[kind], logmask)
    if kind == "log_prob" and yi is not None:
        out = out - torch.logsumexp(p.log_weights + logmask, -1)
    if bool(bad.any()):
        rows = bad.nonzero()[:, 0]
        sub_y = None if logmask is None else yi.expand(batch).reshape(-1)[rows]
        ref_kind = {"log_joint": "log_joint", "log_prob": "log_prob", "score": "score", "mean": "posterior_mean"}[_DENSE_WANT[kind]]
        out[rows] = reference(p, ref_kind, flat[rows], a.reshape(-1)[0], s.reshape(-1)[0], sub_y)
    if kind == "responsibilities":
        out = _softmax(out)
    elif kind == "log_class_posterior":
        out = _per_class(p, out)
    return out.reshape(*batch, *out.shape[1:])


def evaluate(mixture, kind: str, x: torch.Tensor, a: torch.Tensor, s: torch.Tensor, yi: torch.Tensor | None,
             engine: str = "auto") -> torch.Tensor:
    """``kind`` of the law of a X + s Z (X ~ ``mixture``) at checked points x (…, D), optionally given class indices yi."""
    if engine != "reference":
        out = _dense(mixture, kind, x, a, s, yi, forced=engine == "dense")
        if out is not None:
            return out
    return reference(params(mixture, x.dtype, x.device), kind, x, a, s, yi)
