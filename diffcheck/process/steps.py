"""The Gaussian facts of one step t -> s of a process, named after DDPM's symbols (Ho et al. 2020, Eq. 2, 6 and 7).

For x_t = alpha(t) x_0 + sigma(t) eps and s < t, the forward transition x_t | x_s is
N(alpha_ratio x_s, beta I) with alpha_ratio = alpha_t / alpha_s and
beta = sigma_t^2 - alpha_ratio^2 sigma_s^2, and the posterior x_s | x_t, x_0 is
N(posterior_mean_coef_x0 x_0 + posterior_mean_coef_xt x_t, beta_tilde I). For a VP process
(sigma^2 = 1 - alpha^2) these are DDPM's quantities on the step: alpha_ratio = sqrt(alpha_t)
(DDPM's alpha_t = 1 - beta_t), beta = beta_t, beta_tilde = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t,
with alpha_bar = alpha(t)^2; on a respaced grid they are those of the kept pair (t, s)
(Nichol & Dhariwal 2021, App. B). Every one is computed through the log-SNR difference
lambda_t - lambda_s, so that neighbouring steps lose no digits to cancellation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .base import Process

__all__ = ["Coefficients", "coefficients", "coefficient_table"]


@dataclass(frozen=True)
class Coefficients:
    """The Gaussian facts of one step from time t down to s < t, as floats (see the module docstring)."""

    t: float
    s: float
    alpha_t: float
    alpha_s: float
    sigma_t: float
    sigma_s: float
    alpha_ratio: float  # alpha_t / alpha_s: sqrt(alpha_t) of Ho et al. 2020 for VP
    beta: float  # forward transition variance sigma_t^2 - alpha_ratio^2 sigma_s^2: beta_t of Ho et al. 2020, Eq. 2, for VP
    beta_tilde: float  # posterior variance of x_s | x_t, x_0: beta_tilde_t of Ho et al. 2020, Eq. 7
    posterior_mean_coef_x0: float  # the posterior mean's weight on x_0 (Ho et al. 2020, Eq. 7)
    posterior_mean_coef_xt: float  # the posterior mean's weight on x_t (Ho et al. 2020, Eq. 7)
    f_t: float  # SDE drift coefficient and squared diffusion at t and s (Song et al. 2021, Eq. 5)
    g2_t: float
    f_s: float
    g2_s: float


def coefficient_table(process: Process, grid: torch.Tensor) -> list[Coefficients]:
    """Coefficients of every step of a decreasing grid, from one vectorised evaluation of the process."""
    g = torch.as_tensor(grid, dtype=torch.float64)
    la, ls, lam = process.log_alpha(g).tolist(), process.log_sigma(g).tolist(), process.log_snr(g).tolist()
    f, g2 = process.f(g).tolist(), process.g2(g).tolist()
    t = g.tolist()
    out = []
    for i in range(len(t) - 1):
        j = i + 1
        # 1 - exp(lambda_t - lambda_s) = beta / sigma_t^2 = beta_tilde / sigma_s^2, the step's relative drop in SNR
        drop = -math.expm1(lam[i] - lam[j]) if math.isfinite(lam[j]) else 1.0
        sigma_t, sigma_s = math.exp(ls[i]), math.exp(ls[j])
        alpha_t, alpha_s = math.exp(la[i]), math.exp(la[j])
        alpha_ratio = math.exp(la[i] - la[j])
        out.append(Coefficients(
            t=t[i], s=t[j], alpha_t=alpha_t, alpha_s=alpha_s, sigma_t=sigma_t, sigma_s=sigma_s,
            alpha_ratio=alpha_ratio, beta=sigma_t * sigma_t * drop, beta_tilde=sigma_s * sigma_s * drop,
            posterior_mean_coef_x0=alpha_s * drop,
            posterior_mean_coef_xt=alpha_ratio * math.exp(2.0 * (ls[j] - ls[i])) if sigma_s > 0 else 0.0,
            f_t=f[i], g2_t=g2[i], f_s=f[j], g2_s=g2[j],
        ))
    return out


def coefficients(process: Process, t: torch.Tensor, s: torch.Tensor) -> Coefficients:
    """Coefficients of the step t -> s, computed through log-SNR differences (no cancellation)."""
    tt = torch.stack([torch.as_tensor(t, dtype=torch.float64), torch.as_tensor(s, dtype=torch.float64)])
    return coefficient_table(process, tt)[0]
