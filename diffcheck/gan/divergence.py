"""Jensen-Shannon divergences of noised laws, by quadrature and by Monte Carlo (Wang et al. 2022, Theorems 1-2).

Everything rests on one pointwise identity: with r = log p - log q and m = (p + q)/2,
JSD(p, q) = E_m[g(r)], g(r) = log 2 - H(sigmoid(r)) = log 2 - softplus(r) + r sigmoid(r) >= 0,
H the binary entropy in nats (g is the f-divergence integrand of JSD written per unit of m). As
g >= 0, a Monte Carlo mean of g is strictly positive whenever p != q on a set of positive mass, and
its relative standard error does not blow up as p and q approach each other. g(r) = r^2/8 + O(r^4),
evaluated by its series for small |r| so that tiny divergences keep full relative precision.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch
from scipy import integrate, special

from toy.validate import as_float_tensor, check_float, check_int

from .noise import InstanceNoise

__all__ = [
    "jsd_term",
    "jsd_discrete",
    "jsd_monte_carlo",
    "jsd_quadrature",
    "jsd_gaussian_shift",
    "jsd_gaussian_shift_grad",
    "point_mass_jsd",
    "point_mass_jsd_grad",
]

_LOG2 = math.log(2.0)
# Taylor coefficients of g(r) = log 2 - softplus(r) + r sigmoid(r) in r^2, r^4, ..., r^10.
_SERIES = (1.0 / 8.0, -1.0 / 64.0, 1.0 / 576.0, -17.0 / 92160.0, 31.0 / 1612800.0)
_SMALL = 0.05
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)  # below this |r| the series (truncation ~ 1e-12 relative) beats the closed form's cancellation


def jsd_term(r: Any) -> Any:
    """g(r) = log 2 - softplus(r) + r sigmoid(r) for a torch tensor or numpy array of log-ratios r (elementwise)."""
    if isinstance(r, torch.Tensor):
        a = r.abs()
        direct = _LOG2 - torch.log1p(torch.exp(-a)) - a * torch.sigmoid(-a)
        r2 = a * a
        series = r2 * (_SERIES[0] + r2 * (_SERIES[1] + r2 * (_SERIES[2] + r2 * (_SERIES[3] + r2 * _SERIES[4]))))
        return torch.where(a < _SMALL, series, direct)
    a = np.abs(np.asarray(r, dtype=np.float64))
    direct = _LOG2 - np.log1p(np.exp(-a)) - a * special.expit(-a)
    r2 = a * a
    series = r2 * (_SERIES[0] + r2 * (_SERIES[1] + r2 * (_SERIES[2] + r2 * (_SERIES[3] + r2 * _SERIES[4]))))
    return np.where(a < _SMALL, series, direct)


def jsd_discrete(p: Any, q: Any) -> float:
    """JSD of two probability vectors on one support, from the definition (0 log 0 = 0), in nats."""
    p = as_float_tensor(p, "p", dtype=torch.float64, ndim=1)
    q = as_float_tensor(q, "q", dtype=torch.float64, ndim=1)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same length, got {p.shape[0]} and {q.shape[0]}")
    for v, name in ((p, "p"), (q, "q")):
        if bool((v < 0).any()) or abs(float(v.sum()) - 1.0) > 1e-12:
            raise ValueError(f"{name} must be a probability vector")
    m = 0.5 * (p + q)
    kl = lambda a: float(torch.where(a > 0, a * torch.log(a / m), torch.zeros_like(a)).sum())
    return 0.5 * kl(p) + 0.5 * kl(q)


def jsd_monte_carlo(p, q, n: int, generator: torch.Generator | None = None) -> tuple[float, float]:
    """(JSD estimate, standard error) from n draws of each law: JSD = (E_p g(r) + E_q g(r))/2, r = log p - log q.

    ``p`` and ``q`` are laws with ``sample(n, generator)`` and ``log_prob`` (GaussianMixture, or a
    NoisedMixture with scalar scales).
    """
    n = check_int(n, "n", minimum=2)
    yp = p.sample(n, generator)
    yq = q.sample(n, generator)
    gp = jsd_term(p.log_prob(yp) - q.log_prob(yp))
    gq = jsd_term(p.log_prob(yq) - q.log_prob(yq))
    value = 0.5 * float(gp.mean()) + 0.5 * float(gq.mean())
    se = 0.5 * math.sqrt(float(gp.var()) / n + float(gq.var()) / n)
    return value, se


def jsd_quadrature(
    log_p: Callable[[float], float],
    log_q: Callable[[float], float],
    lo: float,
    hi: float,
    points: Sequence[float] = (),
    *,
    epsabs: float = 1e-15,
    epsrel: float = 1e-11,
    limit: int = 400,
) -> tuple[float, float]:
    """(JSD, scipy's error estimate) of two 1D densities given by their log-densities, by adaptive quadrature of m g(r) on [lo, hi]."""
    lo = check_float(lo, "lo")
    hi = check_float(hi, "hi")
    if not hi > lo:
        raise ValueError(f"hi must exceed lo, got lo={lo}, hi={hi}")
    inside = sorted(float(x) for x in points if lo < float(x) < hi)

    def f(y: float) -> float:
        lp, lq = float(log_p(y)), float(log_q(y))
        lm = np.logaddexp(lp, lq) - _LOG2
        return float(math.exp(lm) * jsd_term(lp - lq))

    val, err = integrate.quad(f, lo, hi, points=inside or None, epsabs=epsabs, epsrel=epsrel, limit=limit)
    return float(val), float(err)


def _phi(u: float) -> float:
    return _INV_SQRT_2PI * math.exp(-0.5 * u * u)


def _shift_parts(delta: float):
    delta = check_float(delta, "delta", low=0.0)
    lo = -40.0
    mid = 0.5 * delta
    return delta, lo, mid


def jsd_gaussian_shift(delta: float) -> tuple[float, float]:
    """(JSD(N(0, 1), N(delta, 1)), error estimate) by quadrature, using the symmetry about delta/2: 2 int_{-inf}^{delta/2} m g."""
    delta, lo, mid = _shift_parts(delta)
    if delta == 0.0:
        return 0.0, 0.0

    def f(u: float) -> float:
        m = 0.5 * (_phi(u) + _phi(u - delta))
        return float(m * jsd_term(-delta * u + 0.5 * delta * delta))

    pts = [0.0] if lo < 0.0 < mid else None
    val, err = integrate.quad(f, min(lo, mid - 40.0), mid, points=pts, epsabs=1e-16, epsrel=1e-12, limit=400)
    return 2.0 * float(val), 2.0 * float(err)


def jsd_gaussian_shift_grad(delta: float) -> tuple[float, float]:
    """(d/d delta JSD(N(0, 1), N(delta, 1)), error estimate) = -(1/2) int v phi(v) softplus(-delta v - delta^2/2) dv."""
    delta = check_float(delta, "delta", low=0.0)

    def f(v: float) -> float:
        z = -delta * v - 0.5 * delta * delta
        return float(v * _phi(v) * np.logaddexp(0.0, z))

    pts = [x for x in (-delta / 2.0, 0.0) if -40.0 < x < 40.0]
    val, err = integrate.quad(f, -40.0, 40.0, points=pts or None, epsabs=1e-15, epsrel=1e-10, limit=400)
    return -0.5 * float(val), 0.5 * float(err)


def point_mass_jsd(theta: float, t: int, noise: InstanceNoise) -> tuple[float, float]:
    """(JSD, error) between delta_0 and delta_theta pushed through q(y | x, t) (the example of Wang et al. 2022, Theorem 1).

    For t > 0 both are N(., s_t^2) with means 0 and sqrt(abar_t) theta: the JSD of two unit Gaussians
    delta = sqrt(abar_t)|theta|/s_t apart (quadrature). For t = 0 they stay point masses, and the JSD
    follows from the definition on their atoms: log 2 for theta != 0, 0 at theta = 0.
    """
    theta = check_float(theta, "theta")
    t = int(noise.check_t(t))
    if t == 0:
        if theta == 0.0:
            return 0.0, 0.0
        return jsd_discrete([1.0, 0.0], [0.0, 1.0]), 0.0
    a, s = noise.scales(t)
    return jsd_gaussian_shift(float(a) * abs(theta) / float(s))


def point_mass_jsd_grad(theta: float, t: int, noise: InstanceNoise) -> tuple[float, float]:
    """(d JSD / d theta, error) for the example above; at t = 0 it is 0 for theta != 0 and undefined at theta = 0 (a jump)."""
    theta = check_float(theta, "theta")
    t = int(noise.check_t(t))
    if t == 0:
        if theta == 0.0:
            raise ValueError("at t = 0 the JSD jumps from 0 to log 2 at theta = 0: no derivative there")
        return 0.0, 0.0
    a, s = noise.scales(t)
    k = float(a) / float(s)
    g, err = jsd_gaussian_shift_grad(k * abs(theta))
    return math.copysign(k * g, theta) if theta != 0.0 else 0.0, k * err
