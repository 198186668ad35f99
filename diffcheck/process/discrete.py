"""Discrete DDPM tables as processes, and the discrete view of any process on a grid of times.

A DDPM table of T betas is the process whose alpha(t)^2 at t = i/T equals
alpha_bar_i = prod_{j<=i} (1 - beta_j) (Ho et al. 2020, Eq. 4), with log alpha_bar
linear in t between grid points. A discrete schedule is a grid of times on a process;
respacing (Nichol & Dhariwal 2021, App. B) and DDIM's skips (Song et al. 2020, App. D)
are choices of a sub-grid, and every step's coefficient follows from the kept times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from toy.validate import as_float_tensor, as_index_tensor, check_choice, check_float, check_int

from .base import Process

__all__ = [
    "DiscreteVP",
    "linear_betas",
    "cosine_betas",
    "cosine_alpha_bar",
    "Schedule",
    "discretize",
    "ddim_steps",
    "iddpm_steps",
]


def linear_betas(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02, *, rescale: bool = False) -> torch.Tensor:
    """DDPM's linear schedule (Ho et al. 2020, Sec. 4): T betas from beta_start to beta_end, float64.

    With ``rescale`` the endpoints are multiplied by 1000/T as Improved DDPM's code does,
    so that other T keep the same total noise.
    """
    T = check_int(T, "T", minimum=1)
    scale = 1000.0 / T if rescale else 1.0
    b0 = check_float(check_float(beta_start, "beta_start") * scale, "beta_start", low=0.0, high=1.0, low_open=True, high_open=True)
    b1 = check_float(check_float(beta_end, "beta_end") * scale, "beta_end", low=0.0, high=1.0, low_open=True, high_open=True)
    return torch.from_numpy(np.linspace(b0, b1, T, dtype=np.float64))


def cosine_alpha_bar(t: Any, s: float = 0.008) -> torch.Tensor:
    """Improved DDPM's alpha_bar(t) = f(t)/f(0), f(t) = cos^2(((t + s)/(1 + s)) pi/2) (Nichol & Dhariwal 2021, Eq. 17), t in [0, 1]."""
    t = as_float_tensor(t, "t")
    if t.numel() and (float(t.min()) < 0.0 or float(t.max()) > 1.0):
        raise ValueError(f"t must lie in [0, 1], got values in [{float(t.min()):.6g}, {float(t.max()):.6g}]")
    s = check_float(s, "s", low=0.0, low_open=True)
    f = lambda u: torch.cos((u + s) / (1.0 + s) * math.pi / 2.0) ** 2
    return f(t) / f(torch.zeros_like(t))


