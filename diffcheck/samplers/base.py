"""What every sampler shares: declared theory, randomness passed in, grid checks, step checks.

A sampler is a plain function ``(model, process, x_T, grid, *, generator, ...) -> samples``.
It owns neither a model nor a schedule. ``grid`` is a decreasing tensor of times walked
pairwise. Randomness comes from ``generator``: a ``torch.Generator``, a list of one
generator per sample (so sample i depends on its own seed alone), or any callable
``noise(like) -> tensor`` shaped like ``like``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from toy.validate import check_choice

from ..process.base import Process
from ..process.grids import check_grid

__all__ = ["SamplerInfo", "sampler", "info", "Noise", "make_noise", "PerSampleNoise", "StepChecker", "SamplingError", "Result",
           "MAX_AMPLIFICATION", "check_explicit_step"]

Noise = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SamplerInfo:
    """The theory a sampler declares, checked by the generic order tests.

    ``kind`` is "ode" (deterministic; ``order`` is the global order in the step size),
    "sde" (stochastic; ``weak_order`` and ``strong_order``), "chain" (a discrete Markov
    chain whose law converges at ``weak_order``) or "mcmc" (Langevin: stationary only in
    the limit). ``paper`` names the algorithm's source.
    """

    name: str
    kind: str
    paper: str
    order: float | None = None
    weak_order: float | None = None
    strong_order: float | None = None
    stochastic: bool = True


_INFO: dict[str, SamplerInfo] = {}


def sampler(kind: str, paper: str, *, order: float | None = None, weak_order: float | None = None,
            strong_order: float | None = None, stochastic: bool = True) -> Callable:
    """Attach a SamplerInfo to a sampler function (as ``fn.info``)."""
    check_choice(kind, "kind", ("ode", "sde", "chain", "mcmc"))

    def wrap(fn: Callable) -> Callable:
        meta = SamplerInfo(fn.__name__, kind, paper, order, weak_order, strong_order, stochastic)
        fn.info = meta  # type: ignore[attr-defined]
        _INFO[fn.__name__] = meta
        return fn

    return wrap


def info(fn: Callable) -> SamplerInfo:
    """The declared theory of a sampler function."""
    meta = getattr(fn, "info", None)
    if not isinstance(meta, SamplerInfo):
        raise TypeError(f"{getattr(fn, '__name__', fn)!r} is not a registered sampler")
    return meta


class PerSampleNoise:
    """Noise with one generator per sample: row i depends on seed i alone, whatever the batch."""

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu") -> None:
        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def __call__(self, like: torch.Tensor) -> torch.Tensor:
        if like.shape[0] != len(self.generators):
            raise ValueError(f"PerSampleNoise holds {len(self.generators)} generators but the batch has {like.shape[0]} samples")
        rows = [torch.randn(like.shape[1:], generator=g, dtype=like.dtype, device=g.device) for g in self.generators]
        return torch.stack(rows).to(like.device)


def make_noise(generator: Any) -> Noise:
    """Normalise ``generator`` (Generator, list of Generators, callable or None) into a noise function."""
    if generator is None:
        raise ValueError("generator is required for a stochastic sampler: pass a torch.Generator, a list of them, or a noise function")
    if isinstance(generator, torch.Generator):
        return lambda like: torch.randn(like.shape, generator=generator, dtype=like.dtype, device=generator.device).to(like.device)
    if isinstance(generator, (list, tuple)) and all(isinstance(g, torch.Generator) for g in generator):
        gens = list(generator)

        def per_row(like: torch.Tensor) -> torch.Tensor:
            if like.shape[0] != len(gens):
                raise ValueError(f"{len(gens)} generators were given for a batch of {like.shape[0]} samples")
            return torch.stack([torch.randn(like.shape[1:], generator=g, dtype=like.dtype, device=g.device) for g in gens]).to(like.device)

        return per_row
    if callable(generator):
        def checked(like: torch.Tensor) -> torch.Tensor:
            z = generator(like)
            if not isinstance(z, torch.Tensor) or z.shape != like.shape:
                raise ValueError(f"the noise function must return a tensor of shape {tuple(like.shape)}")
            return z.to(dtype=like.dtype, device=like.device)

        return checked
    raise TypeError(f"generator must be a torch.Generator, a list of them or a callable, got {type(generator).__name__}")


class SamplingError(FloatingPointError):
    """A sampler state became non-finite, or a step would blow up (``check_explicit_step``); the message names the step."""


class StepChecker:
    """Validates inputs once and the state after each step (optionally), naming the failing step; ``grid`` is the walked order."""

    def __init__(self, process: Process, x: torch.Tensor, grid: Any, *, enabled: bool = True, name: str = "sampler",
                 ascending: bool = False) -> None:
        if not isinstance(process, Process):
            raise TypeError(f"process must be a Process, got {type(process).__name__}")
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError("x must be a floating tensor of shape (B, ...)")
        if x.ndim < 2:
            raise ValueError(f"x must have a batch dimension, shape (B, ...), got {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x contains NaN or inf")
        self.grid = check_grid(grid).to(torch.float64)
        if ascending:  # a decreasing grid walked from its end (an encoder)
            self.grid = self.grid.flip(0)
        self.enabled = enabled
        self.name = name

    def __call__(self, x: torch.Tensor, i: int) -> torch.Tensor:
        if self.enabled and not bool(torch.isfinite(x).all()):
            t, s = float(self.grid[i]), float(self.grid[i + 1])
            raise SamplingError(f"{self.name}: non-finite state after step {i + 1} of {len(self.grid) - 1} (t = {t:.6g} -> {s:.6g})")
        return x


@dataclass
class Result:
    """Samples, with the trajectory (grid times and states) when asked for and the model evaluations made."""

    samples: torch.Tensor
    trajectory: list[torch.Tensor] | None = None
    times: torch.Tensor | None = None
    nfe: int = 0

    def replace(self, **kw: Any) -> "Result":
        """A copy with some fields replaced."""
        return dataclasses.replace(self, **kw)


# An explicit step that multiplies the stiffest mode by more than this is a blow-up, not an approximation.
MAX_AMPLIFICATION = 100.0


def check_explicit_step(name: str, t: float, s: float, f: float, g2: float, sigma: float, weight: float) -> None:
    """Refuse an explicit (Euler-type) step t -> s of the reverse dynamics that is far outside its stability region.

    Near a point mass (and wherever the prior dominates) the reverse drift f x - c g^2 score, score ~ -x / sigma^2, is
    linear with rate f + c g^2 / sigma^2 (Song et al. 2021, Eq. 6 with c = 1, Eq. 13 with c = 1/2): an explicit step of
    length h multiplies that mode by 1 - h (f + c g^2 / sigma^2). Beyond ``MAX_AMPLIFICATION`` the step cannot
    approximate the flow (e.g. CosineVP at t = 1, where g^2 is infinite): ``SamplingError`` names the step.
    """
    if not sigma > 0.0:
        return
    h = t - s
    gain = abs(1.0 - h * (f + weight * g2 / (sigma * sigma)))
    if not gain <= MAX_AMPLIFICATION:
        raise SamplingError(f"{name}: the explicit step t = {t:.6g} -> {s:.6g} multiplies the stiff part of the reverse "
                            f"drift by {gain:.3g} (g^2 = {g2:.3g}, sigma = {sigma:.3g}); unstable: start the grid at a "
                            f"smaller time or take smaller steps there")
