"""MCVD (Voleti et al. 2022): masked conditional training, one model for prediction, interpolation and generation.

A training window holds ``past`` frames, ``current`` frames to denoise and ``future`` frames, on axis 1 of a
(B, F, *frame_shape) batch. Each sample's past block is zeroed with probability p_mask and its future block,
independently, with probability p_future; the model sees the noised current block, the (possibly zeroed)
conditioning frames and the mask state, and is trained on ½||eps − eps_theta(x_t | past, future)||² summed over
values (mcvd-pytorch `losses/dsm.py`), t uniform over the DDPM steps. The mask state is the pair (past kept,
future kept): MCVD's network embeds the past bit and reads a zeroed future block from its zeros; on the toy both
bits are given to the network, since a zero frame there is an ordinary value.

The Bayes-optimal predictor in each mask state is E[eps | z^current_t, the kept blocks] (``MCVDExact``):
prediction (past kept), interpolation (both kept) and generation (neither) are three conditionals of one
window law. Long videos come from autoregressive block-wise rollout.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch

from toy.mixture import GaussianMixture
from toy.validate import check_float, check_int

from ..param import Model, PREDICTIONS
from ..process.base import Process
from ..process.discrete import DiscreteVP
from ..process.grids import respaced_grid
from ..samplers.base import make_noise
from ..tensor import per_sample
from .exact import ExactConditional
from .frames import frame_coords

__all__ = ["Blocks", "mcvd_masks", "training_times", "mcvd_loss", "mcvd_objective", "MCVDExact", "mcvd_grid",
           "conditioning", "rollout"]

STATES = {"generation": (False, False), "prediction": (True, False), "interpolation": (True, True),
          "future only": (False, True)}
"""The four mask states (past kept, future kept) and what each makes of the model."""


@dataclasses.dataclass(frozen=True)
class Blocks:
    """Frame counts of an MCVD window: ``past`` conditioning frames, ``current`` frames to denoise, ``future`` frames."""

    past: int
    current: int
    future: int = 0

    def __post_init__(self) -> None:
        check_int(self.past, "past", minimum=0)
        check_int(self.current, "current", minimum=1)
        check_int(self.future, "future", minimum=0)

    @property
    def total(self) -> int:
        """Frames in a window."""
        return self.past + self.current + self.future

    @property
    def cond_frames(self) -> int:
        """Frames of the conditioning input (past then future)."""
        return self.past + self.future

    def split(self, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(past, current, future) blocks of a window batch (B, total, ...)."""
        if window.ndim < 2 or window.shape[1] != self.total:
            raise ValueError(f"window must have shape (B, {self.total}, ...), got {tuple(window.shape)}")
        p, c = self.past, self.current
        return window[:, :p], window[:, p : p + c], window[:, p + c :]

    def coords(self, frame_size: int) -> dict[str, torch.Tensor]:
        """Flat window coordinates of each block."""
        out = {}
        for name, first, n in (("past", 0, self.past), ("current", self.past, self.current),
                               ("future", self.past + self.current, self.future)):
            out[name] = frame_coords(list(range(first, first + n)), frame_size) if n else torch.zeros(0, dtype=torch.int64)
        return out


def mcvd_masks(n: int, generator: torch.Generator, p_mask: float = 0.5, p_future: float = 0.5) -> torch.Tensor:
    """Mask states (n, 2) bool, [past kept, future kept]: each block kept with probability 1 − p, independently."""
    n = check_int(n, "n", minimum=1)
    p_mask = check_float(p_mask, "p_mask", low=0.0, high=1.0)
    p_future = check_float(p_future, "p_future", low=0.0, high=1.0)
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    return torch.stack([u[:, 0] >= p_mask, u[:, 1] >= p_future], 1)


def training_times(process: Process, n: int, generator: torch.Generator) -> torch.Tensor:
    """Training times: t = i / T with i ~ U{1..T} on a DDPM table, else t ~ U(t_eps, 1) (float64, (n,))."""
    if isinstance(process, DiscreteVP):
        return process.times(torch.randint(1, process.T + 1, (n,), generator=generator))
    lo = float(process.t_eps)
    return lo + (1.0 - lo) * torch.rand(n, generator=generator, dtype=torch.float64)


def conditioning(blocks: Blocks, past: torch.Tensor | None, future: torch.Tensor | None, state: torch.Tensor) -> torch.Tensor:
    """The conditioning input (B, past + future, ...): past then future frames, zeros where the state masks them."""
    kept_p, kept_f = state[:, 0], state[:, 1]
    parts = []
    for block, n, kept in ((past, blocks.past, kept_p), (future, blocks.future, kept_f)):
        if n == 0:
            continue
        if block is None:
            raise ValueError("a block the state keeps must be given")
        if block.shape[1] != n:
            raise ValueError(f"a block of {n} frames was expected, got shape {tuple(block.shape)}")
        parts.append(block * per_sample(kept.to(block.dtype), block))
    if not parts:
        raise ValueError("MCVD needs past or future frames to condition on")
    return torch.cat(parts, 1)