def cosine_betas(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Improved DDPM's cosine betas: beta_i = min(1 - alpha_bar(i/T)/alpha_bar((i-1)/T), max_beta)."""
    T = check_int(T, "T", minimum=1)
    s = check_float(s, "s", low=0.0, low_open=True)
    max_beta = check_float(max_beta, "max_beta", low=0.0, high=1.0, low_open=True, high_open=True)
    grid = torch.arange(T + 1, dtype=torch.float64) / T
    ab = cosine_alpha_bar(grid, s)
    return (1.0 - ab[1:] / ab[:-1]).clamp(max=max_beta)


class DiscreteVP(Process):
    """The process of a DDPM beta table: alpha(i/T)^2 = prod_{j<=i}(1 - beta_j), log alpha^2 linear in between.

    The table's betas lie in (0, 1); a respaced step's beta (``Schedule.beta``) lies in (0, 1] and is exactly 1
    where the kept alpha_bar ratio underflows float64's resolution. log alpha_bar is stored and is the authority.
    """

    t_eps = 0.0
    prior_std = 1.0

    def __init__(self, betas: Any) -> None:
        betas = as_float_tensor(betas, "betas", dtype=torch.float64, ndim=1)
        if betas.numel() == 0:
            raise ValueError("betas must hold at least one step")
        if bool((betas <= 0).any()) or bool((betas >= 1).any()):
            raise ValueError(f"betas must lie in (0, 1), got values in [{float(betas.min()):.6g}, {float(betas.max()):.6g}]")
        self.betas = betas
        self.T = betas.numel()
        self._log_ab = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(torch.log1p(-betas), 0)])

    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02, *, rescale: bool = False) -> "DiscreteVP":
        """DDPM's linear table (defaults of Ho et al. 2020)."""
        return cls(linear_betas(T, beta_start, beta_end, rescale=rescale))

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> "DiscreteVP":
        """Improved DDPM's cosine table with its 0.999 clip."""
        return cls(cosine_betas(T, s, max_beta))

    def __repr__(self) -> str:
        return f"DiscreteVP(T={self.T}, beta_1={float(self.betas[0]):.4g}, beta_T={float(self.betas[-1]):.4g})"

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """alpha_bar_i for i = 0..T (alpha_bar_0 = 1), float64."""
        return self._log_ab.exp()

    def times(self, steps: Any) -> torch.Tensor:
        """Times t = step / T of integer DDPM steps (0 = data, T = noisiest)."""
        idx = as_index_tensor(steps, "steps")
        if bool((idx < 0).any()) or bool((idx > self.T).any()):
            raise ValueError(f"steps must lie in [0, {self.T}]")
        return idx.to(torch.float64) / self.T

    def _segment(self, t):
        if t.numel() == 1 and t.dtype == torch.float64 and t.device.type == "cpu" and not t.requires_grad:
            return self._segment_one(t)
        pos = t * self.T
        near = torch.round(pos)
        pos = torch.where((pos - near).abs() < 1e-9, near, pos)
        idx = (torch.ceil(pos) - 1).clamp(0, self.T - 1).to(torch.int64)
        table = self._log_ab.to(dtype=t.dtype, device=t.device)
        lo, hi = table[idx], table[idx + 1]
        return lo, hi, pos - idx.to(t.dtype)

    def _segment_one(self, t):
        """_segment for one float64 time (a sampler's step), in Python arithmetic: the same values, without ten tensor ops."""
        pos = float(t) * self.T
        near = round(pos)
        pos = float(near) if abs(pos - near) < 1e-9 else pos
        idx = min(max(math.ceil(pos) - 1, 0), self.T - 1)
        lo, hi = self._log_ab[idx], self._log_ab[idx + 1]
        return lo.reshape(t.shape), hi.reshape(t.shape), torch.full(t.shape, pos - idx, dtype=torch.float64)

    def _log_alpha_bar(self, t):
        lo, hi, u = self._segment(t)
        return lo + u * (hi - lo)

    def _log_alpha(self, t):
        return 0.5 * self._log_alpha_bar(t)

    def _log_sigma(self, t):
        return 0.5 * torch.log(-torch.expm1(self._log_alpha_bar(t)))

    def _log_snr(self, t):
        la = self._log_alpha_bar(t)
        return la - torch.log(-torch.expm1(la))

    def _f(self, t):
        lo, hi, _ = self._segment(t)
        return 0.5 * self.T * (hi - lo)

    def _g2(self, t):
        return -2.0 * self._f(t)

    def _t_of_log_snr(self, lam):
        target = -torch.logaddexp(torch.zeros_like(lam), -lam)  # log sigmoid(lambda) = log alpha_bar
        table = self._log_ab.to(dtype=lam.dtype, device=lam.device)
        # table is decreasing; find i with table[i] >= target >= table[i + 1]
        i = (torch.searchsorted(-table, -target, right=False) - 1).clamp(0, self.T - 1)
        lo, hi = table[i], table[i + 1]
        return (i.to(lam.dtype) + (target - lo) / (hi - lo)) / self.T


@dataclass(frozen=True)
class Schedule:
    """The discrete view of a process on increasing times t_0 < ... < t_N (index 0 = least noisy).

    Per-time tensors have N + 1 entries; per-step tensors have N entries, entry i - 1
    describing step i (from t_{i-1} to t_i). For a VP process these are DDPM's
    quantities (Ho et al. 2020, Eq. 4, 6, 7); for any process they are the same
    Gaussian facts written with alpha and sigma: the transition x_i | x_{i-1} is
    N(a_i x_{i-1}, s_i^2 I) with a_i = alpha_i / alpha_{i-1} and
    s_i^2 = sigma_i^2 - a_i^2 sigma_{i-1}^2, and the posterior q(x_{i-1} | x_i, x_0) has
    mean coef1 x_0 + coef2 x_i and variance beta_tilde.
    """

    process: Process
    t: torch.Tensor
    alpha: torch.Tensor
    sigma: torch.Tensor
    log_snr: torch.Tensor
    transition_alpha: torch.Tensor
    transition_var: torch.Tensor
    beta_tilde: torch.Tensor
    posterior_mean_coef1: torch.Tensor
    posterior_mean_coef2: torch.Tensor

    @property
    def num_steps(self) -> int:
        """Number of steps N."""
        return self.t.numel() - 1

    @property
    def alpha_bar(self) -> torch.Tensor:
        """alpha_bar_i = alpha(t_i)^2 (DDIM writes alpha_t for this)."""
        return self.alpha**2

    @property
    def beta(self) -> torch.Tensor:
        """beta_i = 1 - alpha_bar_i / alpha_bar_{i-1}, recomputed from the kept times (N,), in (0, 1].

        beta_i is exactly 1 where the kept ratio alpha_bar_i / alpha_bar_{i-1} is below float64's resolution (2^-53,
        e.g. one respaced step over 54 steps of beta = 0.5): x_i is then drawn independently of x_{i-1}, which is
        what such a ratio means. ``alpha`` (log alpha_bar) stays the authority; cumprod(1 - beta) is 0 there.
        """
        return -torch.expm1(2.0 * (torch.log(self.alpha[1:]) - torch.log(self.alpha[:-1])))

    @property
    def grid(self) -> torch.Tensor:
        """The times in the order a sampler walks them (decreasing)."""
        return self.t.flip(0)

    def posterior_mean(self, x0: torch.Tensor, xt: torch.Tensor, step: int) -> torch.Tensor:
        """Mean of q(x_{i-1} | x_i = xt, x_0 = x0) for step i (1-based)."""
        step = check_int(step, "step", minimum=1, maximum=self.num_steps)
        return self.posterior_mean_coef1[step - 1] * x0 + self.posterior_mean_coef2[step - 1] * xt


