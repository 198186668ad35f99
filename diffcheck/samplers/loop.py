"""The walk every step-based sampler shares: grid pairs, checks, trajectory, progress, evaluation count.

The per-step ``Coefficients`` (DDPM's beta, beta_tilde, ... of each step) are
``diffcheck.process.steps``'s, computed once per walk and handed to every step.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import torch
from tqdm import tqdm

from ..param import Model
from ..process.base import Process
from ..process.steps import Coefficients, coefficient_table, coefficients
from .base import Result, StepChecker, make_noise

__all__ = ["Coefficients", "coefficients", "coefficient_table", "Counted", "walk"]


class Counted:
    """A model proxy that counts evaluations (its ``prediction`` is the model's).

    A learned-variance model's ``forward_full`` (``diffcheck.variance``) is passed through and
    counted too: one call of either is one evaluation.
    """

    def __init__(self, model: Model) -> None:
        if not callable(model):
            raise TypeError("model must be callable as model(x, t)")
        self.model = model
        self.prediction = getattr(model, "prediction", None)
        self.calls = 0
        full = getattr(model, "forward_full", None)
        if callable(full):
            def forward_full(*args: Any, **kwargs: Any) -> torch.Tensor:
                self.calls += 1
                return full(*args, **kwargs)

            self.forward_full = forward_full

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        self.calls += 1
        return self.model(*args, **kwargs)


Step = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def walk(
    step: Step,
    model: Model,
    process: Process,
    x: torch.Tensor,
    grid: Any,
    *,
    generator: Any = None,
    stochastic: bool = True,
    name: str = "sampler",
    denoise: bool = False,
    check_finite: bool = True,
    progress: bool = False,
    full: bool = False,
    ascending: bool = False,
    **options: Any,
) -> torch.Tensor | Result:
    """Run ``step(model, process, x, t, s, noise, last=..., coef=..., **options) -> (x, x_mean)`` over neighbouring grid times.

    The coefficients of every step are computed once, up front, and passed as ``coef``.
    ``grid`` is a sampler's decreasing grid; with ``ascending`` it is walked from its end to
    its start (an encoder's direction: DDIM inversion), each step still from ``t`` to ``s``.

    Returns the final state (its noise-free mean with ``denoise``), or a ``Result`` with
    the trajectory and the number of model evaluations when ``full``.
    """
    checker = StepChecker(process, x, grid, enabled=check_finite, name=name, ascending=ascending)
    g = checker.grid
    table = coefficient_table(process, g)
    noise = make_noise(generator) if stochastic else None
    counted = Counted(model)
    traj = [x] if full else None
    n = len(g) - 1
    x_mean = x
    for i in tqdm(range(n), desc=name, file=sys.stderr, disable=not progress, leave=False):
        x, x_mean = step(counted, process, x, g[i], g[i + 1], noise, last=(i == n - 1), coef=table[i], **options)
        checker(x, i)
        if traj is not None:
            traj.append(x)
    out = x_mean if denoise else x
    if full:
        return Result(out, traj, g, counted.calls)
    return out
