"""Where the time of a sampler run goes: its kernels (on CUDA) or operators (on a CPU) by time, split into
matrix-unit work (convolutions, matrix products, attention) and the rest (normalisation, elementwise,
reductions, copies: memory-bound work), with how busy the device was over the wall time.

Read with the FLOPs of the same run: FLOPs over the time of the matrix-unit kernels alone is the rate those
kernels reached; if it is near the matrix-multiply ceiling and the whole run is not, the time is lost in the
memory-bound kernels or in gaps between launches (a busy fraction well under 1 means the host cannot feed
the device: launch overhead or synchronisations).
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from typing import Any, Callable

import torch
from torch.profiler import ProfilerActivity, profile

from .gpu_timing import sync

__all__ = ["classify", "profile_run", "profile_step"]

_MATRIX = re.compile(
    r"gemm|conv|cutlass|xmma|gmma|mma|nvjet|cudnn|implicit|fprop|dgrad|wgrad|flash|fmha|attention|sdpa|"
    r"aten::(mm|bmm|addmm|baddbmm|matmul|linear|_convolution|convolution|mkldnn_convolution|_scaled_dot_product\w*)$",
    re.IGNORECASE,
)
_COPY = re.compile(r"memcpy|memset|aten::copy_|aten::to$|aten::_to_copy|aten::empty", re.IGNORECASE)


def classify(name: str) -> str:
    """"matrix" (convolution, matrix product, attention), "copy" (copies, casts, allocation), or "memory-bound"
    (normalisation, elementwise, reductions: everything else)."""
    if _MATRIX.search(name):
        return "matrix"
    if _COPY.search(name):
        return "copy"
    return "memory-bound"


def _device_events(prof: Any) -> list[tuple[str, float, int]]:
    """(name, seconds, calls) of the kernels, copies and memsets the profiler saw on the GPU."""
    out = []
    cuda = torch.autograd.DeviceType.CUDA
    for e in prof.events():
        if getattr(e, "device_type", None) == cuda:
            out.append((e.name, e.time_range.elapsed_us() / 1e6, 1))
    if out:
        return out
    # profilers that attach kernels to the operators that launched them: operators' self device time
    for a in prof.key_averages():
        us = getattr(a, "self_device_time_total", None)
        us = getattr(a, "self_cuda_time_total", 0.0) if us is None else us
        if us > 0:
            out.append((a.key, us / 1e6, a.count))
    return out


def _cpu_ops(prof: Any) -> list[tuple[str, float, int]]:
    """(name, self seconds, calls) of each operator on the CPU."""
    return [(a.key, a.self_cpu_time_total / 1e6, a.count) for a in prof.key_averages() if a.self_cpu_time_total > 0]


def profile_run(fn: Callable[[], Any], device: torch.device, *, flops: int | None = None, top: int = 15) -> dict:
    """Profile one call of an already warmed-up ``fn``; ``flops`` (of that call) adds the matrix-unit rate."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sync(device)
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        fn()
        sync(device)
    wall = time.perf_counter() - start
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    if device.type == "cuda":
        for name, seconds, calls in _device_events(prof):
            totals[name][0] += seconds
            totals[name][1] += calls
        unit = "kernel"
    else:
        for name, seconds, calls in _cpu_ops(prof):
            totals[name][0] += seconds
            totals[name][1] += calls
        unit = "operator"
    busy = sum(v[0] for v in totals.values())
    by_class: dict[str, float] = defaultdict(float)
    for name, (seconds, _) in totals.items():
        by_class[classify(name)] += seconds
    ranked = sorted(totals.items(), key=lambda kv: -kv[1][0])[:top]
    result = {
        "unit": unit,
        "wall_s": wall,
        "busy_s": busy,
        "busy_fraction": busy / wall if wall > 0 else None,
        "by_class_s": dict(by_class),
        "by_class_share": {k: v / busy for k, v in by_class.items()} if busy > 0 else {},
        "top": [{"name": name[:160], "class": classify(name), "calls": int(calls), "seconds": seconds,
                 "share": seconds / busy if busy > 0 else None} for name, (seconds, calls) in ranked],
        "note": ("profiler overhead inflates the wall time of launch-bound runs; shares are of the summed "
                 f"{unit} time"),
    }
    if flops is not None and by_class.get("matrix", 0.0) > 0:
        result["flops"] = flops
        result["matrix_class_tflops"] = flops / by_class["matrix"] / 1e12
    return result


def profile_step(runner: Any, step: Any) -> tuple[str, str | None]:
    """The plan's profile: a few steps of the headline's fastest run, when it reached under 35% of the ceiling."""
    from . import gpu_plan as P
    from . import gpu_variants as V

    fast = runner.fastest()
    if fast is None:
        return "skipped", "no run of the headline to profile"
    frac = fast["fraction_of_ceiling"]
    if frac is not None and frac >= P.TARGET_FRACTION:
        return "skipped", f"the headline reached {100 * frac:.1f}% of the ceiling (>= {100 * P.TARGET_FRACTION:.0f}%)"
    why = runner.allow(step, runner.reserved_estimate(step))
    if why:
        return "skipped", why
    subject = runner.subject(P.HEADLINE, fast["variant"], fast["batch"], steps=runner.s.profile_steps)
    with torch.no_grad(), V.precision(V.variant(fast["variant"])):
        subject.full()
        prof = profile_run(subject.full, runner.device, flops=int(fast["flops_per_image_per_nfe"] * fast["batch"] * subject.nfe))
    runner.record.set("profile", {"case": P.HEADLINE, "variant": fast["variant"], "batch": fast["batch"],
                                  "steps": runner.s.profile_steps, "nfe": subject.nfe, **prof})
    return "done", None