def discretize(process: Process, times: Any) -> Schedule:
    """The discrete view of ``process`` on strictly increasing ``times`` in [0, 1] (at least 2)."""
    if not isinstance(process, Process):
        raise TypeError(f"process must be a Process, got {type(process).__name__}")
    t = Process._time(as_float_tensor(times, "times", dtype=torch.float64, ndim=1), "times")
    if t.numel() < 2:
        raise ValueError(f"times must hold at least 2 points, got {t.numel()}")
    if bool((t[1:] <= t[:-1]).any()):
        raise ValueError("times must be strictly increasing")
    log_alpha = process.log_alpha(t)
    log_sigma = process.log_sigma(t)
    lam = process.log_snr(t)
    # 1 - exp(lambda_i - lambda_{i-1}) = s_i^2 / sigma_i^2, stable for neighbouring steps
    drop = -torch.expm1(lam[1:] - lam[:-1])
    ta = torch.exp(log_alpha[1:] - log_alpha[:-1])
    sig2 = torch.exp(2.0 * log_sigma)
    return Schedule(
        process=process,
        t=t,
        alpha=log_alpha.exp(),
        sigma=log_sigma.exp(),
        log_snr=lam,
        transition_alpha=ta,
        transition_var=sig2[1:] * drop,
        beta_tilde=sig2[:-1] * drop,
        posterior_mean_coef1=log_alpha[:-1].exp() * drop,
        posterior_mean_coef2=ta * torch.exp(2.0 * (log_sigma[:-1] - log_sigma[1:])),
    )


def ddim_steps(T: int, S: int, kind: str = "uniform", *, unique: bool = True) -> torch.Tensor:
    """DDIM's sub-sequences of steps 1..T (Song et al. 2020, App. D.2, as its code builds them).

    ``uniform``: code steps range(0, T, T // S); ``quadratic``: int(linspace(0, sqrt(0.8 T), S)^2).
    The code indexes steps from 0; the returned steps are 1-based (code step c is step c + 1).
    The quadratic rule repeats its first steps when S is large (int() of small squares);
    ``unique`` drops the repeats, which in the code are steps that change nothing but cost
    one network evaluation each.
    """
    T = check_int(T, "T", minimum=1)
    S = check_int(S, "S", minimum=1, maximum=T)
    kind = check_choice(kind, "kind", ("uniform", "quadratic"))
    if kind == "uniform":
        code = list(range(0, T, T // S))
    else:
        code = [int(v) for v in np.linspace(0.0, math.sqrt(0.8 * T), S) ** 2]
    steps = torch.tensor(code, dtype=torch.int64) + 1
    return steps.unique() if unique else steps


def iddpm_steps(T: int, section_counts: Sequence[int] | str) -> torch.Tensor:
    """Improved DDPM's respacing (space_timesteps in its code), as sorted 1-based steps.

    ``section_counts`` splits 1..T into equal sections and takes evenly strided steps from
    each (both ends of a section included), or is ``"ddimN"`` for the integer stride with
    exactly N steps.
    """
    T = check_int(T, "T", minimum=1)
    if isinstance(section_counts, str):
        if section_counts.startswith("ddim"):
            if not section_counts[4:].isdigit():
                raise ValueError(f"section_counts must be numbers separated by commas or 'ddimN', got {section_counts!r}")
            want = check_int(int(section_counts[4:]), "section_counts (ddimN)", minimum=1)
            for stride in range(1, T):
                if len(range(0, T, stride)) == want:
                    return torch.arange(0, T, stride, dtype=torch.int64) + 1
            raise ValueError(f"section_counts: no integer stride gives exactly {want} of {T} steps")
        try:
            section_counts = [int(v) for v in section_counts.split(",")]
        except ValueError:
            raise ValueError(f"section_counts must be numbers separated by commas or 'ddimN', got {section_counts!r}") from None
    if not isinstance(section_counts, (list, tuple, torch.Tensor, np.ndarray, range)):
        raise TypeError(f"section_counts must be a list of step counts or a string such as '250' or 'ddim50', got {section_counts!r}")
    counts = [check_int(c, "section_counts", minimum=1) for c in section_counts]
    if not counts:
        raise ValueError("section_counts must not be empty")
    per, extra = divmod(T, len(counts))
    start, taken = 0, []
    for i, count in enumerate(counts):
        size = per + (1 if i < extra else 0)
        if size < count:
            raise ValueError(f"section_counts: a section of {size} steps cannot hold {count}")
        stride = 1.0 if count <= 1 else (size - 1) / (count - 1)
        pos = 0.0
        for _ in range(count):  # accumulated as the reference code does, so ties round alike
            taken.append(start + round(pos))
            pos += stride
        start += size
    return torch.tensor(sorted(set(taken)), dtype=torch.int64) + 1
