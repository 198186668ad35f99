"""Dense evaluation of a noised mixture in low dimension: every component's log-density as one matrix product.

For component k of the law of alpha X + sigma Z, with mean mu_k = alpha m_k, precision P_k = (alpha^2 S_k +
sigma^2 I)^-1 and offset h_k = log pi_k - 1/2 log det(alpha^2 S_k + sigma^2 I) - D/2 log 2 pi,

    log pi_k N_k(x) = h_k - 1/2 (y - d_k)^T P_k (y - d_k),   y = x - c,  d_k = mu_k - c,

is linear in the quadratic features phi(y) = (y_i y_j, y_i): for a batch of points it is W^T phi(Y) + const
with a features x K coefficient table W. A logsumexp gives log p; one more product, T @ responsibilities,
gives every responsibility-weighted affine map at once: the score sum_k r_k P_k (mu_k - x) and the posterior
mean sum_k r_k (m_k + alpha S_k P_k (x - mu_k)). Work arrays are laid out (K, points), so that reductions over
components run along contiguous memory.

Expanding the quadratic form cancels: its terms are of size |P| (|y| + |d_k|)^2 while the result is
q_k = (y - d_k)^T P_k (y - d_k). Components are therefore put into groups with a centre c each, so that
lambda_max(P_k) |mu_k - c|^2 <= SPREAD for every member (features are built once per group), and every point
carries a rounding bound: with u the unit roundoff and F the number of features, the computed log pi_k N_k(x)
is off by at most about (F + 4) u sum_f |phi_f| |W_fk| (plus the magnitudes summed into the constant). Where the
responsibility-weighted bound exceeds 2^BITS u (1 + sum_k r_k (q_k + |h_k|)) -- the rounding scale of the
per-component evaluation, which works in each component's eigenbasis -- or where any component's bound exceeds
GUARD, the point is flagged, and the caller evaluates it by the per-component path instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Tables", "build", "run", "SPREAD", "BITS", "GUARD", "MAX_GROUPS"]

_LOG_2PI = math.log(2.0 * math.pi)
SPREAD = 64.0  # largest lambda_max(P_k) |mu_k - c|^2 within a group
BITS = 12  # bits the dense path may lose beyond the per-component path's rounding scale before a point falls back
GUARD = 0.05  # largest rounding bound on any one component's log-density (keeps negligible components negligible)
MAX_GROUPS = 6  # more groups than this: the per-component path is as fast, use it
CHUNK_BYTES = 1 << 20  # bytes of one (K, points) work array per thread: stays in a core's cache


@dataclass(frozen=True)
class Group:
    """Components lo:hi (in the tables' order) share the centre c of their features."""

    lo: int
    hi: int
    centre: torch.Tensor  # (D, 1)
    coef: torch.Tensor  # (K_g, F), F = D*D + D: log pi_k N_k = coef @ phi(x - c) + const
    check: torch.Tensor  # (2F, K_g): [2 coef^T; rho |coef|^T], weights of phi and |phi| in the margin
    coef_max: torch.Tensor  # (F,): max over members of |coef|


@dataclass(frozen=True)
class Tables:
    """Coefficient tables of one noised mixture (one alpha, sigma) in one dtype and device.

    A point passes when its margin, sum_k e_k (1 + 2 h_k + |h|_k - 2 log pi_k N_k(x) - rho B_k(x)), is >= 0, with
    e_k its unnormalised responsibilities, B_k the rounding bound's sum of magnitudes and rho = (F + 4) / 2^BITS;
    and when (F + 4) u max_k B_k(x) <= GUARD.
    """

    groups: tuple[Group, ...]
    order: torch.Tensor  # (K,) the mixture's component index of each row of the tables
    const: torch.Tensor  # (K, 1)
    right: dict  # want -> (rows, K): [affine table (score or mean; none for densities); margin row; one group's check]
    worst_max: float  # largest admissible sum_f |phi_f| coef_max_f
    shift: torch.Tensor  # (D, 1) origin of the affine maps: the score of component k is M_k (x - shift) + b_k


def _groups(mu: np.ndarray, lam: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Centres and members with lam_k |mu_k - c|^2 <= SPREAD (one group when the bounding box's centre serves all),
    or None when more than MAX_GROUPS are needed. The narrowest components seed groups first."""
    fits = lambda idx, c: bool((lam[idx] * ((mu[idx] - c) ** 2).sum(-1) <= SPREAD).all())
    box = lambda idx: 0.5 * (mu[idx].min(0) + mu[idx].max(0))
    every = np.arange(mu.shape[0])
    if fits(every, box(every)):
        return [(box(every), every)]
    near = lam[:, None] * ((mu[:, None, :] - mu[None, :, :]) ** 2).sum(-1) <= SPREAD  # near[j, k]: j fits the centre mu_k
    left = np.ones(mu.shape[0], dtype=bool)
    out = []
    for seed in np.lexsort((every, -lam)):
        if not left[seed]:
            continue
        if len(out) == MAX_GROUPS:
            return None
        members = np.flatnonzero(left & near[:, seed])
        out.append((box(members) if fits(members, box(members)) else mu[seed], members))
        left[members] = False
    return out


def build(means: torch.Tensor, evals: torch.Tensor, evecs: torch.Tensor, log_weights: torch.Tensor,
          alpha: float, sigma: float, dtype: torch.dtype, device: torch.device) -> Tables | None:
    """Tables for the law of alpha X + sigma Z (parameters in float64), or None when more than MAX_GROUPS are needed."""
    means, evals, evecs, log_w = (v.detach().cpu().numpy() for v in (means, evals, evecs, log_weights))
    k, d = means.shape
    var = alpha * alpha * evals + sigma * sigma  # (K, D) in each component's eigenbasis
    if (var <= 0).any():
        raise ValueError("the density is singular here: a component covariance has a zero eigenvalue and sigma = 0")
    mu = alpha * means
    found = _groups(mu, (1.0 / var).max(-1))
    if found is None:
        return None
    prec = np.einsum("kde,ke,kfe->kdf", evecs, 1.0 / var, evecs)  # P_k
    gain = np.einsum("kde,ke,kfe->kdf", evecs, alpha * evals / var, evecs)  # alpha S_k P_k
    logdet = np.log(var).sum(-1)
    h = log_w - 0.5 * logdet - 0.5 * d * _LOG_2PI
    h_abs = np.abs(log_w) + 0.5 * np.abs(logdet) + 0.5 * d * _LOG_2PI
    gamma = float(d * d + d + 4)
    rho = gamma / 2.0**BITS
    order = np.concatenate([members for _, members in found])
    tensor = lambda v: torch.from_numpy(np.ascontiguousarray(v)).to(dtype=dtype, device=device)
    groups, const, const_abs, lo = [], np.empty(k), np.empty(k), 0
    for c, members in found:
        dk = mu[members] - c
        p = prec[members]
        lin = np.einsum("kde,ke->kd", p, dk)  # P_k d_k
        coef = np.concatenate([-0.5 * p.reshape(len(members), d * d), lin], 1)
        coef_abs = np.concatenate([0.5 * np.abs(p).reshape(len(members), d * d), np.einsum("kde,ke->kd", np.abs(p), np.abs(dk))], 1)
        hi = lo + len(members)
        const[lo:hi] = -0.5 * (lin * dk).sum(-1) + h[members]
        const_abs[lo:hi] = 0.5 * np.einsum("kd,kde,ke->k", np.abs(dk), np.abs(p), np.abs(dk)) + h_abs[members]
        groups.append((lo, hi, c, coef, np.concatenate([2.0 * coef.T, rho * coef_abs.T]), coef_abs.max(0)))
        lo = hi
    shift = found[0][0] if len(found) == 1 else (np.exp(log_w)[:, None] * mu).sum(0)
    mu_o, prec_o, gain_o = mu[order], prec[order], gain[order]
    score = np.concatenate([-prec_o.reshape(k, d * d), np.einsum("kde,ke->kd", prec_o, mu_o - shift)], 1).T
    mean = np.concatenate([gain_o.reshape(k, d * d), means[order] + np.einsum("kde,ke->kd", gain_o, shift - mu_o)], 1).T
    margin = (1.0 + 2.0 * h[order] + h_abs[order] - 2.0 * const - rho * const_abs)[None, :]
    one = [groups[0][4]] if len(groups) == 1 else []
    right = {want: tensor(np.concatenate(([] if table is None else [table]) + [margin] + one))
             for want, table in (("log_prob", None), ("log_joint", None), ("score", score), ("mean", mean))}
    unit = torch.finfo(dtype).eps / 2
    return Tables(groups=tuple(Group(lo, hi, tensor(c[:, None]), tensor(coef), tensor(check), tensor(cmax))
                               for lo, hi, c, coef, check, cmax in groups),
                  order=torch.from_numpy(order).to(device), const=tensor(const[:, None]), right=right,
                  worst_max=GUARD / (gamma * unit) - float(const_abs.max()), shift=tensor(shift[:, None]))


def _features(xt: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """[phi(y); |phi(y)|] for y = x - centre, points laid out (D, n): phi = (y_i y_j for all i, j; y_i), shape (2F, n)."""
    d, n = xt.shape
    f = d * d + d
    buf = torch.empty(2 * f, n, dtype=xt.dtype, device=xt.device)
    y = torch.sub(xt, centre, out=buf[d * d:f])
    torch.mul(y[:, None, :], y[None, :, :], out=buf[:d * d].view(d, d, n))
    torch.abs(buf[:f], out=buf[f:])
    return buf


def _chunk(t: Tables, xt: torch.Tensor, want: str, logmask: torch.Tensor | None, out: torch.Tensor | None,
           bad: torch.Tensor):
    """One chunk of points laid out (D, n): the result goes to ``out`` ((D, n) or (n,)) or is returned, flags to ``bad``."""
    d, n = xt.shape
    f = d * d + d
    if len(t.groups) == 1:
        phis = [_features(xt, t.groups[0].centre)]
        y = phis[0][d * d:f]
        lj = torch.addmm(t.const, t.groups[0].coef, phis[0][:f])
    else:
        y = xt - t.shift
        lj = torch.empty(t.const.shape[0], n, dtype=xt.dtype, device=xt.device)
        phis = []
        for g in t.groups:
            phis.append(_features(xt, g.centre))
            torch.addmm(t.const[g.lo:g.hi], g.coef, phis[-1][:f], out=lj[g.lo:g.hi])
    if logmask is not None:
        lj += logmask
    mx = lj.amax(0)
    # exponents below log(tiny) + 1 are raised to it: exp then never returns a subnormal number (slow on CPUs),
    # and the weights so added are below K * 3 * tiny against a total of at least 1
    floor = math.log(torch.finfo(xt.dtype).tiny) + 1.0
    e = (lj - mx) if want == "log_joint" else lj.sub_(mx)
    e = e.clamp_min_(floor).exp_()
    total = e.sum(0)
    right = t.right[want]
    mixed = right @ e  # rows weighted by the unnormalised responsibilities e
    a = right.shape[0] - (1 + (2 * f if len(t.groups) == 1 else 0))
    margin = total + mixed[a]
    worst = None
    for g, phi in zip(t.groups, phis):
        part = mixed[a + 1:] if len(t.groups) == 1 else g.check @ e[g.lo:g.hi]
        margin -= (phi * part).sum(0)
        w = g.coef_max @ phi[f:]
        worst = w if worst is None else torch.maximum(worst, w)
    torch.logical_not((margin >= 0) & (worst <= t.worst_max), out=bad)
    if want == "log_joint":
        return lj.index_select(0, torch.argsort(t.order)).T
    if want == "log_prob":
        return torch.add(mx, torch.log_(total), out=out)
    m = (mixed[:d * d].view(d, d, n) * y[None, :, :]).sum(1).add_(mixed[d * d:a])
    return torch.div(m, total, out=out)


def chunk_size(k: int, itemsize: int) -> int:
    """Points per chunk: a (K, points) work array of CHUNK_BYTES per intra-op thread, a power of two in [2^11, 2^18]."""
    n = CHUNK_BYTES * torch.get_num_threads() // (k * itemsize)
    return 1 << min(18, max(11, n.bit_length() - 1))


def run(t: Tables, x: torch.Tensor, want: str, logmask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(result, flags) for points x (n, D): ``want`` is 'log_joint' (n, K), 'log_prob' (n,), 'score' or 'mean' (n, D).

    ``logmask`` (n, K), 0 or -inf, restricts each point to some components (class-conditional laws). ``flags``
    marks the points whose rounding bound says the per-component path must evaluate them.
    """
    n, d = x.shape
    xt = x.T.contiguous()
    mask = None if logmask is None else logmask[:, t.order].T
    bad = torch.empty(n, dtype=torch.bool, device=x.device)
    if want == "log_joint":
        out = torch.empty(n, t.const.shape[0], dtype=x.dtype, device=x.device)
    else:
        out = torch.empty(n, dtype=x.dtype, device=x.device) if want == "log_prob" else torch.empty(d, n, dtype=x.dtype, device=x.device)
    step = chunk_size(t.const.shape[0], x.element_size())
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        sub = None if mask is None else mask[:, lo:hi]
        if want == "log_joint":
            out[lo:hi] = _chunk(t, xt[:, lo:hi], want, sub, None, bad[lo:hi])
        else:
            _chunk(t, xt[:, lo:hi], want, sub, out[lo:hi] if want == "log_prob" else out[:, lo:hi], bad[lo:hi])
    return (out if out.shape[0] == n else out.T.contiguous()), bad
