"""Frames of a video batch: which flat coordinates a set of frames occupies, and frame masks.

A video batch is (B, F, *frame_shape) with frames on axis 1; flattened per sample it is laid out frame after frame,
as ``toy.SequenceMixture`` is, so frame f of a video with P values per frame holds coordinates f·P, ..., f·P + P − 1.
A frame mask is a boolean tensor over frames, (F,) for the whole batch or (B, F) per sample, True at the
conditioning (known) frames.
"""

from __future__ import annotations

from typing import Any

import torch

from toy.validate import as_index_tensor, check_int

__all__ = ["frame_coords", "as_frame_mask", "coord_mask", "put_frames"]


def frame_coords(frames: Any, frame_size: int, num_frames: int | None = None) -> torch.Tensor:
    """The flat coordinates (sorted, int64) of the given frame indices, ``frame_size`` values per frame."""
    frame_size = check_int(frame_size, "frame_size", minimum=1)
    f = as_index_tensor(frames, "frames").reshape(-1)
    if bool((f < 0).any()) or (num_frames is not None and bool((f >= num_frames).any())):
        raise ValueError(f"frames must lie in [0, {num_frames if num_frames is not None else 'F'} - 1], got {f.tolist()}")
    if f.unique().numel() != f.numel():
        raise ValueError(f"frames must be distinct, got {f.tolist()}")
    f = f.sort().values
    return (f[:, None] * frame_size + torch.arange(frame_size)).reshape(-1)


def as_frame_mask(mask: Any, num_frames: int, batch: int | None = None) -> torch.Tensor:
    """A boolean frame mask of shape (F,) or (B, F), True at the conditioning frames."""
    if not isinstance(mask, torch.Tensor):
        mask = torch.as_tensor(mask)
    if mask.dtype != torch.bool:
        if mask.dtype.is_floating_point or bool(((mask != 0) & (mask != 1)).any()):
            raise ValueError("mask must be boolean (or 0/1) over frames")
        mask = mask.to(torch.bool)
    if mask.ndim not in (1, 2) or mask.shape[-1] != num_frames:
        raise ValueError(f"mask must have shape ({num_frames},) or (B, {num_frames}), got {tuple(mask.shape)}")
    if mask.ndim == 2 and batch is not None and mask.shape[0] != batch:
        raise ValueError(f"a per-sample mask must have {batch} rows, got {mask.shape[0]}")
    return mask


def coord_mask(mask: torch.Tensor, frame_size: int) -> torch.Tensor:
    """A frame mask (…, F) repeated over the values of each frame: (…, F·frame_size)."""
    return mask.repeat_interleave(frame_size, dim=-1)


def put_frames(video: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``video`` with its frames replaced by those of ``values`` where ``mask`` (F,) or (B, F) is True."""
    if values.shape != video.shape:
        raise ValueError(f"values must have the shape of the video {tuple(video.shape)}, got {tuple(values.shape)}")
    m = mask if mask.ndim == 2 else mask[None].expand(video.shape[0], -1)
    m = m.to(video.device).reshape(video.shape[0], video.shape[1], *([1] * (video.ndim - 2)))
    return torch.where(m, values.to(video.dtype), video)
