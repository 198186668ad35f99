"""Measuring one sampler run on a device: warm-up (compilation, cuDNN's search, CUDA-graph recording),
timed repeats, peak memory, the figures derived from them, and what compilation did.

A *subject* is anything that samples: ``run(x_T, grid_or_nfe)`` returning the samples, with the number of
model evaluations of a short run (the warm-up's) and of the whole run. Our samplers and diffusers' loop are
both subjects, so both are measured by the same code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from . import gpu_timing as T

__all__ = ["Subject", "warm_up", "timed", "figures", "compile_counters", "ceilings"]


@dataclass(frozen=True)
class Subject:
    """``short()`` and ``full()`` run the sampler over the first steps and over the whole grid, from one x_T."""

    short: Callable[[], torch.Tensor]
    full: Callable[[], torch.Tensor]
    short_nfe: int
    nfe: int


def warm_up(subject: Subject, device: torch.device, calls: int) -> dict:
    """``calls`` short runs (the first takes compilation and cuDNN's search; CUDA graphs are recorded on
    the next ones), then one more, timed: seconds per NFE, and what the warm-up cost beyond steady runs."""
    if isinstance(calls, bool) or not isinstance(calls, int) or calls < 1:
        raise ValueError(f"calls must be a positive int, got {calls!r}")
    seconds = [T.once(subject.short, device)[0] for _ in range(calls)]
    steady, _ = T.once(subject.short, device)
    return {"first_call_s": seconds[0], "calls": calls + 1, "steady_s": steady, "s_per_nfe": steady / subject.short_nfe,
            "excess_s": max(sum(seconds) - calls * steady, 0.0)}


def timed(subject: Subject, device: torch.device, repeats: int, rows: int) -> dict:
    """``repeats`` whole runs, timed (CUDA events on a GPU, the host clock on a CPU); the process's peak
    memory over them; whether the samples are finite; the first ``rows`` samples (float32, on the host)."""
    T.peak_memory_reset(device)
    timing = T.time_call(subject.full, device, repeats)
    out = timing.result
    return {"timing": timing, "peak_memory_bytes": T.peak_memory(device), "finite": bool(torch.isfinite(out).all()),
            "rows": out[:rows].detach().float().cpu().clone()}


def figures(timing: T.Timing, batch: int, nfe: int, flops_per_image_nfe: float, ceiling_tflops: float | None) -> dict:
    """images/s, ms per NFE, achieved TFLOP/s (FLOPs x NFE x batch / median time) and its fraction of the ceiling."""
    med = timing.median
    tflops = flops_per_image_nfe * batch * nfe / med / 1e12
    spread = timing.spread
    return {"repeats": len(timing.seconds), "seconds": list(timing.seconds), "median_s": med,
            "spread": spread if math.isfinite(spread) else None, "images_per_s": batch / med, "ms_per_nfe": 1e3 * med / nfe,
            "flops_per_image_per_nfe": flops_per_image_nfe, "tflops": tflops,
            "fraction_of_ceiling": tflops / ceiling_tflops if ceiling_tflops else None}


def compile_counters() -> dict[str, int]:
    """Dynamo's running counts of graph breaks and of CUDA-graph skips (inductor declining a graph)."""
    from torch._dynamo.utils import counters

    return {"graph_breaks": int(sum(counters["graph_break"].values())),
            "cudagraph_skips": int(counters["inductor"].get("cudagraph_skips", 0))}


def ceilings(device: torch.device, n: int, copy_bytes: int, fp32_context: Callable[[], Any]) -> dict:
    """The bf16 matrix-product rate (the ceiling), the float32 one (under ``fp32_context``: TF32 off) and
    the device-to-device copy bandwidth, each measured here and now."""
    out = {"matmul_bf16": T.matmul_rate(device, torch.bfloat16, n)}
    with fp32_context():
        out["matmul_fp32"] = T.matmul_rate(device, torch.float32, n)
    out["copy"] = T.copy_bandwidth(device, copy_bytes)
    return out
