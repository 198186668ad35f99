"""Continuous-time processes of the score SDE paper (Song et al. 2021) and the cosine schedule."""

from __future__ import annotations

import math

import torch

from toy.validate import check_choice, check_float

from .base import Process

__all__ = ["VP", "SubVP", "VE", "LinearVE", "CosineVP"]


class _LinearBeta(Process):
    """Shared part of VP and sub-VP: beta(t) = beta_min + t (beta_max - beta_min), B(t) = int_0^t beta."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0) -> None:
        self.beta_min = check_float(beta_min, "beta_min", low=0.0, low_open=True)
        self.beta_max = check_float(beta_max, "beta_max", low=0.0, low_open=True)
        if self.beta_max < self.beta_min:
            raise ValueError(f"beta_max must be >= beta_min, got beta_min={beta_min}, beta_max={beta_max}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(beta_min={self.beta_min:g}, beta_max={self.beta_max:g})"

    def beta(self, t) -> torch.Tensor:
        """beta(t) = beta_min + t (beta_max - beta_min)."""
        return self._beta(self._time(t))

    def integral_beta(self, t) -> torch.Tensor:
        """B(t) = int_0^t beta(s) ds = beta_min t + (beta_max - beta_min) t^2 / 2."""
        return self._B(self._time(t))

    def _beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def _B(self, t):
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t

    def _t_of_B(self, b):
        d = self.beta_max - self.beta_min
        return 2.0 * b / (self.beta_min + torch.sqrt(self.beta_min**2 + 2.0 * d * b))

    def _log_alpha(self, t):
        return -0.5 * self._B(t)

    def _f(self, t):
        return -0.5 * self._beta(t)


class VP(_LinearBeta):
    """Variance-preserving SDE (Song et al. 2021, Eq. 11): alpha = exp(-B/2), sigma^2 = 1 - exp(-B); defaults beta 0.1 -> 20."""

    t_eps = 1e-3
    prior_std = 1.0

    def _log_sigma(self, t):
        return 0.5 * torch.log(-torch.expm1(-self._B(t)))

    def _log_snr(self, t):
        return -torch.log(torch.expm1(self._B(t)))

    def _g2(self, t):
        return self._beta(t)

    def _t_of_log_snr(self, lam):
        # exp(B) = 1 + exp(-lambda)
        return self._t_of_B(torch.logaddexp(torch.zeros_like(lam), -lam))


class SubVP(_LinearBeta):
    """Sub-VP SDE (Song et al. 2021, Eq. 12): the VP mean, variance (1 - exp(-B))^2, g^2 = beta (1 - exp(-2B))."""

    t_eps = 1e-3
    prior_std = 1.0

    def _log_sigma(self, t):
        return torch.log(-torch.expm1(-self._B(t)))

    def _log_snr(self, t):
        b = self._B(t)
        return -b - 2.0 * torch.log(-torch.expm1(-b))

    def _g2(self, t):
        return self._beta(t) * (-torch.expm1(-2.0 * self._B(t)))

    def _t_of_log_snr(self, lam):
        # u = exp(-B) solves exp(lambda) (1 - u)^2 = u; with w = exp(-lambda) the root in (0, 1]
        # is u = 2 / (2 + w + sqrt(w (4 + w))), so B = log1p((w + sqrt(w (4 + w))) / 2).
        w = torch.exp(-lam)
        return self._t_of_B(torch.log1p(0.5 * (w + torch.sqrt(w * (4.0 + w)))))


class VE(Process):
    """Variance-exploding SDE (Song et al. 2021, Eq. 9): alpha = 1, sigma(t) = sigma_min (sigma_max / sigma_min)^t.

    ``kernel="exact"`` uses the exact perturbation kernel N(x_0, (sigma(t)^2 - sigma_min^2) I),
    so x at t = 0 is the data; ``kernel="official"`` uses N(x_0, sigma(t)^2 I) as the
    official score_sde code does, whose t = 0 marginal is the data blurred by sigma_min.
    Both share the SDE, g^2 = d sigma(t)^2 / dt, and differ only in the marginal variance.
    """

    t_eps = 1e-5

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, kernel: str = "exact") -> None:
        self.sigma_min = check_float(sigma_min, "sigma_min", low=0.0, low_open=True)
        self.sigma_max = check_float(sigma_max, "sigma_max", low=0.0, low_open=True)
        if self.sigma_min >= self.sigma_max:
            raise ValueError(f"sigma_min must be < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
        self.kernel = check_choice(kernel, "kernel", ("exact", "official"))
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)
        if self.kernel == "exact":
            self.prior_std = math.sqrt(self.sigma_max**2 - self.sigma_min**2)
        else:
            self.prior_std = self.sigma_max

    def __repr__(self) -> str:
        return f"VE(sigma_min={self.sigma_min:g}, sigma_max={self.sigma_max:g}, kernel={self.kernel!r})"

    def noise_level(self, t) -> torch.Tensor:
        """sigma(t) = sigma_min (sigma_max / sigma_min)^t, the SMLD noise scale at time t."""
        return torch.exp(math.log(self.sigma_min) + self._time(t) * self._log_ratio)

    # in log space throughout: sigma_min^2 underflows and (sigma_max / sigma_min)^(2t) overflows for sigma_min = 1e-300
    def _log_alpha(self, t):
        return 0.0 * t  # keeps t in the autograd graph

    def _log_sigma(self, t):
        if self.kernel == "exact":  # log(sigma_min^2 expm1(2 L t)) / 2 = log sigma_min + L t + log(-expm1(-2 L t)) / 2
            return math.log(self.sigma_min) + self._log_ratio * t + 0.5 * torch.log(-torch.expm1(-2.0 * self._log_ratio * t))
        return math.log(self.sigma_min) + self._log_ratio * t

    def _f(self, t):
        return 0.0 * t

    def _g2(self, t):
        return 2.0 * self._log_ratio * torch.exp(2.0 * (math.log(self.sigma_min) + self._log_ratio * t))

    def _t_of_log_snr(self, lam):
        if self.kernel == "exact":
            # sigma_min^2 expm1(2 t log r) = exp(-lambda)
            z = -lam - 2.0 * math.log(self.sigma_min)
            return torch.logaddexp(torch.zeros_like(z), z) / (2.0 * self._log_ratio)
        return (-0.5 * lam - math.log(self.sigma_min)) / self._log_ratio


class LinearVE(Process):
    """alpha = 1, sigma(t) = sigma_max t: the process of Karras et al. (2022), in which t is the noise level.

    Its probability-flow ODE, stepped with Euler in t, is DDIM in the scaled variable
    x / alpha (Song et al. 2020, Prop. 1).
    """

    t_eps = 1e-3

    def __init__(self, sigma_max: float = 80.0) -> None:
        self.sigma_max = check_float(sigma_max, "sigma_max", low=0.0, low_open=True)
        self.prior_std = self.sigma_max

    def __repr__(self) -> str:
        return f"LinearVE(sigma_max={self.sigma_max:g})"

    def _log_alpha(self, t):
        return 0.0 * t

    def _log_sigma(self, t):
        return math.log(self.sigma_max) + torch.log(t)

    def _f(self, t):
        return 0.0 * t

    def _g2(self, t):
        return 2.0 * self.sigma_max**2 * t

    def _t_of_log_snr(self, lam):
        return torch.exp(-0.5 * lam) / self.sigma_max


class CosineVP(Process):
    """Continuous cosine schedule (Nichol & Dhariwal 2021, Eq. 17): alpha^2 = f(t)/f(0), f = cos^2(((t+s)/(1+s)) pi/2)."""

    t_eps = 1e-3
    prior_std = 1.0

    def __init__(self, s: float = 0.008) -> None:
        self.s = check_float(s, "s", low=0.0, low_open=True)
        self._u0 = self.s / (1.0 + self.s) * math.pi / 2.0
        # The schedule is singular at t = 1 (alpha(1) = 0, g^2 = pi/(1+s) tan(u) -> inf). t_max is where the step of a
        # T = 1000 table reaches Nichol & Dhariwal 2021's clip beta = 0.999 (Sec. 3.2): g^2(t_max) / 1000 = -log(0.001),
        # i.e. tan(u) = 1000 (1 + s) log(1000) / pi. Sampler grids start there (the CLI's do).
        tan_u = 1000.0 * (1.0 + self.s) * math.log(1000.0) / math.pi
        self.t_max = (math.pi / 2.0 - math.atan(1.0 / tan_u)) * 2.0 * (1.0 + self.s) / math.pi - self.s

    def __repr__(self) -> str:
        return f"CosineVP(s={self.s:g})"

    def _u(self, t):
        return (t + self.s) / (1.0 + self.s) * math.pi / 2.0

    def _log_alpha(self, t):
        return (torch.log(torch.cos(self._u(t))) - math.log(math.cos(self._u0))).clamp(max=0.0)

    def _log_sigma(self, t):
        return 0.5 * torch.log(-torch.expm1(2.0 * self._log_alpha(t)))

    def _f(self, t):
        return -torch.tan(self._u(t)) * (math.pi / (2.0 * (1.0 + self.s)))

    def _g2(self, t):
        return -2.0 * self._f(t)

    def _t_of_log_snr(self, lam):
        # cos^2 u = sigmoid(lambda) cos^2 u0 and sin^2 u = sin^2 u0 + cos^2 u0 sigmoid(-lambda)
        c2 = math.cos(self._u0) ** 2
        s2 = math.sin(self._u0) ** 2
        u = torch.atan2(torch.sqrt(s2 + c2 * torch.sigmoid(-lam)), torch.sqrt(c2 * torch.sigmoid(lam)))
        return u * (2.0 * (1.0 + self.s) / math.pi) - self.s
