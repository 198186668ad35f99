"""Exact conditionals of a Gaussian-mixture video: the Bayes-optimal conditional denoiser and log q(x^a | z_t).

Split the coordinates of x ~ sum_k pi_k N(mu_k, S_k) into known ones x^a and free ones x^b. Given x^a, component k
has weight w_k(x^a) ∝ pi_k N(x^a; mu_k^a, S_k^aa) and the free coordinates are N(m_k(x^a), C_k) with
m_k = mu_k^b + S_k^ba (S_k^aa)^-1 (x^a − mu_k^a) and C_k = S_k^bb − S_k^ba (S_k^aa)^-1 S_k^ab. Noising only the free
coordinates, z^b = alpha x^b + sigma eps, keeps a mixture: component k moves to N(alpha m_k, alpha² C_k + sigma² I),
so E[x^b | z^b, x^a] and the conditional score are closed form for per-sample (alpha, sigma) and per-row x^a.
Since z^a given x^a is independent of everything else, E[x^b | z_t, x^a] = E[x^b | z^b_t, x^a]: this is the model a
conditional video sampler needs (Ho et al. 2022, Sec. 3.1) and the Bayes-optimal predictor of MCVD and RaMViD.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from toy.gaussian import complement, log_normal
from toy.mixture import GaussianMixture
from toy.validate import as_float_tensor, as_index_tensor, check_choice

from ..param import PREDICTIONS
from ..process.base import Process
from ..tensor import per_sample

__all__ = ["known_index", "ExactConditional", "log_known_given_noisy", "conditional_draws", "exact_conditional_sample"]

_LOG_2PI = math.log(2.0 * math.pi)


def known_index(known: Any, dim: int, *, allow_empty: bool = True) -> torch.Tensor:
    """Validate flat known coordinates: distinct, in [0, dim), leaving at least one free coordinate."""
    idx = as_index_tensor(known if known is not None else [], "known").reshape(-1)
    if idx.numel() == 0 and not allow_empty:
        raise ValueError("known must name at least one coordinate")
    if bool((idx < 0).any() or (idx >= dim).any()) or idx.unique().numel() != idx.numel():
        raise ValueError(f"known must be distinct coordinates in [0, {dim - 1}], got {idx.tolist()}")
    if idx.numel() >= dim:
        raise ValueError("known must leave at least one coordinate free")
    return idx.sort().values


class ExactConditional:
    """The exact model of the free coordinates given the known ones: ``model(z_b, t, cond=x_a)`` predicts ``prediction``.

    ``known`` holds flat coordinates of the mixture (empty: the unconditional model of the whole mixture). ``z_b``
    is (B, ...) with the free coordinates, in order, as its flattened values; ``cond`` the known values, (B, k) per
    row or (k,) shared; ``t`` a scalar or per-sample (B,).
    """

    def __init__(self, mixture: GaussianMixture, process: Process, known: Any = (), prediction: str = "eps") -> None:
        if not isinstance(mixture, GaussianMixture):
            raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
        if not isinstance(process, Process):
            raise TypeError(f"process must be a Process, got {type(process).__name__}")
        self.mixture = mixture
        self.process = process
        self.prediction = check_choice(prediction, "prediction", PREDICTIONS)
        self.known = known_index(known, mixture.dim)
        self.free = complement(self.known, mixture.dim)
        covs = mixture.covs.to(torch.float64)
        means = mixture.means.to(torch.float64)
        a, b = self.known, self.free
        s_bb = covs[:, b][:, :, b]
        if a.numel():
            s_aa = covs[:, a][:, :, a]
            s_ba = covs[:, b][:, :, a]
            chol, info = torch.linalg.cholesky_ex(s_aa)
            if bool((info != 0).any()):
                raise ValueError("the covariance of a component restricted to the known coordinates is singular")
            gain = torch.cholesky_solve(s_ba.transpose(-1, -2), chol).transpose(-1, -2)  # S_ba S_aa^-1, (K, b, a)
            cond_cov = s_bb - gain @ s_ba.transpose(-1, -2)
            self._chol_aa = chol
            self._gain = gain
        else:
            cond_cov = s_bb
            self._chol_aa = None
            self._gain = None
        cond_cov = 0.5 * (cond_cov + cond_cov.transpose(-1, -2))
        evals, evecs = torch.linalg.eigh(cond_cov)
        self._evals = evals.clamp_min(0.0)  # (K, b)
        self._evecs = evecs  # (K, b, b)
        self._means = means
        self._log_weights = torch.log(mixture.weights.to(torch.float64))

    def __repr__(self) -> str:
        return f"ExactConditional({self.mixture!r}, {self.process!r}, known={self.known.numel()} coords, prediction={self.prediction!r})"

    def with_prediction(self, prediction: str) -> "ExactConditional":
        """The same conditional model predicting another quantity."""
        out = object.__new__(ExactConditional)
        out.__dict__.update(self.__dict__)
        out.prediction = check_choice(prediction, "prediction", PREDICTIONS)
        return out

    # -- the law of the free coordinates given x^a -----------------------------------------------------------
    def given(self, cond: Any, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(log w_k(x^a) of shape (B, K), m_k(x^a) of shape (K, B, b)) for known values ``cond``."""
        memo = getattr(self, "_memo", None)
        key = (id(cond), getattr(cond, "_version", None), batch)
        if memo is not None and memo[0] == key and memo[1] is cond:
            return memo[2]  # a sampler passes the same cond at every step
        out = self._given(cond, batch)
        self._memo = (key, cond, out)
        return out

    def _given(self, cond: Any, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        mb = self._means[:, self.free]  # (K, b)
        k = self.known.numel()
        if k == 0:
            if cond is not None and torch.as_tensor(cond).numel() != 0:
                raise ValueError("cond was given but this model has no known coordinates")
            return self._log_weights.expand(batch, -1), mb[:, None, :].expand(-1, batch, -1)
        if cond is None:
            raise ValueError(f"cond must hold the {k} known values")
        v = as_float_tensor(cond, "cond", dtype=torch.float64)
        v = v.reshape(v.shape[0], -1) if v.ndim > 1 else v[None].expand(batch, -1)
        if v.shape != (batch, k):
            raise ValueError(f"cond must have shape ({batch}, {k}) or ({k},), got {tuple(torch.as_tensor(cond).shape)}")
        resid = v[None] - self._means[:, None, self.known]  # (K, B, a)
        mean = mb[:, None, :] + torch.matmul(resid, self._gain.transpose(-1, -2))  # (K, B, b)
        w = torch.linalg.solve_triangular(self._chol_aa, resid.transpose(-1, -2), upper=False)  # (K, a, B)
        logdet = 2.0 * torch.log(torch.diagonal(self._chol_aa, dim1=-2, dim2=-1)).sum(-1)
        logn = -0.5 * ((w * w).sum(-2) + logdet[:, None] + k * _LOG_2PI)  # (K, B)
        return torch.log_softmax(self._log_weights[:, None] + logn, 0).T, mean

    @staticmethod
    def _time(t: Any, z: torch.Tensor) -> torch.Tensor:
        tt = torch.as_tensor(t, dtype=torch.float64)
        if tt.ndim > 1 or (tt.ndim == 1 and tt.shape[0] != z.shape[0]):
            raise ValueError(f"t must be a scalar or have shape ({z.shape[0]},), got {tuple(tt.shape)}")
        return tt

    def _parts(self, z: torch.Tensor, t: Any, cond: Any):
        if not isinstance(z, torch.Tensor) or not z.is_floating_point() or z.ndim < 2:
            raise TypeError("x must be a floating tensor of shape (B, ...)")
        flat = z.reshape(z.shape[0], -1).to(torch.float64)
        if flat.shape[1] != self.free.numel():
            raise ValueError(f"x has {flat.shape[1]} values per sample but there are {self.free.numel()} free coordinates")
        tt = self._time(t, flat)
        alpha, sigma = self.process.alpha(tt).to(flat), self.process.sigma(tt).to(flat)
        if tt.ndim:
            alpha, sigma = alpha[:, None], sigma[:, None]  # (B, 1) against (K, B, b)
        logw, m = self.given(cond, flat.shape[0])
        u = self._evecs  # (K, b, b), columns are eigenvectors
        z_rot = torch.matmul(flat, u)  # (K, B, b): U_k^T z
        m_rot = torch.matmul(m, u)
        var = alpha * alpha * self._evals[:, None, :] + sigma * sigma  # (K, B|1, b)
        diff = z_rot - alpha * m_rot
        logn = -0.5 * ((diff * diff / var).sum(-1) + torch.log(var).sum(-1) + var.shape[-1] * _LOG_2PI)  # (K, B)
        r = torch.softmax(logw.T + logn, 0)  # (K, B)
        return flat, alpha, m, diff, var, r

    def x0(self, z: torch.Tensor, t: Any, cond: Any = None) -> torch.Tensor:
        """E[x^b_0 | z^b_t = z, x^a = cond]."""
        flat, alpha, m, diff, var, r = self._parts(z, t, cond)
        shift = torch.matmul(alpha * self._evals[:, None, :] * diff / var, self._evecs.transpose(-1, -2))  # rotate back
        return (r[..., None] * (m + shift)).sum(0).to(z.dtype).reshape(z.shape)

    def score(self, z: torch.Tensor, t: Any, cond: Any = None) -> torch.Tensor:
        """grad_z log q(z^b_t = z | x^a = cond)."""
        flat, _, _, diff, var, r = self._parts(z, t, cond)
        comp = -torch.matmul(diff / var, self._evecs.transpose(-1, -2))
        return (r[..., None] * comp).sum(0).to(z.dtype).reshape(z.shape)

    def eps(self, z: torch.Tensor, t: Any, cond: Any = None) -> torch.Tensor:
        """E[eps^b | z^b_t = z, x^a = cond] = −sigma(t) times the conditional score."""
        tt = self._time(t, z)
        return -per_sample(self.process.sigma(tt), z) * self.score(z, tt, cond)

    def v(self, z: torch.Tensor, t: Any, cond: Any = None) -> torch.Tensor:
        """E[v | z, x^a] = alpha E[eps | z, x^a] − sigma E[x_0 | z, x^a]."""
        tt = self._time(t, z)
        return per_sample(self.process.alpha(tt), z) * self.eps(z, tt, cond) - per_sample(self.process.sigma(tt), z) * self.x0(z, tt, cond)

    def __call__(self, z: torch.Tensor, t: Any, cond: Any = None) -> torch.Tensor:
        return getattr(self, self.prediction)(z, t, cond)


def log_known_given_noisy(mixture: GaussianMixture, process: Process, z: torch.Tensor, t: Any, known: Any, x_a: torch.Tensor) -> torch.Tensor:
    """log q(x^a | z_t) for the full noisy vector z (B, D) at a scalar time t, differentiable in z (Ho et al. 2022, Sec. 3.1).

    x_0 | z_t is the mixture of N(m_k(z), P_k) with responsibilities r_k(z), m_k = mu_k + alpha S_k V_k^-1 (z − alpha mu_k),
    P_k = S_k − alpha² S_k V_k^-1 S_k and V_k = alpha² S_k + sigma² I; its marginal on the known coordinates is
    sum_k r_k(z) N(x^a; m_k^a(z), P_k^aa).
    """
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    idx = known_index(known, mixture.dim, allow_empty=False)
    tt = torch.as_tensor(t, dtype=torch.float64)
    if tt.ndim != 0:
        raise ValueError("t must be a scalar here")
    if z.ndim != 2 or z.shape[1] != mixture.dim:
        raise ValueError(f"z must have shape (B, {mixture.dim}), got {tuple(z.shape)}")
    x_a = as_float_tensor(x_a, "x_a", dtype=z.dtype)
    if x_a.shape != (z.shape[0], idx.numel()):
        raise ValueError(f"x_a must have shape ({z.shape[0]}, {idx.numel()}), got {tuple(x_a.shape)}")
    a, s = process.alpha(tt).to(z.dtype), process.sigma(tt).to(z.dtype)
    mu, cov = mixture.means.to(z.dtype), mixture.covs.to(z.dtype)
    eye = torch.eye(mixture.dim, dtype=z.dtype)
    v = a * a * cov + s * s * eye  # (K, D, D)
    log_r = torch.log(mixture.weights.to(z.dtype)) + log_normal(z[:, None, :], a * mu, v)  # (B, K)
    log_r = torch.log_softmax(log_r, -1)
    gain = torch.linalg.solve(v, cov).transpose(-1, -2)  # S_k V_k^-1 (both symmetric)
    m = mu + a * torch.einsum("kde,nke->nkd", gain, z[:, None, :] - a * mu)  # (B, K, D)
    p = cov - a * a * gain @ cov
    p = 0.5 * (p + p.transpose(-1, -2))
    p_aa = p[:, idx][:, :, idx]
    comp = log_normal(x_a[:, None, :], m[:, :, idx], p_aa)  # (B, K)
    return torch.logsumexp(log_r + comp, -1)


def exact_conditional_sample(mixture: GaussianMixture, process: Process, known: Any, x_a: torch.Tensor, x: torch.Tensor, grid: Any, *,
                             sampler: Callable, prediction: str = "eps", **sampler_options: Any) -> torch.Tensor:
    """The exact conditional sampler: ``sampler(model, process, x_b, grid, ...)`` on ``ExactConditional`` given x^a per row.

    ``x`` is the start of whole videos (B, ...), of which the free coordinates are used; ``x_a`` is (B, k). Returns
    whole videos shaped like ``x`` with x^a at the known coordinates.
    """
    model = ExactConditional(mixture, process, known, prediction)
    flat = x.reshape(x.shape[0], -1)
    if flat.shape[1] != mixture.dim:
        raise ValueError(f"x has {flat.shape[1]} values per sample, the mixture {mixture.dim}")
    x_a = as_float_tensor(x_a, "x_a", dtype=flat.dtype)
    if x_a.shape != (flat.shape[0], model.known.numel()):
        raise ValueError(f"x_a must have shape ({flat.shape[0]}, {model.known.numel()}), got {tuple(x_a.shape)}")
    out = torch.empty_like(flat)
    out[:, model.free] = sampler(model, process, flat[:, model.free], grid, cond=x_a, **sampler_options).reshape(flat.shape[0], -1)
    out[:, model.known] = x_a
    return out.reshape(x.shape)


def conditional_draws(mixture: GaussianMixture, known: Any, x_a: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One exact draw of the whole vector given x^a per row of ``x_a`` (B, k): the reference a conditional sampler must match."""
    idx = known_index(known, mixture.dim, allow_empty=False)
    x_a = as_float_tensor(x_a, "x_a", dtype=mixture.dtype)
    if x_a.ndim != 2 or x_a.shape[1] != idx.numel():
        raise ValueError(f"x_a must have shape (B, {idx.numel()}), got {tuple(x_a.shape)}")
    return mixture.conditional_sample(idx, x_a, generator)
