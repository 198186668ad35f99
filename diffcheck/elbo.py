"""The bound on Gaussian-mixture data in closed form: exact terms given x_0 or x_t, expectations by Monte Carlo with standard errors.

On mixture data the reverse model with the exact posterior mean E[x_{i-1} | x_i] and a
Gaussian covariance S_i has, given x_i, a closed-form expected KL:
Cov(x_{i-1} | x_i) = beta_tilde_i I + c_i^2 Cov(x_0 | x_i), c_i = posterior_mean_coef1
(Ho et al. 2020, Eq. 7 composed with the exact posterior of x_0), and the best S_i is
beta_tilde_i I + c_i^2 E Cov(x_0 | x_i) (restricted to isotropic, diagonal or full). The
prior term L_T is exact from the mixture's moments; the other terms are Monte Carlo
averages of closed forms over x_i ~ p_i, with their standard errors. The continuous-time
bound of the reverse SDE (Song et al. 2021b) is a quadrature in t of such averages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from toy.mixture import GaussianMixture
from toy.validate import as_float_tensor, check_choice, check_float, check_int, check_positive

from .param import predict
from .process.base import Process
from .process.discrete import Schedule
from .vlb import check_data_schedule

__all__ = [
    "Estimate",
    "Bound",
    "prior_term",
    "reverse_covariance",
    "mean_posterior_cov",
    "reverse_variance",
    "optimal_covariance",
    "optimal_bound",
    "entropy_mc",
    "entropy_grid",
    "sde_bound",
]

_LOG_2PI = math.log(2.0 * math.pi)
_CHUNK = 200_000  # points per batch of posterior covariances


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo (or quadrature) value with its standard error (or error bound)."""

    value: float
    se: float

    def __str__(self) -> str:
        return f"{self.value:.6g} +- {self.se:.2g}"


@dataclass(frozen=True)
class Bound:
    """The bound's terms in nats: ``terms[i - 1]`` is step i (L_0 first), ``terms[N]`` is L_T; ``se`` their standard errors."""

    terms: torch.Tensor
    se: torch.Tensor
    covariances: torch.Tensor

    @property
    def total(self) -> float:
        """The bound, nats."""
        return float(self.terms.sum())

    @property
    def total_se(self) -> float:
        """Its standard error (independent draws per term)."""
        return float(self.se.pow(2).sum().sqrt())


def _check(mixture: GaussianMixture, schedule: Schedule) -> None:
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    check_data_schedule(schedule)


def prior_term(mixture: GaussianMixture, schedule: Schedule) -> float:
    """E L_T = E KL(N(alpha_N x_0, sigma_N^2 I) || N(0, s^2 I)), exact from E|x_0|^2 = tr Cov + |mean|^2."""
    _check(mixture, schedule)
    d = mixture.dim
    a, s = float(schedule.alpha[-1]), float(schedule.sigma[-1])
    p2 = schedule.process.prior_std ** 2
    second = float(mixture.covariance().trace() + mixture.mean().pow(2).sum())
    return 0.5 * (d * s * s / p2 + a * a * second / p2 - d + d * math.log(p2) - 2 * d * math.log(s))


def reverse_covariance(mixture: GaussianMixture, schedule: Schedule, step: int, x: torch.Tensor) -> torch.Tensor:
    """Cov(x_{i-1} | x_i = x) = beta_tilde_i I + c_i^2 Cov(x_0 | x_i = x) (B, D, D), exact."""
    _check(mixture, schedule)
    step = check_int(step, "step", minimum=1, maximum=schedule.num_steps)
    a, s = schedule.alpha[step].to(x), schedule.sigma[step].to(x)
    cov = mixture.noised(a, s).posterior_cov(x)
    eye = torch.eye(mixture.dim, dtype=x.dtype, device=x.device)
    c = schedule.posterior_mean_coef1[step - 1].to(x)
    return schedule.beta_tilde[step - 1].to(x) * eye + c * c * cov


def _draw(mixture: GaussianMixture, schedule: Schedule, steps: torch.Tensor, n: int, generator):
    """For each step, n pairs (x_0, x_i): flat tensors of len(steps) * n points, and the per-point law."""
    a = schedule.alpha[steps].repeat_interleave(n).to(mixture.dtype)
    s = schedule.sigma[steps].repeat_interleave(n).to(mixture.dtype)
    law = mixture.noised(a, s)
    x, x0 = law.sample(None, generator, return_x0=True)
    return law, x, x0


