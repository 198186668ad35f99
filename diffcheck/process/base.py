"""Forward processes x_t = alpha(t) x_0 + sigma(t) eps on t in [0, 1], and what derives from them.

Everything follows from alpha(t) and sigma(t) (Song et al. 2021, Eq. 5 and App. B):
log-SNR lambda = log(alpha^2 / sigma^2), drift coefficient f = d log alpha / dt,
squared diffusion g^2 = d sigma^2 / dt - 2 f sigma^2, the forward SDE
dx = f x dt + g dW. Its reverse SDE (Song et al. 2021, Eq. 6) and probability-flow ODE
(Song et al. 2021, Eq. 13) for a model are ``diffcheck.reverse.ReverseSDE``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from toy.mixture import GaussianMixture, NoisedMixture
from toy.validate import as_float_tensor

from ..tensor import per_sample

__all__ = ["Process", "ScoreFn"]

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_LOG_2PI = math.log(2.0 * math.pi)


class Process:
    """A linear-Gaussian forward process on t in [0, 1]; subclasses give alpha and sigma in closed form.

    Subclasses implement ``_log_alpha``, ``_log_sigma``, ``_log_snr``, ``_f``, ``_g2`` and
    ``_t_of_log_snr`` on validated tensors; the public methods validate their inputs.
    ``t_eps`` is the smallest time samplers start from by default and ``prior_std`` the
    standard deviation of the isotropic Gaussian prior used at t = 1.
    """

    t_eps: float = 1e-3
    prior_std: float = 1.0

    # -- validation ---------------------------------------------------------------------
    @staticmethod
    def _time(t: Any, name: str = "t") -> torch.Tensor:
        t = as_float_tensor(t, name, finite=False)
        if t.numel() and t.device.type == "cpu":  # values on an accelerator are not read: that would synchronise
            if t.numel() == 1:  # a sampler's step: one read instead of three reductions
                lo = hi = float(t.detach().reshape(()))
                nan = lo != lo
            else:
                nan = bool(torch.isnan(t).any())
                lo, hi = (float(t.detach().min()), float(t.detach().max())) if not nan else (0.0, 0.0)
            if nan:
                raise ValueError(f"{name} contains NaN")
            if lo < 0.0 or hi > 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:.6g}, {hi:.6g}]")
        return t

    @staticmethod
    def _in_float64(fn: Callable[[torch.Tensor], torch.Tensor], t: torch.Tensor) -> torch.Tensor:
        """``fn`` evaluated in float64 and returned in t's dtype: a float32 t rounds, e.g., CosineVP's angle at t = 1 past
        pi/2, where cos turns negative; the float64 formula then rounds once, at the end."""
        if t.dtype == torch.float64 or t.device.type == "mps":  # MPS has no float64
            return fn(t)
        return fn(t.to(torch.float64)).to(t.dtype)

    # -- coefficients -------------------------------------------------------------------
    def alpha(self, t: Any) -> torch.Tensor:
        """Signal scale alpha(t)."""
        return self._in_float64(lambda u: self._log_alpha(u).exp(), self._time(t))

    def sigma(self, t: Any) -> torch.Tensor:
        """Noise scale sigma(t)."""
        return self._in_float64(lambda u: self._log_sigma(u).exp(), self._time(t))

    def log_alpha(self, t: Any) -> torch.Tensor:
        """log alpha(t)."""
        return self._in_float64(self._log_alpha, self._time(t))

    def log_sigma(self, t: Any) -> torch.Tensor:
        """log sigma(t) (-inf where sigma = 0)."""
        return self._in_float64(self._log_sigma, self._time(t))

    def log_snr(self, t: Any) -> torch.Tensor:
        """lambda(t) = log(alpha^2 / sigma^2), strictly decreasing in t."""
        return self._in_float64(self._log_snr, self._time(t))

    def f(self, t: Any) -> torch.Tensor:
        """Drift coefficient f(t) = d log alpha / dt of the forward SDE dx = f x dt + g dW."""
        return self._in_float64(self._f, self._time(t))

    def g2(self, t: Any) -> torch.Tensor:
        """Squared diffusion g(t)^2 = d sigma^2/dt - 2 f sigma^2."""
        return self._in_float64(self._g2, self._time(t))

    def g(self, t: Any) -> torch.Tensor:
        """Diffusion coefficient g(t)."""
        return self.g2(t).sqrt()

    def edm_sigma(self, t: Any) -> torch.Tensor:
        """sigma(t) / alpha(t), the noise level of the scaled variable x / alpha (Karras et al. 2022)."""
        return (-0.5 * self.log_snr(t)).exp()

    def t_of_log_snr(self, log_snr: Any) -> torch.Tensor:
        """The time at which lambda(t) = log_snr (the inverse of ``log_snr``)."""
        lam = as_float_tensor(log_snr, "log_snr", finite=False)
        if bool(torch.isnan(lam).any()):
            raise ValueError("log_snr contains NaN")
        t = self._t_of_log_snr(lam)
        lo = float(self._log_snr(torch.ones((), dtype=lam.dtype)))
        hi = float(self._log_snr(torch.zeros((), dtype=lam.dtype)))
        bad = (lam < lo - 1e-9 * max(1.0, abs(lo))) | (lam > hi + 1e-9 * max(1.0, abs(hi)))
        if bool(bad.any()):
            raise ValueError(f"log_snr must lie in this process's range [{lo:.6g}, {hi:.6g}]")
        return t.clamp(0.0, 1.0)

    def t_of_edm_sigma(self, sigma: Any) -> torch.Tensor:
        """The time at which sigma(t)/alpha(t) equals ``sigma``."""
        s = as_float_tensor(sigma, "sigma", finite=False)
        if bool(torch.isnan(s).any()) or bool((s < 0).any()):
            raise ValueError("sigma must be non-negative")
        return self.t_of_log_snr(-2.0 * torch.log(s))

    # -- SDE views ----------------------------------------------------------------------
    def drift(self, x: torch.Tensor, t: Any) -> torch.Tensor:
        """Forward SDE drift f(t) x (t scalar or per-sample)."""
        return per_sample(self.f(t), x) * x

    def diffusion(self, t: Any) -> torch.Tensor:
        """Forward SDE diffusion coefficient g(t)."""
        return self.g(t)

    # -- marginals and prior ------------------------------------------------------------
    def marginal(self, mixture: GaussianMixture, t: Any) -> NoisedMixture:
        """The exact law of x_t when x_0 follows ``mixture`` (t scalar or per-sample)."""
        t = self._time(t)
        return mixture.noised(self.alpha(t), self.sigma(t))

    def sample_marginal(
        self, x0: torch.Tensor, t: Any, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw x_t = alpha(t) x_0 + sigma(t) eps; returns (x_t, eps)."""
        t = self._time(t)
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        return per_sample(self.alpha(t), x0) * x0 + per_sample(self.sigma(t), x0) * eps, eps

    def prior_sample(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Draw from the prior N(0, prior_std^2 I) used at t = 1."""
        if device is None and generator is not None:
            device = generator.device
        return self.prior_std * torch.randn(tuple(shape), generator=generator, dtype=dtype, device=device)

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x; 0, prior_std^2 I), summed over all but the batch dimension."""
        d = x[0].numel() if x.ndim > 1 else x.numel()
        sq = (x.reshape(x.shape[0], -1) ** 2).sum(-1) if x.ndim > 1 else (x**2).sum()
        return -0.5 * sq / self.prior_std**2 - d * (math.log(self.prior_std) + 0.5 * _LOG_2PI)

    # -- subclass interface ---------------------------------------------------------------
    def _log_alpha(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} must define _log_alpha")

    def _log_sigma(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} must define _log_sigma")

    def _log_snr(self, t: torch.Tensor) -> torch.Tensor:
        return 2.0 * (self._log_alpha(t) - self._log_sigma(t))

    def _f(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} must define _f")

    def _g2(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} must define _g2")

    def _t_of_log_snr(self, lam: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} must define _t_of_log_snr")