def mcvd_loss(model: Model, process: Process, window: torch.Tensor, blocks: Blocks, generator: torch.Generator, *,
              p_mask: float = 0.5, p_future: float = 0.5, t: torch.Tensor | None = None,
              state: torch.Tensor | None = None, eps: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample MCVD loss ½||eps − eps_theta(x_t, t, cond, cond_mask)||² (Voleti et al. 2022, Sec. 3; mcvd-pytorch losses/dsm.py).

    ``t``, ``state`` and ``eps`` default to fresh draws from ``generator``.
    """
    past, current, future = blocks.split(window)
    b = window.shape[0]
    state = mcvd_masks(b, generator, p_mask, p_future) if state is None else state.to(torch.bool)
    if blocks.future == 0:
        state = torch.stack([state[:, 0], torch.zeros_like(state[:, 0])], 1)
    if getattr(model, "prediction", "eps") != "eps":
        raise TypeError("MCVD's loss is on eps: the model must predict eps")
    t = training_times(process, b, generator) if t is None else t
    eps = torch.randn(current.shape, generator=generator, dtype=current.dtype, device=current.device) if eps is None else eps
    a, s = process.alpha(t), process.sigma(t)
    z = per_sample(a, current) * current + per_sample(s, current) * eps
    cond = conditioning(blocks, past, future, state)
    out = model(z, t.to(window.device), cond=cond, cond_mask=state.to(window.device))
    return 0.5 * ((eps - out) ** 2).reshape(b, -1).sum(1)


def mcvd_objective(process: Process, blocks: Blocks, *, p_mask: float = 0.5, p_future: float = 0.5) -> Callable:
    """``loss_fn(model, window, generator) -> scalar`` for ``diffcheck.training.train``: the batch mean of ``mcvd_loss``."""
    check_float(p_mask, "p_mask", low=0.0, high=1.0)
    check_float(p_future, "p_future", low=0.0, high=1.0)

    def loss_fn(model: Model, window: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return mcvd_loss(model, process, window, blocks, generator, p_mask=p_mask, p_future=p_future).mean()

    return loss_fn


class MCVDExact:
    """The Bayes-optimal MCVD model of a window mixture: ``model(z, t, cond=..., cond_mask=state)`` in every mask state.

    In state (past kept, future kept) it is E[· | z^current_t, the kept blocks] of the window law, the masked blocks
    integrated out; ``z`` is (B, current, ...) and ``cond`` (B, past + future, ...) as ``conditioning`` builds it.
    """

    def __init__(self, mixture: GaussianMixture, process: Process, blocks: Blocks, prediction: str = "eps") -> None:
        if not isinstance(mixture, GaussianMixture):
            raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
        if not isinstance(blocks, Blocks):
            raise TypeError(f"blocks must be Blocks, got {type(blocks).__name__}")
        if mixture.dim % blocks.total:
            raise ValueError(f"the mixture's dimension {mixture.dim} is not a whole number of frames of a {blocks.total}-frame window")
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        self.mixture, self.process, self.blocks, self.prediction = mixture, process, blocks, prediction
        self.frame_size = mixture.dim // blocks.total
        self._models: dict[tuple[bool, bool], ExactConditional] = {}

    def model(self, past_kept: bool, future_kept: bool) -> ExactConditional:
        """The exact conditional model of the current block in one mask state."""
        key = (bool(past_kept) and self.blocks.past > 0, bool(future_kept) and self.blocks.future > 0)
        if key not in self._models:
            c = self.blocks.coords(self.frame_size)
            known = torch.cat([c["past"] if key[0] else c["past"][:0], c["future"] if key[1] else c["future"][:0]])
            keep = torch.cat([c["current"], known])  # marginal over current + known, current first
            marginal = self.mixture.marginal(keep)
            n_cur = c["current"].numel()
            self._models[key] = ExactConditional(marginal, self.process, torch.arange(n_cur, keep.numel()), self.prediction)
        return self._models[key]

    def __call__(self, z: torch.Tensor, t: Any, cond: torch.Tensor | None = None, cond_mask: torch.Tensor | None = None) -> torch.Tensor:
        b = z.shape[0]
        state = torch.zeros(b, 2, dtype=torch.bool) if cond_mask is None else torch.as_tensor(cond_mask).to(torch.bool).reshape(b, -1)
        if state.shape[1] == 1:  # MCVD's own cond_mask: the past bit only
            state = torch.cat([state, torch.zeros_like(state)], 1)
        tt = torch.as_tensor(t, dtype=torch.float64)
        # a sampler passes the same cond and state at every step: reuse the known values (and the conditionals built on them)
        key_in = (id(cond), getattr(cond, "_version", None), id(cond_mask), getattr(cond_mask, "_version", None), b)
        memo = getattr(self, "_memo", None)
        if memo is None or memo[0] != key_in or memo[1] is not cond or memo[2] is not cond_mask:
            memo = (key_in, cond, cond_mask, self._known_values(cond, state, b))
            self._memo = memo
        out = torch.empty_like(z)
        for key, rows, x_a in memo[3]:
            t_rows = tt if tt.ndim == 0 else tt[rows]
            out[rows] = self.model(*key)(z[rows], t_rows, cond=x_a)
        return out

    def _known_values(self, cond: torch.Tensor | None, state: torch.Tensor, b: int) -> list:
        """(state, rows, known values) for each mask state present in the batch."""
        p = self.blocks.past * self.frame_size
        flat_cond = None if cond is None else cond.reshape(b, -1)
        groups = []
        for row in torch.unique(state, dim=0):
            key = (bool(row[0]), bool(row[1]))
            rows = (state == row).all(1).nonzero().reshape(-1)
            if rows.numel() == b:
                rows = slice(None)  # one state for the whole batch, as in sampling
            model = self.model(*key)
            parts = []
            if model.known.numel():
                if flat_cond is None:
                    raise ValueError("cond is required in a mask state that keeps a block")
                if key[0] and self.blocks.past:
                    parts.append(flat_cond[rows, :p])
                if key[1] and self.blocks.future:
                    parts.append(flat_cond[rows, p:])
            groups.append((key, rows, torch.cat(parts, 1) if parts else None))
        return groups


def mcvd_grid(process: DiscreteVP, steps: int = 100) -> torch.Tensor:
    """MCVD's subsampled DDPM grid: labels k = 0, skip, 2·skip, ... (k = 0 the noisiest, ᾱ stored reversed), then the data.

    Label k is DDPM step T − k, so the grid is T, T − skip, ..., skip, 0 with skip = T // steps (mcvd-pytorch
    `models/__init__.py`, ``ddpm_sampler`` with ``subsample_steps``).
    """
    if not isinstance(process, DiscreteVP):
        raise TypeError(f"process must be a DiscreteVP, got {type(process).__name__}")
    steps = check_int(steps, "steps", minimum=1, maximum=process.T)
    skip = process.T // steps
    labels = torch.arange(0, process.T, skip)
    return respaced_grid(process, process.T - labels)


def rollout(model: Model, process: Process, blocks: Blocks, grid: Any, *, sampler: Callable, generator: Any,
            n_blocks: int, first: torch.Tensor | None = None, batch: int | None = None, frame_shape: tuple[int, ...] | None = None,
            **sampler_options: Any) -> torch.Tensor:
    """Autoregressive block-wise generation: each block is predicted from the last ``past`` frames (future masked).

    ``first`` (B, past, ...) holds the initial frames; without it the first block is generated unconditionally
    (mask state "generation", ``batch`` and ``frame_shape`` required) and supplies the first past frames. Returns
    (B, frames, ...) with the initial frames followed by ``n_blocks`` generated blocks.
    """
    n_blocks = check_int(n_blocks, "n_blocks", minimum=1)
    noise = make_noise(generator)
    if blocks.past == 0:
        raise ValueError("rollout needs past frames to condition on (blocks.past >= 1)")

    def block(cond: torch.Tensor | None, state: torch.Tensor, like_rows: int, shape: tuple[int, ...], dtype) -> torch.Tensor:
        x_T = process.prior_std * noise(torch.empty(like_rows, blocks.current, *shape, dtype=dtype))
        if cond is None:
            cond = torch.zeros(like_rows, blocks.cond_frames, *shape, dtype=dtype)
        return sampler(model, process, x_T, grid, generator=generator, cond=cond, cond_mask=state, **sampler_options)

    if first is None:
        if batch is None or frame_shape is None:
            raise ValueError("without first frames, batch and frame_shape are required")
        state = torch.zeros(batch, 2, dtype=torch.bool)
        video = block(None, state, batch, tuple(frame_shape), torch.float64)
        if video.shape[1] < blocks.past:
            raise ValueError("the first generated block is shorter than the past window")
        n_blocks -= 1
    else:
        video = first
        if video.shape[1] < blocks.past:
            raise ValueError(f"first must hold at least {blocks.past} frames, got {video.shape[1]}")
    b, shape = video.shape[0], tuple(video.shape[2:])
    state = torch.tensor([[True, False]]).expand(b, 2)
    for _ in range(n_blocks):
        past = video[:, -blocks.past :]
        future = torch.zeros(b, blocks.future, *shape, dtype=video.dtype) if blocks.future else None
        cond = conditioning(blocks, past, future, state)
        video = torch.cat([video, block(cond, state, b, shape, video.dtype)], 1)
    return video
