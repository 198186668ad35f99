"""Which diffusion step t the discriminator sees: the paper's p_pi and the official code's pool (Wang et al. 2022).

Paper (as far as its text could be established): t ~ p_pi on {1, ..., T}, either uniform or
"priority" p_pi(t) = t / sum_s s, which favours the steps newly added as T grows.

Official code (``diffusion-stylegan2/training/diffusion.py``, ``Diffusion.update_T``), and it differs
in two ways:
- its priority weights are ``np.arange(T) / np.arange(T).sum()`` over t = 1..T, i.e. proportional to
  t - 1, so t = 1 is never drawn;
- after each update of T it draws only 32 steps into a pool of 64 slots whose other 32 hold t = 0,
  and each sample picks a slot uniformly: half of the discriminator's inputs are clean (t = 0), and
  between updates only those 32 steps occur. Over the pool's randomness one draw has the law
  (1/2) delta_0 + (1/2) pi_code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from toy.validate import check_choice, check_int

__all__ = ["KINDS", "CONVENTIONS", "t_probs", "TimestepSampler"]

KINDS = ("priority", "uniform")
CONVENTIONS = ("paper", "official")


def t_probs(T: int, kind: str = "priority", convention: str = "paper") -> torch.Tensor:
    """p_pi(t) for t = 0..T as a float64 (T + 1,) vector (p(0) = 0): uniform, or priority ∝ t (paper) / ∝ t - 1 (code)."""
    T = check_int(T, "T", minimum=1)
    check_choice(kind, "kind", KINDS)
    check_choice(convention, "convention", CONVENTIONS)
    t = torch.arange(T + 1, dtype=torch.float64)
    if kind == "uniform":
        w = (t >= 1).to(torch.float64)
    elif convention == "paper":
        w = t
    else:
        if T < 2:
            raise ValueError("the official priority weights (t - 1) need T >= 2; with T = 1 every weight is zero")
        w = (t - 1.0).clamp_min(0.0)
    return w / w.sum()


@dataclass(frozen=True)
class TimestepSampler:
    """Draws the discriminator's steps under the paper's or the official convention.

    ``refresh(T, generator)`` is called whenever T changes and returns the sampler's state (the pmf for
    the paper; the pool of ``slots`` steps for the official code); ``sample(state, n, generator)`` draws
    n steps from it; ``probs(T)`` is the law of one draw (averaged over the pool for the official code).
    """

    kind: str = "priority"
    convention: str = "paper"
    slots: int = 64
    drawn: int = 32

    def __post_init__(self) -> None:
        check_choice(self.kind, "kind", KINDS)
        check_choice(self.convention, "convention", CONVENTIONS)
        check_int(self.slots, "slots", minimum=1)
        check_int(self.drawn, "drawn", minimum=1, maximum=self.slots)

    def probs(self, T: int) -> torch.Tensor:
        """The law of one step, t = 0..T (float64)."""
        p = t_probs(T, self.kind, self.convention)
        if self.convention == "paper":
            return p
        keep = self.drawn / self.slots
        p = keep * p
        p[0] += 1.0 - keep
        return p

    def refresh(self, T: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The state for chain length T: the pmf (paper) or a freshly drawn pool of steps (official)."""
        p = t_probs(T, self.kind, self.convention)
        if self.convention == "paper":
            return p
        pool = torch.zeros(self.slots, dtype=torch.int64)
        pool[: self.drawn] = torch.multinomial(p, self.drawn, replacement=True, generator=generator)
        return pool

    def sample(self, state: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n steps (int64) drawn from a state made by ``refresh``."""
        n = check_int(n, "n", minimum=0)
        if self.convention == "paper":
            if state.ndim != 1 or not state.is_floating_point():
                raise ValueError("state must be the pmf returned by refresh()")
            return torch.multinomial(state, n, replacement=True, generator=generator) if n else torch.zeros(0, dtype=torch.int64)
        if state.shape != (self.slots,) or state.is_floating_point():
            raise ValueError(f"state must be the pool of {self.slots} steps returned by refresh()")
        return state[torch.randint(self.slots, (n,), generator=generator)]
