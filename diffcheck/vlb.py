"""The DDPM variational bound of a model, term by term (Ho et al. 2020, Eq. 5; Nichol & Dhariwal 2021, Sec. 2-3).

L = L_T + sum_{i=2}^N L_{i-1} + L_0 on a ``Schedule`` whose first time is the data
(sigma(t_0) = 0, alpha(t_0) = 1), in nats per sample:
    L_T     = KL(q(x_N | x_0) || N(0, prior_std^2 I)),
    L_{i-1} = KL(q(x_{i-1} | x_i, x_0) || p(x_{i-1} | x_i))   for step i >= 2,
    L_0     = -log p(x_0 | x_1)                               (step 1, the decoder),
with p(x_{i-1} | x_i) = N(mu, Sigma), mu = coef1 x0_hat(x_i) + coef2 x_i from any
parameterization of the model. The decoder is Gaussian for continuous data or the
discretized Gaussian of Eq. 13 for 8-bit data scaled to [-1, 1]. Variances: DDPM's
fixed ``"small"`` (beta_tilde) and ``"large"`` (beta), Improved DDPM's ``"learned"``
range (see ``diffcheck.variance``), or a tensor of per-step variances.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import torch
from tqdm import tqdm

from toy.validate import as_float_tensor, check_choice

from .param import PREDICTIONS, convert
from .process.discrete import Schedule
from .tensor import per_sample
from .variance import fixed_log_variance, learned_range, split_output, steps_tensor

__all__ = [
    "bits_per_dim",
    "normal_kl",
    "prior_kl",
    "posterior",
    "gaussian_nll",
    "discretized_log_likelihood",
    "discretized_nll",
    "check_data_schedule",
    "bound_term",
    "vlb_term",
    "vlb_terms",
]

_LOG_2PI = math.log(2.0 * math.pi)


def bits_per_dim(nats: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample nats as bits per dimension of the data x (B, ...)."""
    return nats / (x[0].numel() * math.log(2.0))


def _flat_sum(v: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape[0], -1).sum(-1)


def normal_kl(mean0: torch.Tensor, log_var0: Any, mean1: torch.Tensor, log_var1: Any) -> torch.Tensor:
    """Elementwise KL(N(mean0, exp(log_var0)) || N(mean1, exp(log_var1))) in nats (broadcasting)."""
    for name, m in (("mean0", mean0), ("mean1", mean1)):
        if not isinstance(m, torch.Tensor) or not m.is_floating_point():
            raise TypeError(f"{name} must be a floating tensor, got {type(m).__name__}")
    log_var0 = as_float_tensor(log_var0, "log_var0", dtype=mean0.dtype, device=mean0.device, finite=False)
    log_var1 = as_float_tensor(log_var1, "log_var1", dtype=mean0.dtype, device=mean0.device, finite=False)
    return 0.5 * (log_var1 - log_var0 + torch.exp(log_var0 - log_var1) - 1.0 + (mean0 - mean1) ** 2 * torch.exp(-log_var1))


def check_data_schedule(schedule: Schedule) -> Schedule:
    """Require a schedule whose first time is the data: sigma(t_0) = 0 and alpha(t_0) = 1."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule (see diffcheck.process.discretize), got {type(schedule).__name__}")
    if float(schedule.sigma[0]) != 0.0 or abs(float(schedule.alpha[0]) - 1.0) > 1e-12:
        raise ValueError(
            "schedule must start at the data (sigma(t_0) = 0, alpha(t_0) = 1) for a bound on x_0; "
            f"got alpha={float(schedule.alpha[0]):.6g}, sigma={float(schedule.sigma[0]):.6g} at t_0={float(schedule.t[0]):.6g}"
        )
    return schedule


def _data(x0: Any, name: str = "x0") -> torch.Tensor:
    if not isinstance(x0, torch.Tensor) or not x0.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor of shape (B, ...)")
    if x0.ndim < 2:
        raise ValueError(f"{name} must have a batch dimension, shape (B, ...), got {tuple(x0.shape)}")
    if not bool(torch.isfinite(x0).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x0


def prior_kl(schedule: Schedule, x0: torch.Tensor) -> torch.Tensor:
    """L_T = KL(q(x_N | x_0) || N(0, prior_std^2 I)) per sample, in nats."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule (see diffcheck.process.discretize), got {type(schedule).__name__}")
    x0 = _data(x0)
    a, s = schedule.alpha[-1].to(x0), schedule.sigma[-1].to(x0)
    p2 = schedule.process.prior_std ** 2
    per = 0.5 * (s * s / p2 + (a * x0) ** 2 / p2 - 1.0 + math.log(p2) - 2.0 * torch.log(s))
    return _flat_sum(per)


