"""Execution variants of an image network: precision, memory layout, compilation, CUDA graphs.

A variant changes how a network runs, never what it computes up to rounding: eager float32
(TF32 off for matrix products *and* cuDNN convolutions, whose default is on), bfloat16 autocast with
channels-last memory, and that through ``torch.compile`` (inductor) and its CUDA-graph mode
("reduce-overhead"). ``prepare(net, variant, device)`` returns a module called like the network,
``net(x, noise, y=None)``, which a sampler then uses through ``nets.wrap.wrap_net``; the sampler's
own state stays float32. ``precision(variant)`` sets the matrix-unit flags for the duration of a run.
How far a variant's samples may land from eager float32 is ``gpu_gate``'s.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

__all__ = ["Variant", "VARIANTS", "variant", "names", "unavailable", "precision", "prepare", "PreparedNet",
           "randomize_zero_weights"]


@dataclass(frozen=True)
class Variant:
    """How a network runs: ``autocast`` dtype, ``channels_last`` layout, ``compile`` mode."""

    name: str
    autocast: str | None = None  # "bfloat16" or None
    channels_last: bool = False
    compile: str | None = None  # torch.compile mode: "default" or "reduce-overhead" (CUDA graphs)

    @property
    def precision_class(self) -> str:
        """"fp32" or "bf16": the precision of the matrix products, which sets the gate's tolerance."""
        return "bf16" if self.autocast == "bfloat16" else "fp32"

    @property
    def cuda_graphs(self) -> bool:
        """Whether the compiled network replays CUDA graphs (torch.compile mode "reduce-overhead")."""
        return self.compile == "reduce-overhead"


VARIANTS: tuple[Variant, ...] = (
    Variant("fp32"),
    Variant("bf16+cl", autocast="bfloat16", channels_last=True),
    Variant("bf16+cl+compile", autocast="bfloat16", channels_last=True, compile="default"),
    Variant("bf16+cl+compile+graphs", autocast="bfloat16", channels_last=True, compile="reduce-overhead"),
)


def names() -> list[str]:
    """The variant names, in the order a benchmark runs them."""
    return [v.name for v in VARIANTS]


def variant(name: str) -> Variant:
    """The variant called ``name``."""
    for v in VARIANTS:
        if v.name == name:
            return v
    raise ValueError(f"unknown variant {name!r}; known: {', '.join(names())}")


def unavailable(v: Variant, device: torch.device | str) -> str | None:
    """Why ``v`` cannot run on ``device`` (a sentence), or None when it can."""
    if torch.device(device).type != "cuda" and v.cuda_graphs:
        return "CUDA graphs need a CUDA device"
    if v.compile is not None and not hasattr(torch, "compile"):
        return "this torch has no torch.compile"
    return None


@contextlib.contextmanager
def precision(v: Variant) -> Iterator[None]:
    """TF32 off for matrix products and cuDNN convolutions while ``v`` runs (float32 means float32; bf16
    autocast is unaffected), restoring the flags after."""
    if not isinstance(v, Variant):
        raise TypeError(f"v must be a Variant, got {type(v).__name__}")
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


class _Core(nn.Module):
    """The part that is compiled: layout change, autocast region and the network, returning float32."""

    def __init__(self, net: nn.Module, device_type: str, autocast: str | None, channels_last: bool) -> None:
        super().__init__()
        self.net = net
        self.device_type = device_type
        self.dtype = getattr(torch, autocast) if autocast else None
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor, noise: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.dtype is None:
            return self.net(x, noise, **kwargs)
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self.net(x, noise, **kwargs)
        return out.float()


class PreparedNet(nn.Module):
    """A network run as a variant; called like the network, with its ``config`` for ``nets.wrap``.

    Under CUDA graphs the output lives in the graph's memory pool and is overwritten by the next
    replay, so it is cloned (one small copy of the output per call).
    """

    def __init__(self, core: _Core, fn: Any, config: Any, clone: bool) -> None:
        super().__init__()
        self.core = core
        self.fn = fn
        self.config = config
        self.clone = clone

    def forward(self, x: torch.Tensor, noise: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        out = self.fn(x, noise, **kwargs)
        return out.clone() if self.clone else out


def prepare(net: nn.Module, v: Variant, device: torch.device | str, backend: str | None = None) -> PreparedNet:
    """``net`` (on ``device``, in eval mode, no parameter gradients) run as variant ``v``.

    A channels-last variant converts a copy of the network, so the original keeps its layout. ``backend``
    replaces inductor for a compiled variant ("eager": dynamo's tracing and guards alone, what a CPU dry
    run can afford; the mode then has no effect).
    """
    if not isinstance(net, nn.Module) or not hasattr(net, "config"):
        raise TypeError("net must be a diffcheck network (an nn.Module with a .config)")
    if not isinstance(v, Variant):
        raise TypeError(f"v must be a Variant, got {type(v).__name__}")
    device = torch.device(device)
    reason = unavailable(v, device)
    if reason is not None:
        raise ValueError(f"variant {v.name!r} cannot run on {device}: {reason}")
    if v.channels_last:
        net = copy.deepcopy(net).to(memory_format=torch.channels_last)
    core = _Core(net, device.type, v.autocast, v.channels_last)
    fn: Any = core
    if v.compile is not None:
        fn = torch.compile(core, backend=backend, dynamic=False) if backend else torch.compile(core, mode=v.compile, dynamic=False)
    return PreparedNet(core, fn, net.config, clone=v.cuda_graphs)


def randomize_zero_weights(net: nn.Module, generator: torch.Generator) -> int:
    """Redraw every all-zero weight tensor (ADM's zero-initialised output layers) from N(0, 1/fan_in).

    With those layers at zero a residual block is the identity and a network's output does not depend
    on most of its weights, so a comparison of variants would test little; and products on zeros can run
    faster than on data. Returns how many tensors were redrawn. Biases are left as they are.
    """
    count = 0
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim >= 2 and not bool(p.any()):
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) / fan_in**0.5)
                count += 1
    return count
