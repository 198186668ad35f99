"""Measuring on a device: timers (CUDA events or the host clock), medians of repeats, peak memory,
the two ceilings (matrix-multiply rate and copy bandwidth), FLOPs by ``FlopCounterMode``, and the
host-device synchronisations a call makes.

On CUDA every time is read from events recorded on the stream around the work (the work is
asynchronous; a host clock would time the launches); on a CPU the host clock is the truth.
"""

from __future__ import annotations

import datetime as dt
import math
import platform
import statistics
import subprocess
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["Timing", "once", "time_call", "timer_name", "sync", "peak_memory_reset", "peak_memory", "memory_allocated", "matmul_rate",
           "copy_bandwidth", "count_flops", "count_syncs", "environment", "is_oom"]


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timer_name(device: torch.device) -> str:
    """Which clock times work on ``device``."""
    return "cuda_events" if device.type == "cuda" else "perf_counter"


def once(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Seconds one call of ``fn`` takes on ``device`` and what it returned."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3, out
    start_s = time.perf_counter()
    out = fn()
    return time.perf_counter() - start_s, out


@dataclass(frozen=True)
class Timing:
    """Seconds of each repeat, their median and spread, and the last call's result (not serialised)."""

    seconds: tuple[float, ...]
    result: Any = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> float:
        """(max - min) / median of the repeats: a difference between variants smaller than this is noise."""
        return (max(self.seconds) - min(self.seconds)) / self.median if self.median > 0 else math.inf


def time_call(fn: Callable[[], Any], device: torch.device, repeats: int) -> Timing:
    """Time ``repeats`` calls of an already warmed-up ``fn`` on ``device``; the median is the figure."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    sync(device)
    seconds, out = [], None
    for _ in range(repeats):
        s, out = once(fn, device)
        seconds.append(s)
    return Timing(tuple(seconds), out)


def peak_memory_reset(device: torch.device) -> None:
    """Start a new peak-memory window (CUDA caching allocator)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> int | None:
    """Peak bytes allocated on ``device`` since the last reset; None off CUDA (no allocator statistics)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return None


def memory_allocated(device: torch.device) -> int | None:
    """Bytes allocated on ``device`` now; None off CUDA."""
    if device.type == "cuda":
        return int(torch.cuda.memory_allocated(device))
    return None


def is_oom(err: BaseException) -> bool:
    """Whether ``err`` is the device running out of memory."""
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(err, oom)) or "out of memory" in str(err).lower()


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int, repeats: int = 10, generator_seed: int = 0) -> dict:
    """Measured dense n x n x n matrix-product rate in TFLOP/s (2 n^3 per product) on random operands.

    Three input pairs are rotated so that repeated products do not run from cache; three warm-ups first.
    """
    gen = torch.Generator(device=device).manual_seed(generator_seed)
    pairs = [(torch.randn(n, n, generator=gen, device=device).to(dtype), torch.randn(n, n, generator=gen, device=device).to(dtype))
             for _ in range(3)]
    for a, b in pairs:
        a @ b
    sync(device)
    seconds = []
    for i in range(repeats):
        a, b = pairs[i % 3]
        s, _ = once(lambda: a @ b, device)
        seconds.append(s)
    med = statistics.median(seconds)
    return {"dtype": str(dtype).replace("torch.", ""), "n": n, "repeats": repeats, "median_s": med,
            "tflops": 2.0 * n**3 / med / 1e12}


def copy_bandwidth(device: torch.device, nbytes: int, repeats: int = 10) -> dict:
    """Measured device-to-device copy bandwidth in GB/s, counting bytes read plus bytes written."""
    n = nbytes // 4
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    sync(device)
    seconds = [once(lambda: dst.copy_(src), device)[0] for _ in range(repeats)]
    med = statistics.median(seconds)
    return {"bytes": 4 * n, "repeats": repeats, "median_s": med, "gbps": 2.0 * 4 * n / med / 1e9}


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` as ``torch.utils.flop_counter.FlopCounterMode`` counts them
    (matrix products, convolutions and attention, forward and any backward; elementwise work is not counted).

    Attention runs on the math backend while counting: some fused kernels (the CPU flash kernel) have no
    formula in the counter and would count as zero; the math backend's two products are what the fused
    kernels are credited with, so the count is the same on every device.
    """
    with sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def count_syncs(fn: Callable[[], Any], device: torch.device) -> int | None:
    """How many synchronising operations ``fn`` makes, as ``torch.cuda.set_sync_debug_mode("warn")`` flags them;
    None off CUDA, where there is nothing to synchronise with."""
    if device.type != "cuda":
        return None
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    return sum(1 for w in caught if "synchroniz" in str(w.message).lower())


def _driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout.strip()
        return out.splitlines()[0] if out else None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def environment(device: torch.device) -> dict:
    """Device name, driver, CUDA/cuDNN, torch and Python versions, date: what a figure was measured on."""
    env: dict[str, Any] = {
        "device": str(device), "torch": torch.__version__, "python": platform.python_version(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "host_cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update({
            "device_name": props.name, "compute_capability": f"{props.major}.{props.minor}",
            "multiprocessors": props.multi_processor_count, "memory_bytes": int(props.total_memory),
            "driver": _driver(), "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        })
    else:
        env.update({"device_name": f"CPU ({platform.machine()})", "driver": None, "cuda": None, "cudnn": None})
    return env
