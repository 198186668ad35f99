"""Key maps: how the tensors of a published checkpoint become the state dict of a diffcheck network, and back.

A :class:`Rule` names one of our keys, the checkpoint keys it is made from and an invertible transform. A
:class:`KeyMap` is the list of rules for one configuration plus the checkpoint keys read as metadata (a stored
noise ladder). Applying a map checks every key and shape first and reports every problem in one message.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, Mapping, Protocol, Sequence

import torch
from torch import Tensor

__all__ = ["CheckpointError", "Transform", "COPY", "Reshape", "Transpose", "QKV", "Rule", "KeyMap", "renamed"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the network: the message says what and where."""


class Transform(Protocol):
    """Maps the checkpoint's tensors for one key to ours and back."""

    def to_ours(self, theirs: Sequence[Tensor], shape: torch.Size) -> Tensor: ...

    def to_theirs(self, ours: Tensor) -> list[Tensor]: ...


@dataclasses.dataclass(frozen=True)
class _Copy:
    """The same tensor under another name."""

    def to_ours(self, theirs: Sequence[Tensor], shape: torch.Size) -> Tensor:
        return theirs[0]

    def to_theirs(self, ours: Tensor) -> list[Tensor]:
        return [ours]


COPY = _Copy()


@dataclasses.dataclass(frozen=True)
class Reshape:
    """The same numbers with trailing unit dimensions added or dropped: a conv1d or linear weight as a 1×1 conv2d."""

    ndim: int  # their number of dimensions

    def to_ours(self, theirs: Sequence[Tensor], shape: torch.Size) -> Tensor:
        return theirs[0].reshape(shape)

    def to_theirs(self, ours: Tensor) -> list[Tensor]:
        return [ours.reshape(ours.shape[: self.ndim])]


@dataclasses.dataclass(frozen=True)
class Transpose:
    """score_sde's NIN layer: y = x W + b with W of shape (in, out), ours a 1×1 conv of shape (out, in, 1, 1)."""

    def to_ours(self, theirs: Sequence[Tensor], shape: torch.Size) -> Tensor:
        return theirs[0].t().reshape(shape)

    def to_theirs(self, ours: Tensor) -> list[Tensor]:
        return [ours.reshape(ours.shape[:2]).t()]


SourceForm = Literal["linear", "conv1x1", "nin"]