def posterior(schedule: Schedule, x0: torch.Tensor, xt: torch.Tensor, step: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and log-variance (per sample, -inf at step 1) of q(x_{i-1} | x_i, x_0) (Ho et al. 2020, Eq. 6-7)."""
    x0, xt = _data(x0), _data(xt, "xt")
    if xt.shape != x0.shape:
        raise ValueError(f"xt must have the shape of x0 {tuple(x0.shape)}, got {tuple(xt.shape)}")
    s = steps_tensor(step, schedule, x0) - 1
    c1 = per_sample(schedule.posterior_mean_coef1.to(x0)[s], x0)
    c2 = per_sample(schedule.posterior_mean_coef2.to(x0)[s], x0)
    return c1 * x0 + c2 * xt, torch.log(schedule.beta_tilde.to(x0)[s])


def gaussian_nll(x0: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """-log N(x_0; mean, exp(log_var)) per sample (a Gaussian decoder for continuous data), in nats."""
    log_var = torch.as_tensor(log_var, dtype=x0.dtype, device=x0.device)
    per = 0.5 * (_LOG_2PI + log_var + (x0 - mean) ** 2 * torch.exp(-log_var))
    return _flat_sum(per.expand_as(x0) if per.shape != x0.shape else per)


def _log1mexp(d: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(d)) for d <= 0, accurate at both ends."""
    return torch.where(d > -math.log(2.0), torch.log(-torch.expm1(d)), torch.log1p(-torch.exp(d)))


def _tanh_cdf(u: torch.Tensor) -> torch.Tensor:
    """The tanh approximation of the standard normal CDF used by the official DDPM code."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (u + 0.044715 * u**3)))


def _check_8bit(x: torch.Tensor) -> None:
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x0 contains NaN or infinite values")
    if bool((x < -1.0 - 1e-6).any()) or bool((x > 1.0 + 1e-6).any()):
        raise ValueError("x0 must be 8-bit data scaled to [-1, 1] for the discretized decoder; it has values outside [-1, 1]")
    level = (x + 1.0) * 127.5
    if bool(((level - torch.round(level)).abs() > 1e-3).any()):
        raise ValueError("x0 must be 8-bit data scaled to [-1, 1] (values 2k/255 - 1) for the discretized decoder")


def discretized_log_likelihood(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor, *, cdf: str = "exact") -> torch.Tensor:
    """Elementwise log P(bin of x) under N(mean, exp(log_scale)^2): bins x +- 1/255, end bins open (Ho et al. 2020, Eq. 13).

    ``cdf="exact"`` integrates the Gaussian exactly (log-CDF differences, stable in both
    tails); ``"tanh"`` is the official code's convention: the tanh approximation of the
    CDF and probabilities floored at 1e-12. Edge values are those beyond +-0.999, as there.
    """
    cdf = check_choice(cdf, "cdf", ("exact", "tanh"))
    _check_8bit(x)
    log_scale = as_float_tensor(log_scale, "log_scale", dtype=x.dtype, device=x.device, finite=False)
    inv = torch.exp(-log_scale)
    # bin edges from the integer level k, so that neighbouring bins share their edge to the last bit
    level = torch.round((x + 1.0) * 127.5)
    upper = inv * ((2.0 * level + 1.0) / 255.0 - 1.0 - mean)
    lower = inv * ((2.0 * level - 1.0) / 255.0 - 1.0 - mean)
    if cdf == "exact":
        log_below_upper = torch.special.log_ndtr(upper)
        log_above_lower = torch.special.log_ndtr(-lower)
        # Phi(b) - Phi(a) with a <= 0: mirror the bin when it lies right of the mean
        right = lower > 0
        a = torch.where(right, -upper, lower)
        b = torch.where(right, -lower, upper)
        lb = torch.special.log_ndtr(b)
        log_mass = lb + _log1mexp(torch.special.log_ndtr(a) - lb)
    else:
        cdf_upper, cdf_lower = _tanh_cdf(upper), _tanh_cdf(lower)
        log_below_upper = torch.log(cdf_upper.clamp(min=1e-12))
        log_above_lower = torch.log((1.0 - cdf_lower).clamp(min=1e-12))
        log_mass = torch.log((cdf_upper - cdf_lower).clamp(min=1e-12))
    return torch.where(x < -0.999, log_below_upper, torch.where(x > 0.999, log_above_lower, log_mass))


def discretized_nll(x0: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor, *, cdf: str = "exact") -> torch.Tensor:
    """-log p(x_0 | x_1) per sample for the discretized Gaussian decoder, in nats."""
    ll = discretized_log_likelihood(x0, mean, log_scale, cdf=cdf)
    return -_flat_sum(ll.expand_as(x0) if ll.shape != x0.shape else ll)


def bound_term(
    schedule: Schedule,
    x0: torch.Tensor,
    xt: torch.Tensor,
    step: Any,
    x0_hat: torch.Tensor,
    log_var: torch.Tensor,
    *,
    decoder: str = "gaussian",
    cdf: str = "exact",
) -> torch.Tensor:
    """L_{i-1} per sample given x_0, x_i and the model's x0_hat and log-variance (decoder NLL at step 1), in nats."""
    decoder = check_choice(decoder, "decoder", ("gaussian", "discretized"))
    cdf = check_choice(cdf, "cdf", ("exact", "tanh"))
    if decoder == "discretized":
        _check_8bit(x0)
    s = steps_tensor(step, schedule, x0) - 1
    c1 = per_sample(schedule.posterior_mean_coef1.to(x0)[s], x0)
    c2 = per_sample(schedule.posterior_mean_coef2.to(x0)[s], x0)
    mean = c1 * x0_hat + c2 * xt
    first = s == 0
    # q's log-variance; step 1 has none (a point mass) and its rows use the decoder instead
    q_log_var = torch.log(schedule.beta_tilde.to(x0)[s].clamp_min(torch.finfo(x0.dtype).tiny))
    kl = _flat_sum(normal_kl(c1 * x0 + c2 * xt, per_sample(q_log_var, x0), mean, log_var).expand_as(x0))
    if not bool(first.any()):
        return kl
    if decoder == "gaussian":
        nll = gaussian_nll(x0, mean, log_var)
    else:
        nll = discretized_nll(x0, mean, 0.5 * log_var, cdf=cdf)
    return torch.where(first, nll, kl)


def _log_variance(variance: Any, schedule: Schedule, s: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Per-sample log-variance (broadcasting against x0) of a fixed choice or a per-step tensor."""
    if isinstance(variance, str):
        check_choice(variance, "variance", ("small", "large", "learned"))
        return per_sample(fixed_log_variance(schedule, variance).to(x0)[s - 1], x0)
    if not isinstance(variance, torch.Tensor) or not variance.is_floating_point():
        raise TypeError('variance must be "small", "large", "learned" or a floating tensor of per-step variances')
    n = schedule.num_steps
    if variance.shape == (n,):
        v = per_sample(variance.to(x0)[s - 1], x0)
    elif variance.shape == (n, *x0.shape[1:]):
        v = variance.to(x0)[s - 1]
    else:
        raise ValueError(f"variance must have shape ({n},) or ({n}, {', '.join(map(str, x0.shape[1:]))}), got {tuple(variance.shape)}")
    if bool((v <= 0).any()) or not bool(torch.isfinite(v).all()):
        raise ValueError("variance must be positive and finite")
    return torch.log(v)


def vlb_term(
    model: Any,
    schedule: Schedule,
    x0: torch.Tensor,
    step: Any,
    generator: torch.Generator | None = None,
    *,
    variance: Any = "small",
    decoder: str = "gaussian",
    cdf: str = "exact",
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_{i-1} per sample at ``step`` i (an int or (B,) in 1..N; step 1 is the decoder term L_0), in nats.

    x_i = alpha_i x_0 + sigma_i eps with ``eps`` drawn from ``generator`` unless given;
    ``variance="learned"`` needs a learned-variance model (``diffcheck.variance``).
    """
    check_data_schedule(schedule)
    x0 = _data(x0)
    pred_kind = getattr(model, "prediction", None)
    if pred_kind not in PREDICTIONS:
        raise TypeError(f"model must have a 'prediction' attribute in {PREDICTIONS}, got {pred_kind!r}")
    s = steps_tensor(step, schedule, x0)
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    elif eps.shape != x0.shape:
        raise ValueError(f"eps must have the shape of x0 {tuple(x0.shape)}, got {tuple(eps.shape)}")
    a = schedule.alpha.to(x0)[s]
    sg = schedule.sigma.to(x0)[s]
    t = schedule.t.to(x0)[s]
    xt = per_sample(a, x0) * x0 + per_sample(sg, x0) * eps
    if isinstance(variance, str) and variance == "learned":
        pred, v_raw = split_output(model, xt, t)
        log_var = learned_range(v_raw, schedule, s)
    else:
        log_var = _log_variance(variance, schedule, s, x0)
        pred = model(xt, t)
    x0_hat = convert(pred, xt, a, sg, pred_kind, "x0")
    return bound_term(schedule, x0, xt, s, x0_hat, log_var, decoder=decoder, cdf=cdf)


def vlb_terms(
    model: Any,
    schedule: Schedule,
    x0: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    variance: Any = "small",
    decoder: str = "gaussian",
    cdf: str = "exact",
    progress: bool = False,
) -> torch.Tensor:
    """Every term of the bound per sample, shape (B, N + 1): column i - 1 is step i (L_0 first), the last L_T.

    Their sum over the last axis is the bound in nats; ``bits_per_dim`` converts it.
    One model evaluation per step, each with fresh noise from ``generator``.
    """
    check_data_schedule(schedule)
    x0 = _data(x0)
    n = schedule.num_steps
    cols = []
    for i in tqdm(range(1, n + 1), desc="vlb", file=sys.stderr, disable=not progress, leave=False):
        cols.append(vlb_term(model, schedule, x0, i, generator, variance=variance, decoder=decoder, cdf=cdf))
    cols.append(prior_kl(schedule, x0))
    return torch.stack(cols, -1)