def _chunks(num_steps: int, n: int):
    per = max(1, _CHUNK // n)
    for lo in range(1, num_steps + 1, per):
        yield torch.arange(lo, min(num_steps, lo + per - 1) + 1)


def mean_posterior_cov(
    mixture: GaussianMixture, schedule: Schedule, n: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """E Cov(x_0 | x_i) for every step i (N, D, D) by Monte Carlo over x_i ~ p_i, and the entries' standard errors."""
    _check(mixture, schedule)
    n = check_int(n, "n", minimum=2)
    means, ses = [], []
    for steps in _chunks(schedule.num_steps, n):
        law, x, _ = _draw(mixture, schedule, steps, n, generator)
        cov = law.posterior_cov(x).reshape(steps.numel(), n, mixture.dim, mixture.dim)
        means.append(cov.mean(1))
        ses.append(cov.std(1) / math.sqrt(n))
    return torch.cat(means), torch.cat(ses)


def reverse_variance(
    mixture: GaussianMixture, schedule: Schedule, n: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """E Var(x_{i-1} | x_i) per coordinate (N, D) = beta_tilde + c_i^2 E Var(x_0 | x_i), and its standard error."""
    mean, se = mean_posterior_cov(mixture, schedule, n, generator)
    c2 = schedule.posterior_mean_coef1.to(mean) ** 2
    diag = mean.diagonal(dim1=-2, dim2=-1)
    return schedule.beta_tilde.to(mean)[:, None] + c2[:, None] * diag, c2[:, None] * se.diagonal(dim1=-2, dim2=-1)


def _restrict(cov: torch.Tensor, kind: str) -> torch.Tensor:
    d = cov.shape[-1]
    eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
    if kind == "isotropic":
        return cov.diagonal(dim1=-2, dim2=-1).mean(-1)[..., None, None] * eye
    if kind == "diagonal":
        return torch.diag_embed(cov.diagonal(dim1=-2, dim2=-1))
    return cov


def optimal_covariance(
    mixture: GaussianMixture,
    schedule: Schedule,
    n: int,
    generator: torch.Generator | None = None,
    *,
    kind: str = "isotropic",
) -> torch.Tensor:
    """The reverse covariances (N, D, D) that minimise each step's expected KL given the exact mean, estimated from n draws.

    S_i = beta_tilde_i I + c_i^2 E Cov(x_0 | x_i), restricted to a multiple of I
    (``isotropic``, the trace over D), its ``diagonal``, or ``full``; step 1 is the
    Gaussian decoder's covariance E Cov(x_0 | x_1).
    """
    kind = check_choice(kind, "kind", ("isotropic", "diagonal", "full"))
    mean, _ = mean_posterior_cov(mixture, schedule, n, generator)
    eye = torch.eye(mixture.dim, dtype=mean.dtype, device=mean.device)
    c2 = schedule.posterior_mean_coef1.to(mean) ** 2
    full = schedule.beta_tilde.to(mean)[:, None, None] * eye + c2[:, None, None] * mean
    return _restrict(0.5 * (full + full.transpose(-1, -2)), kind)


def optimal_bound(
    mixture: GaussianMixture,
    schedule: Schedule,
    n: int,
    generator: torch.Generator | None = None,
    *,
    kind: str = "isotropic",
    covariances: torch.Tensor | None = None,
    average: str = "posterior",
) -> Bound:
    """The bound of the reverse model with the exact posterior mean and Gaussian covariances S_i, term by term.

    ``covariances`` (N, D, D) default to ``optimal_covariance`` estimated from an
    independent draw of n points per step, so that each term is an unbiased estimate of
    the bound of one fixed model (the bound holds for any S_i). Each step uses n fresh
    points. ``average="posterior"`` averages the closed-form E[KL | x_i] over x_i ~ p_i
    (using Cov(x_0 | x_i)); ``"pair"`` averages the closed-form KL given (x_0, x_i).
    Step 1 is the Gaussian decoder -log N(x_0; E[x_0 | x_1], S_1).
    """
    _check(mixture, schedule)
    n = check_int(n, "n", minimum=2)
    average = check_choice(average, "average", ("posterior", "pair"))
    N, d = schedule.num_steps, mixture.dim
    if covariances is None:
        covariances = optimal_covariance(mixture, schedule, n, generator, kind=kind)
    elif covariances.shape != (N, d, d):
        raise ValueError(f"covariances must have shape ({N}, {d}, {d}), got {tuple(covariances.shape)}")
    S = covariances.to(mixture.dtype)
    chol, info = torch.linalg.cholesky_ex(S)
    if bool((info != 0).any()):
        raise ValueError("covariances must be positive definite")
    S_inv = torch.cholesky_inverse(chol)
    logdet = 2.0 * torch.log(chol.diagonal(dim1=-2, dim2=-1)).sum(-1)
    bt = schedule.beta_tilde.to(S)
    c2 = schedule.posterior_mean_coef1.to(S) ** 2
    terms, ses = [], []
    for steps in _chunks(N, n):
        k = steps - 1
        law, x, x0 = _draw(mixture, schedule, steps, n, generator)
        inv = S_inv[k].repeat_interleave(n, 0)
        if average == "posterior":
            cov = law.posterior_cov(x)
            mahal = torch.einsum("bij,bji->b", inv, cov)  # E[(x0 - x0_hat)^T S^-1 (x0 - x0_hat) | x_i]
        else:
            r = x0 - law.posterior_mean(x)
            mahal = torch.einsum("bi,bij,bj->b", r, inv, r)
        mahal = mahal.reshape(steps.numel(), n)
        trace_inv = S_inv[k].diagonal(dim1=-2, dim2=-1).sum(-1)
        first = bt[k] == 0
        log_bt = torch.log(torch.where(first, torch.ones_like(bt[k]), bt[k]))
        kl = 0.5 * ((bt[k] * trace_inv - d + logdet[k] - d * log_bt)[:, None] + c2[k][:, None] * mahal)
        dec = 0.5 * ((d * _LOG_2PI + logdet[k])[:, None] + mahal)
        per = torch.where(first[:, None], dec, kl)
        terms.append(per.mean(1))
        ses.append(per.std(1) / math.sqrt(n))
    terms.append(torch.tensor([prior_term(mixture, schedule)], dtype=S.dtype))
    ses.append(torch.zeros(1, dtype=S.dtype))
    return Bound(torch.cat(terms), torch.cat(ses), S)


def entropy_mc(mixture: GaussianMixture, n: int, generator: torch.Generator | None = None) -> Estimate:
    """E[-log p_0(x_0)] by Monte Carlo of the exact log-density."""
    n = check_int(n, "n", minimum=2)
    lp = mixture.log_prob(mixture.sample(n, generator))
    return Estimate(float(-lp.mean()), float(lp.std() / math.sqrt(n)))


def entropy_grid(mixture: GaussianMixture, *, points_per_std: float = 6.0, width: float = 12.0) -> Estimate:
    """E[-log p_0(x_0)] for a mixture in 1 or 2 dimensions by the trapezoid rule.

    The grid covers ``width`` standard deviations beyond every component along every axis,
    with spacing 1/``points_per_std`` of the smallest component standard deviation, where
    the rule converges faster than any power of the spacing. The returned ``se`` is an
    error estimate: |integral of p - 1| times (1 + max |log p| on the grid).
    """
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    points_per_std = check_float(points_per_std, "points_per_std", low=0.0, low_open=True)
    width = check_float(width, "width", low=0.0, low_open=True)
    d = mixture.dim
    if d > 2:
        raise ValueError(f"entropy_grid needs a mixture of dimension 1 or 2, got {d}; use entropy_mc")
    covs, means = mixture.covs, mixture.means
    sd = covs.diagonal(dim1=-2, dim2=-1).sqrt()
    h = float(torch.linalg.eigvalsh(covs).min().sqrt()) / points_per_std
    axes = []
    for j in range(d):
        lo = float((means[:, j] - width * sd[:, j]).min())
        hi = float((means[:, j] + width * sd[:, j]).max())
        m = int(math.ceil((hi - lo) / h)) + 1
        axes.append(torch.linspace(lo, hi, m, dtype=torch.float64))
    cell = math.prod(float(ax[1] - ax[0]) for ax in axes)
    total_p, total_plogp, worst = 0.0, 0.0, 0.0
    if d == 1:
        rows = [axes[0][:, None]]
    else:
        rows = [torch.stack([torch.full_like(axes[1], float(v)), axes[1]], -1) for v in axes[0]]
        step = max(1, _CHUNK // axes[1].numel())
        rows = [torch.cat(rows[i:i + step]) for i in range(0, len(rows), step)]
    for pts in rows:
        lp = mixture.log_prob(pts.to(mixture.dtype))
        p = lp.exp()
        total_p += float(p.sum())
        total_plogp += float((p * lp).sum())
        worst = max(worst, float(lp.abs().max()))
    mass = total_p * cell
    return Estimate(-total_plogp * cell, abs(mass - 1.0) * (1.0 + worst))


def _gauss_legendre(lo: float, hi: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    u, w = np.polynomial.legendre.leggauss(k)
    return lo + (hi - lo) * (u + 1.0) / 2.0, w * (hi - lo) / 2.0


def sde_bound(
    mixture: GaussianMixture,
    process: Process,
    n: int,
    generator: torch.Generator | None = None,
    *,
    model: Any = None,
    nodes: int = 20,
    levels: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0),
) -> Estimate:
    """The continuous-time bound on -log p of the reverse SDE with score s, expected over the data (Song et al. 2021b, Thm. 1-2).

    B(s) = E[-log pi(x_1)] + int_0^1 E[1/2 g^2 (|s - grad log p_t|^2 - |grad log p_t|^2) - D f] dt
         = H(p_0) + KL(p_1 || pi) + 1/2 int_0^1 g^2 E|s - grad log p_t|^2 dt,
    the second line by de Bruijn's identity dH(p_t)/dt = D f + 1/2 g^2 E|grad log p_t|^2.
    It is tight for the exact score (``model=None``) up to the prior mismatch. The
    cross-entropy of the prior is exact; the integral is Gauss-Legendre with ``nodes``
    points on each piece between the times where sigma/alpha equals one of ``levels``,
    with n draws of x_t per node; the standard error is that of the Monte Carlo part.
    """
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    if not isinstance(process, Process):
        raise TypeError(f"process must be a Process, got {type(process).__name__}")
    n = check_int(n, "n", minimum=2)
    nodes = check_int(nodes, "nodes", minimum=1)
    levels = check_positive(as_float_tensor(levels, "levels", ndim=1), "levels").tolist()
    d = mixture.dim
    if float(process.sigma(0.0)) != 0.0:
        raise ValueError("process must start at the data (sigma(0) = 0) for a bound on -log p_0")
    lo_level, hi_level = float(process.edm_sigma(1e-12)), float(process.edm_sigma(1.0))
    cuts = [0.0] + [float(process.t_of_edm_sigma(v)) for v in levels if lo_level < v < hi_level] + [1.0]
    cuts = sorted(set(cuts))
    a1, s1 = float(process.alpha(1.0)), float(process.sigma(1.0))
    p2 = process.prior_std ** 2
    second = a1 * a1 * float(mixture.covariance().trace() + mixture.mean().pow(2).sum()) + d * s1 * s1
    cross = 0.5 * d * (_LOG_2PI + math.log(p2)) + 0.5 * second / p2
    total, var = cross, 0.0
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        ts, ws = _gauss_legendre(lo, hi, nodes)
        for t, w in zip(ts.tolist(), ws.tolist()):
            tt = torch.tensor(t, dtype=mixture.dtype)
            law = process.marginal(mixture, tt)
            x = law.sample(n, generator)
            a, sg = float(process.alpha(tt)), float(process.sigma(tt))
            # E|grad log p_t|^2 through its conditional expectation given x_t (lower variance):
            # grad log p_t = -E[eps | x_t]/sigma and E|E[eps | x]|^2 = D - (alpha/sigma)^2 E tr Cov(x_0 | x)
            fisher = (d - (a / sg) ** 2 * law.posterior_cov(x).diagonal(dim1=-2, dim2=-1).sum(-1)) / sg**2
            if model is None:
                miss = torch.zeros_like(fisher)
            else:
                s = predict(model, process, x, tt, "score").detach()
                miss = (s - law.score(x)).pow(2).sum(-1)
            g2, f = float(process.g2(tt)), float(process.f(tt))
            per = 0.5 * g2 * (miss - fisher) - d * f
            total += w * float(per.mean())
            var += (w * float(per.std())) ** 2 / n
    return Estimate(total, math.sqrt(var))