@dataclasses.dataclass(frozen=True)
class QKV:
    """Separate query, key and value projections fused into one 1×1 conv of 3C outputs.

    ``layout`` is the order of our fused rows (see ``common.multihead_attention``): "heads_first" interleaves
    q, k, v per head, "qkv_first" stacks all queries, then keys, then values. ``form`` is how each of theirs is
    stored: a linear weight (C, C), a 1×1 conv (C, C, 1, 1) or a NIN weight (C_in, C_out). Biases are (C,).
    """

    heads: int
    layout: Literal["heads_first", "qkv_first"]
    form: SourceForm

    def _matrix(self, t: Tensor) -> Tensor:
        if t.dim() == 1:
            return t[:, None]
        return t.t() if self.form == "nin" else t.reshape(t.shape[0], -1)

    def to_ours(self, theirs: Sequence[Tensor], shape: torch.Size) -> Tensor:
        q, k, v = (self._matrix(t) for t in theirs)
        if self.layout == "qkv_first":
            fused = torch.cat([q, k, v], dim=0)
        else:
            c, width = q.shape
            fused = torch.stack([m.reshape(self.heads, c // self.heads, width) for m in (q, k, v)], dim=1)
        return fused.reshape(shape)

    def to_theirs(self, ours: Tensor) -> list[Tensor]:
        bias = ours.dim() == 1
        width = 1 if bias else ours.shape[1]
        c = ours.shape[0] // 3
        m = ours.reshape(3 * c, width)
        if self.layout == "qkv_first":
            parts = list(m.split(c, dim=0))
        else:
            parts = list(m.reshape(self.heads, 3, c // self.heads, width).unbind(1))
            parts = [p.reshape(c, width) for p in parts]
        if bias:
            return [p.reshape(c) for p in parts]
        if self.form == "nin":
            return [p.t() for p in parts]
        return [p.reshape(c, width) if self.form == "linear" else p.reshape(c, width, 1, 1) for p in parts]


@dataclasses.dataclass(frozen=True)
class Rule:
    """One of our keys made from checkpoint keys ``theirs`` by ``transform``."""

    ours: str
    theirs: tuple[str, ...]
    transform: Transform = COPY


def renamed(ours_prefix: str, theirs_prefix: str, names: Mapping[str, str | None], keys: Sequence[str],
            special: Mapping[str, Rule] | None = None) -> list[Rule]:
    """Rules for the keys of one submodule: ``names`` maps our child module to theirs ("" for the module itself).

    ``keys`` are all our keys; those under ``ours_prefix`` are mapped, child by child. ``special`` replaces the
    rule of a local key (e.g. a fused qkv).
    """
    rules = []
    start = ours_prefix + "."
    for key in keys:
        if not key.startswith(start):
            continue
        local = key[len(start):]
        if special and local in special:
            rules.append(special[local])
            continue
        child, _, param = local.rpartition(".")
        if child not in names or names[child] is None:
            raise KeyError(f"no counterpart for {key!r} under {theirs_prefix!r}")
        target = names[child]
        rules.append(Rule(key, (f"{theirs_prefix}.{target}.{param}" if target else f"{theirs_prefix}.{param}",)))
    return rules


def _listing(items: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


@dataclasses.dataclass(frozen=True)
class KeyMap:
    """The rules for one network configuration; ``extras`` are checkpoint keys read as metadata, if present."""

    rules: tuple[Rule, ...]
    extras: tuple[str, ...] = ()

    def theirs(self, ours: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Our state dict written in the checkpoint's keys and shapes (works on meta tensors: the official key list)."""
        out: dict[str, Tensor] = {}
        for rule in self.rules:
            for key, tensor in zip(rule.theirs, rule.transform.to_theirs(ours[rule.ours])):
                out[key] = tensor.contiguous()
        return out

    def ours(self, source: Mapping[str, Tensor], target: Mapping[str, Tensor], what: str) -> dict[str, Tensor]:
        """The checkpoint's tensors as our state dict, shaped like ``target``; one CheckpointError lists every problem."""
        self.check_covers(target)
        expected = self.theirs(target)
        missing = [k for k in expected if k not in source]
        unexpected = [k for k in source if k not in expected and k not in self.extras]
        wrong = [f"{k} {tuple(source[k].shape)} (expected {tuple(expected[k].shape)})"
                 for k in expected if k in source and tuple(source[k].shape) != tuple(expected[k].shape)]
        if missing or unexpected or wrong:
            parts = []
            if missing:
                parts.append(f"{len(missing)} missing key(s): {_listing(missing)}")
            if unexpected:
                parts.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
            if wrong:
                parts.append(f"{len(wrong)} shape mismatch(es): {_listing(wrong)}")
            raise CheckpointError(f"the checkpoint does not fit {what}: " + "; ".join(parts))
        state = {}
        for rule in self.rules:
            tensor = rule.transform.to_ours([source[k] for k in rule.theirs], target[rule.ours].shape)
            state[rule.ours] = tensor.to(target[rule.ours].dtype if target[rule.ours].is_floating_point() else tensor.dtype)
        return state

    def check_covers(self, target: Mapping[str, Any]) -> None:
        """Every key of our network is made by exactly one rule (a defect of the map otherwise)."""
        made = [r.ours for r in self.rules]
        extra = sorted(set(made) - set(target))
        dup = sorted({k for k in made if made.count(k) > 1})
        left = sorted(set(target) - set(made))
        if extra or dup or left:
            raise AssertionError(f"key map defect: unknown {extra}, duplicated {dup}, not covered {left}")
