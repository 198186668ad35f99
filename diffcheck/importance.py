"""Distributions over the steps of the bound: uniform, and Improved DDPM's loss-aware importance sampling.

A sampler draws steps i in 1..N with probabilities p_i and returns weights
w_i = 1 / (N p_i), so that E_{i ~ p}[w_i L_i] = (1/N) sum_i L_i whatever p is: the
per-sample loss times its weight is an unbiased estimate of the uniform-step objective,
and N w_i L_i one of the whole bound sum_i L_i.
"""

from __future__ import annotations

from typing import Any

import torch

from toy.validate import as_float_tensor, as_index_tensor, check_float, check_int

__all__ = ["UniformSampler", "LossSecondMomentSampler"]


def _draw(probs: torch.Tensor, n: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    n = check_int(n, "n", minimum=1)
    idx = torch.multinomial(probs, n, replacement=True, generator=generator)
    return idx + 1, 1.0 / (probs.numel() * probs[idx])


class UniformSampler:
    """Steps uniform on 1..N, every weight 1 (DDPM)."""

    def __init__(self, num_steps: int) -> None:
        self.num_steps = check_int(num_steps, "num_steps", minimum=1)

    def probabilities(self) -> torch.Tensor:
        """p_i for i = 1..N, float64."""
        return torch.full((self.num_steps,), 1.0 / self.num_steps, dtype=torch.float64)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """n steps (int64, 1-based) and their weights 1 / (N p_i)."""
        return _draw(self.probabilities(), n, generator)


class LossSecondMomentSampler:
    """p_i proportional to sqrt(E[L_i^2]) over the last ``history`` losses of each step (Nichol & Dhariwal 2021, Sec. 3.3).

    Uniform until every step holds ``history`` losses; afterwards mixed with
    ``uniform_prob`` of the uniform distribution, as in the official code (10 and 0.001).
    """

    def __init__(self, num_steps: int, history: int = 10, uniform_prob: float = 0.001) -> None:
        self.num_steps = check_int(num_steps, "num_steps", minimum=1)
        self.history = check_int(history, "history", minimum=1)
        self.uniform_prob = check_float(uniform_prob, "uniform_prob", low=0.0, high=1.0)
        self._losses = torch.zeros(self.num_steps, self.history, dtype=torch.float64)
        self._counts = torch.zeros(self.num_steps, dtype=torch.int64)

    def __repr__(self) -> str:
        return f"LossSecondMomentSampler(num_steps={self.num_steps}, history={self.history}, uniform_prob={self.uniform_prob:g})"

    @property
    def warmed_up(self) -> bool:
        """Whether every step holds ``history`` losses."""
        return bool((self._counts == self.history).all())

    def update(self, steps: Any, losses: Any) -> None:
        """Record per-sample losses of the given steps (1-based); each step keeps its last ``history`` values."""
        s = as_index_tensor(steps, "steps").reshape(-1)
        v = as_float_tensor(losses, "losses", dtype=torch.float64).detach().reshape(-1).cpu()
        if s.numel() != v.numel():
            raise ValueError(f"steps and losses must have the same length, got {s.numel()} and {v.numel()}")
        if bool((s < 1).any()) or bool((s > self.num_steps).any()):
            raise ValueError(f"steps must lie in [1, {self.num_steps}]")
        for i, loss in zip((s - 1).tolist(), v.tolist()):
            c = int(self._counts[i])
            if c == self.history:  # drop the oldest
                self._losses[i, :-1] = self._losses[i, 1:].clone()
                self._losses[i, -1] = loss
            else:
                self._losses[i, c] = loss
                self._counts[i] = c + 1

    def probabilities(self) -> torch.Tensor:
        """p_i for i = 1..N, float64."""
        if not self.warmed_up:
            return torch.full((self.num_steps,), 1.0 / self.num_steps, dtype=torch.float64)
        w = self._losses.pow(2).mean(-1).sqrt()
        total = float(w.sum())
        if not total > 0.0:
            return torch.full((self.num_steps,), 1.0 / self.num_steps, dtype=torch.float64)
        return (1.0 - self.uniform_prob) * w / total + self.uniform_prob / self.num_steps

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """n steps (int64, 1-based) drawn from p and their weights 1 / (N p_i)."""
        return _draw(self.probabilities(), n, generator)
