"""Training hyperparameters as one frozen dataclass (defaults: DDPM's Adam at 2e-4 with clipping at 1; NCSNv2's EMA)."""

from __future__ import annotations

import dataclasses
from typing import Any

from toy.validate import check_choice, check_float, check_int

__all__ = ["TrainConfig", "RESUMABLE_FIELDS"]

RESUMABLE_FIELDS = ("steps", "log_every", "checkpoint_every", "keep_checkpoints", "progress")
"""Fields a resumed run may change; any other difference from the checkpoint's config is an error."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train: optimiser, warmup, clipping, EMA, precision, batching, logging and checkpoints.

    ``batch_size`` is the global batch. It is split into ``chunks`` equal micro-batches (strided: chunk c holds
    samples c, c + chunks, ...), each with its own loss, noise seed and dropout seed, and the gradient is their
    mean; ``chunks`` must be a multiple of the number of processes, which share the chunks out. A run with the
    same ``chunks`` therefore computes the same thing on any number of processes. ``None`` means one chunk per
    process. ``ema_rate``: 0.999 is Song & Ermon 2020, technique 5, DDPM uses 0.9999. The learning rate at (0-based)
    step s is ``lr · min(1, (s + 1)/warmup_steps)`` (linear warmup, Ho et al. 2020 App. B use 5000 steps).
    """

    steps: int
    batch_size: int
    lr: float = 2e-4
    optimizer: str = "adam"
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    ema_rate: float = 0.999
    precision: str = "fp32"
    chunks: int | None = None
    data_seed: int = 0
    shuffle: bool = True
    log_every: int = 1
    checkpoint_every: int | None = None
    keep_checkpoints: int = 2
    progress: bool = True

    def __post_init__(self) -> None:
        check_int(self.steps, "steps", minimum=0)
        check_int(self.batch_size, "batch_size", minimum=1)
        check_float(self.lr, "lr", low=0.0)
        check_choice(self.optimizer, "optimizer", ("adam", "adamw"))
        betas = self.adam_betas
        if not isinstance(betas, (tuple, list)) or len(betas) != 2 or not all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and 0.0 <= float(b) < 1.0 for b in betas):
            raise ValueError(f"adam_betas must be two numbers in [0, 1), got {self.adam_betas!r}")
        check_float(self.adam_eps, "adam_eps", low=0.0, low_open=True)
        check_float(self.weight_decay, "weight_decay", low=0.0)
        check_int(self.warmup_steps, "warmup_steps", minimum=0)
        if self.grad_clip is not None:
            check_float(self.grad_clip, "grad_clip", low=0.0, low_open=True)
        check_float(self.ema_rate, "ema_rate", low=0.0, high=1.0, high_open=True)
        check_choice(self.precision, "precision", ("fp32", "bf16", "fp16"))
        if self.chunks is not None:
            check_int(self.chunks, "chunks", minimum=1)
            if self.batch_size % self.chunks:
                raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of chunks ({self.chunks})")
        check_int(self.data_seed, "data_seed", minimum=0)
        check_int(self.log_every, "log_every", minimum=1)
        if self.checkpoint_every is not None:
            check_int(self.checkpoint_every, "checkpoint_every", minimum=1)
        check_int(self.keep_checkpoints, "keep_checkpoints", minimum=1)

    def lr_at(self, step: int) -> float:
        """The learning rate of 0-based step ``step`` (linear warmup, then constant)."""
        if self.warmup_steps == 0:
            return self.lr
        return self.lr * min(1.0, (step + 1) / self.warmup_steps)

    def to_json(self) -> dict[str, Any]:
        """The fields as JSON values (tuples become lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    def differences(self, saved: dict[str, Any]) -> list[str]:
        """Fields (other than RESUMABLE_FIELDS) whose value differs from a saved ``to_json()``."""
        mine = self.to_json()
        out = []
        for key in sorted(set(mine) | set(saved)):
            if key in RESUMABLE_FIELDS:
                continue
            a, b = mine.get(key), saved.get(key)
            if a != b:  # JSON keeps floats exactly, so equal values compare equal
                out.append(f"{key}: checkpoint {b!r}, now {a!r}")
        return out
