"""Sampler throughput of the reference image models on CUDA, against the device's own ceilings and diffusers.

For each model and sampler at fixed NFE (``gpu_cases``) and each execution variant (``gpu_variants``:
eager fp32, TF32, bf16 autocast, channels-last, torch.compile and its CUDA-graph mode): images/s, ms per
NFE, peak memory, FLOPs per NFE (``FlopCounterMode``), achieved TFLOP/s and its fraction of the bf16
matrix-multiply rate measured in the same run; the samples of every variant from fixed noise against eager
float32; diffusers' UNet2DModel (google/ddpm-cifar10-32 configuration) driven by its DDIM and DDPM
schedulers at the same batch, NFE and precision (``gpu_diffusers``; absent without diffusers); a profile of
the fastest run (``gpu_profile``). Times are CUDA-event medians of repeats after warm-up runs (which take
the compilation, cuDNN's algorithm search and CUDA-graph recording). The JSON is rewritten atomically
after every measurement, so a run stopped early leaves what it measured; ``--budget-s`` makes a run skip
(with the reason recorded) what would not fit. A markdown table and a plot are written beside the JSON
(``gpu_report``).

GPU session: an H100 or H200 through the device tool, whose commands stop at 10 minutes, so the run is
split in two parts of 480 s of measurements each (what would not fit is skipped with the reason; the
JSON holds every measurement made before a stop). diffusers is not installed there; fetch its wheel once,
here in the repository root::

    echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl diffusers==0.42.1 importlib_metadata==10.2.0

then run the two parts, each one command with ``carry=[".whl"]`` and ``timeout_s=600``::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site; PYTHONUNBUFFERED=1 python3 -m diffcheck.bench.gpu --cases ddpm/ddim50,ddpm/ddim10 --budget-s 480 --out $OUT/gpu_part1.json

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site; PYTHONUNBUFFERED=1 python3 -m diffcheck.bench.gpu --cases ddpm/ancestral250,ddpm/ancestral1000,ncsnpp/heun,ncsnpp/pc1000,adm/ddim50,adm/guided_ddim50,ncsnv2/annealed_langevin --budget-s 480 --out $OUT/gpu_part2.json

Part 1 holds the targets (DDIM-50 on the DDPM U-Net: every variant over batch sizes, diffusers beside it,
the profile). Copy the returned files to ``benchmarks/results/`` and make one report of both parts with
``python -m diffcheck.bench.gpu_report benchmarks/results/gpu_part1.json benchmarks/results/gpu_part2.json
--md benchmarks/results/gpu.md --plot benchmarks/results/gpu.png``. The GPU tests:
``python3 -m pytest tests/bench -m gpu -q``. On a machine without a time limit, ``diffcheck bench gpu``
runs everything into ``benchmarks/results/gpu_<device>.json``; ``diffcheck bench gpu --quick`` runs the
tiny configurations (on a CPU too, where the CUDA-only variants and figures are recorded as skipped, with
the reason) into ``diffcheck-out/``.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..io import write_json
from . import gpu_cases as C
from . import gpu_diffusers as D
from . import gpu_timing as T
from . import gpu_variants as V
from .gpu_profile import profile_run
from .gpu_summary import summarize

__all__ = ["Options", "Budget", "agreement", "run", "main", "GPU_BATCHES", "QUICK_BATCHES", "HEADLINE"]

GPU_BATCHES = (32, 64, 128, 256, 512, 1024, 2048, 4096)
QUICK_BATCHES = (2, 4)
HEADLINE = "ddpm/ddim50"
PROBE_VARIANT = "bf16+cl"  # the eager variant that picks each family's batch size
SATURATION_GAIN = 1.03  # a larger batch that does not raise throughput by 3% twice running ends a sweep
COMPILE_RESERVE_S = 90.0  # on CUDA, a compiled variant starts only with this much of the family's budget left
SCHEMA = 1


@dataclass(frozen=True)
class Options:
    """What one benchmark run measures; every field is checked, naming the argument."""

    device: str | None = None  # None: CUDA when present, else the CPU
    quick: bool = False  # tiny configurations and a few steps per sampler
    cases: tuple[str, ...] | None = None  # None: every case
    variants: tuple[str, ...] | None = None  # None: every variant (those the device lacks are recorded as skipped)
    batches: tuple[int, ...] | None = None  # the headline sweep; None: GPU_BATCHES, or QUICK_BATCHES when quick
    budget_s: float | None = None  # measurement seconds for the whole run; what would not fit is skipped
    max_repeats: int = 5
    target_s: float = 5.0  # timed seconds aimed at per measurement (repeats = target / predicted run, clamped)
    max_run_s: float = 60.0  # a single run predicted longer than this is skipped (or its batch halved)
    diffusers: bool = True
    profile: bool = True
    memory_probe: bool = True
    seed: int = 0
    agree_rows: int = 4  # samples compared against eager float32
    progress: bool = True

    def __post_init__(self) -> None:
        if self.device is not None and not isinstance(self.device, str):
            raise TypeError(f"device must be a string such as 'cuda' or 'cpu', got {self.device!r}")
        if self.cases is not None:
            if not self.cases:
                raise ValueError("cases must name at least one case")
            for c in self.cases:
                C.case(c)
        if self.variants is not None:
            if not self.variants:
                raise ValueError("variants must name at least one variant")
            for v in self.variants:
                V.variant(v)
        if self.batches is not None:
            if not self.batches or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in self.batches):
                raise ValueError(f"batches must be positive ints, got {self.batches!r}")
            if list(self.batches) != sorted(set(self.batches)):
                raise ValueError(f"batches must be increasing without repeats, got {self.batches!r}")
        if self.budget_s is not None and not (isinstance(self.budget_s, (int, float)) and self.budget_s > 0 and math.isfinite(self.budget_s)):
            raise ValueError(f"budget_s must be a positive number of seconds, got {self.budget_s!r}")
        for name in ("max_repeats", "agree_rows", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "seed" else 1):
                raise ValueError(f"{name} must be a {'non-negative' if name == 'seed' else 'positive'} int, got {value!r}")
        for name in ("target_s", "max_run_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


class Budget:
    """Seconds left for measurements (unlimited when ``total`` is None)."""

    def __init__(self, total: float | None) -> None:
        self.total = total
        self.start = time.perf_counter()

    def left(self) -> float:
        return math.inf if self.total is None else self.total - (time.perf_counter() - self.start)

    def allows(self, seconds: float) -> bool:
        return seconds <= self.left()


def agreement(out: torch.Tensor, ref: torch.Tensor, tol: float, scope: str) -> dict:
    """Relative L2 distance ||out - ref|| / ||ref|| (float64) against ``tol``; NaN or inf never passes."""
    if out.shape != ref.shape:
        raise ValueError(f"out and ref must have the same shape, got {tuple(out.shape)} and {tuple(ref.shape)}")
    a, b = out.detach().double().cpu(), ref.detach().double().cpu()
    denom = float(b.norm())
    rel = float((a - b).norm()) / denom if denom > 0 else math.inf
    ok = math.isfinite(rel) and rel <= tol
    return {"scope": scope, "rel_error": rel if math.isfinite(rel) else str(rel), "tolerance": tol, "passed": ok}


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


@dataclass
class _FamilyState:
    fam: C.Family
    prepared: dict[str, dict[str, torch.nn.Module]] = field(default_factory=dict)
    noise: dict[int, torch.Tensor] = field(default_factory=dict)
    batch: int | None = None


class _Run:
    """One benchmark run: measures in priority order, writing the JSON after every measurement."""

    def __init__(self, opts: Options, out: str | Path | None) -> None:
        self.o = opts
        self.out = None if out is None else Path(out)
        dev = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.device = torch.device(dev)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device is 'cuda' but no CUDA device is available")
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        if not opts.quick and self.device.type != "cuda":
            raise ValueError("the full benchmark needs a CUDA device (an H100 or H200 for the targets); "
                             "use quick=True (--quick) for the tiny configurations on this device")
        self.batches = opts.batches or (QUICK_BATCHES if opts.quick else GPU_BATCHES)
        default_off = [] if opts.variants is not None or self.device.type == "cuda" else \
            [v.name for v in V.VARIANTS if v.compile is not None and V.unavailable(v, self.device) is None]
        self.variants = [V.variant(n) for n in (opts.variants or V.names()) if n not in default_off]
        self.case_ids = list(opts.cases or [c.id for c in C.CASES])
        self.budget = Budget(opts.budget_s)
        self.fbudget = self.budget  # the current family's share
        self._unet: torch.nn.Module | None = None  # diffusers' U-Net, built on first use
        self.refs: dict[tuple[str, int], torch.Tensor] = {}  # (case, batch or -1) -> eager fp32 rows
        self.res: dict[str, Any] = {
            "benchmark": "sampler throughput of the reference image models",
            "schema": SCHEMA, "complete": False, "configuration": "tiny" if opts.quick else "full",
            "environment": T.environment(self.device), "timer": T.timer_name(self.device),
            "settings": {"cudnn_benchmark": self.device.type == "cuda", "budget_s": opts.budget_s, "max_repeats": opts.max_repeats,
                         "target_s": opts.target_s, "max_run_s": opts.max_run_s, "batches": list(self.batches),
                         "variants": [v.name for v in self.variants], "cases": self.case_ids, "seed": opts.seed,
                         "agree_rows": opts.agree_rows, "tolerances": dict(V.TOLERANCES)},
            "ceilings": {}, "skipped": [], "families": {}, "cases": {}, "runs": [], "batch_probes": [],
            "memory_limits": [], "profile": None, "summary": {},
        }
        for name in default_off:
            self.skip(f"variant {name}", "not run by default on a CPU, where compiling takes minutes; select it with --variants")
        if self.device.type != "cuda":
            for what, why in (("CUDA-event timing", "no CUDA device: times are read from the host clock (time.perf_counter)"),
                              ("peak memory", "no CUDA device: peak memory is read from the CUDA caching allocator"),
                              ("host-device synchronisations", "no CUDA device: nothing to synchronise with"),
                              ("memory-limit probe", "no CUDA device: the probe looks for the batch at which the GPU runs out of memory")):
                self.skip(what, why)

    # -- bookkeeping ---------------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        if self.o.progress:
            print(f"[bench gpu {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def skip(self, what: str, reason: str) -> None:
        self.res["skipped"].append({"what": what, "reason": reason})

    def save(self) -> None:
        if self.out is not None:
            write_json(self.out, self.res)

    # -- ceilings ------------------------------------------------------------------------------------
    def ceilings(self) -> None:
        cuda = self.device.type == "cuda"
        n = 256 if self.o.quick and not cuda else (2048 if self.o.quick else 8192)
        self.res["ceilings"]["matmul_bf16"] = T.matmul_rate(self.device, torch.bfloat16, n)
        with V.precision(V.variant("fp32")):
            self.res["ceilings"]["matmul_fp32"] = T.matmul_rate(self.device, torch.float32, n)
        self.res["ceilings"]["copy"] = T.copy_bandwidth(self.device, (1 << 30) if cuda and not self.o.quick else (1 << 24))
        self.log(f"ceilings: bf16 matmul {self.res['ceilings']['matmul_bf16']['tflops']:.3g} TFLOP/s, "
                 f"copy {self.res['ceilings']['copy']['gbps']:.4g} GB/s")
        self.save()

    @property
    def bf16_rate(self) -> float | None:
        c = self.res["ceilings"].get("matmul_bf16")
        return None if c is None else c["tflops"]

    # -- preparation ---------------------------------------------------------------------------------
    def nets_for(self, st: _FamilyState, v: V.Variant) -> dict[str, torch.nn.Module]:
        if v.name not in st.prepared:
            st.prepared[v.name] = {k: V.prepare(net, v, self.device) for k, net in st.fam.nets.items()}
        return st.prepared[v.name]

    def release(self, st: _FamilyState, v: V.Variant) -> None:
        st.prepared.pop(v.name, None)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def noise(self, st: _FamilyState, batch: int) -> torch.Tensor:
        if batch not in st.noise:
            st.noise = {batch: C.initial_noise(st.fam, batch)}  # one batch at a time: a large one is large
        return st.noise[batch]

    # -- one case's facts ----------------------------------------------------------------------------
    def case_info(self, c: C.Case, st: _FamilyState) -> dict:
        if c.id in self.res["cases"]:
            return self.res["cases"][c.id]
        fam = st.fam
        g = C.grid(c, fam)
        _, evaluate = C.sampler_fn(c, fam, self.nets_for(st, V.variant("fp32")))
        x2 = self.noise_small(st, 2)
        t_mid = g[len(g) // 2]
        with torch.no_grad(), V.precision(V.variant("fp32")):
            flops2 = T.count_flops(lambda: evaluate(x2, t_mid))
        info = {"family": c.family, "sampler": c.sampler, "description": c.description, "steps": len(g) - 1,
                "nfe": C.nfe(c, fam, g), "nominal_steps": c.steps, "deterministic": c.deterministic,
                "flops_per_image_per_nfe": flops2 / 2, "flops_counted_at_batch": 2, "syncs_per_nfe": None,
                "params": dict(fam.parameters)}
        self.res["cases"][c.id] = info
        self.save()
        return info

    def noise_small(self, st: _FamilyState, batch: int) -> torch.Tensor:
        return C.initial_noise(st.fam, batch)

    def count_syncs(self, c: C.Case, st: _FamilyState, batch: int) -> None:
        info = self.res["cases"][c.id]
        if self.device.type != "cuda" or info.get("syncs_per_nfe") is not None:
            return
        run, _ = C.sampler_fn(c, st.fam, self.nets_for(st, V.variant("fp32")))
        g = C.grid(c, st.fam)
        short, longer = g[: min(2, len(g))], g[: min(4, len(g))]
        x = self.noise(st, batch)
        with torch.no_grad(), V.precision(V.variant("fp32")):
            run(x, longer, self.o.seed)
            n1, n2 = (T.count_syncs(lambda: run(x, gs, self.o.seed), self.device) for gs in (short, longer))
        e1, e2 = C.nfe(c, st.fam, short), C.nfe(c, st.fam, longer)
        # per evaluation from the difference of two run lengths; what is left is paid once per run
        per_nfe = (n2 - n1) / (e2 - e1) if e2 > e1 else n1 / e1
        info["syncs_per_nfe"] = per_nfe
        info["syncs_per_run"] = n1 - per_nfe * e1
        self.save()

    # -- references for agreement --------------------------------------------------------------------
    def reference(self, c: C.Case, st: _FamilyState, batch: int, short: bool) -> torch.Tensor | None:
        """Eager fp32 output, first ``agree_rows`` rows: of the whole run on x_T[:k] (deterministic samplers,
        per-sample independent) or of the short run at ``batch`` with the same seed (any sampler)."""
        k = min(self.o.agree_rows, batch)
        key = (c.id, -1 if not short else batch)
        if key not in self.refs:
            if not short and not c.deterministic:
                return None
            g = C.grid(c, st.fam)
            g = g[: min(3, len(g))] if short else g
            x = self.noise(st, batch) if short else self.noise_small(st, self.o.agree_rows)
            run, _ = C.sampler_fn(c, st.fam, self.nets_for(st, V.variant("fp32")))
            with torch.no_grad(), V.precision(V.variant("fp32")):
                self.refs[key] = run(x, g, self.o.seed)[: self.o.agree_rows].detach().clone()
        return self.refs[key][:k]

    # -- a measurement -------------------------------------------------------------------------------
    def short(self, c: C.Case, st: _FamilyState, v: V.Variant, batch: int) -> dict:
        """Warm-up runs over the first two steps (compilation, cuDNN's search, CUDA-graph recording), then
        a timed one: seconds per NFE for the whole batch, and the output's first rows."""
        run, _ = C.sampler_fn(c, st.fam, self.nets_for(st, v))
        g = C.grid(c, st.fam)
        gs = g[: min(3, len(g))]
        n = C.nfe(c, st.fam, gs)
        x = self.noise(st, batch)
        k = min(self.o.agree_rows, batch)
        with torch.no_grad(), V.precision(v):
            first, _ = T.once(lambda: run(x, gs, self.o.seed), self.device)
            for _ in range(2 if v.compile is not None else 0):  # CUDA graphs are recorded on later calls
                T.once(lambda: run(x, gs, self.o.seed), self.device)
            timing = T.time_call(lambda: run(x, gs, self.o.seed), self.device, 1 if self.o.quick else 2)
        return {"first_call_s": first, "s_per_nfe": timing.median / n, "out": timing.result[:k].detach().clone()}

    def measure(self, c: C.Case, st: _FamilyState, v: V.Variant, batch: int) -> dict:
        """Time case ``c`` with variant ``v`` at ``batch`` (warm-up, repeats, peak memory, agreement); record it."""
        info = self.case_info(c, st)
        row: dict[str, Any] = {"case": c.id, "variant": v.name, "precision": v.precision_class, "batch": batch,
                               "nfe": info["nfe"], "status": "ok", "reason": None}
        reason = V.unavailable(v, self.device)
        if reason is not None:
            return self.record(row, "skipped", reason)
        if self.fbudget.left() <= 0:
            return self.record(row, "skipped", "budget: no measurement time left")
        if v.compile is not None and self.device.type == "cuda" and self.fbudget.left() < COMPILE_RESERVE_S:
            return self.record(row, "skipped", f"budget: compiling takes a minute or more, {self.fbudget.left():.0f} s left")
        k = min(self.o.agree_rows, batch)
        before = _compile_counters() if v.compile is not None else None
        try:
            warm = self.short(c, st, v, batch)
            predicted = warm["s_per_nfe"] * info["nfe"]
            row["warmup_first_call_s"] = warm["first_call_s"]
            row["predicted_run_s"] = predicted
            if predicted > self.o.max_run_s:
                return self.record(row, "skipped", f"one run is predicted to take {predicted:.0f} s > max_run_s = {self.o.max_run_s:g} s")
            repeats = max(1, min(self.o.max_repeats, int(self.o.target_s / max(predicted, 1e-9))))
            if not self.fbudget.allows(predicted * repeats):
                if not self.fbudget.allows(predicted):
                    return self.record(row, "skipped", f"budget: a run is predicted to take {predicted:.1f} s, "
                                                       f"{max(self.fbudget.left(), 0):.0f} s left")
                repeats = 1
            checks = [_agree(warm["out"], self.reference(c, st, batch, short=True), v,
                             "first 2 steps at the same batch and noise as eager fp32")]
            run, _ = C.sampler_fn(c, st.fam, self.nets_for(st, v))
            g = C.grid(c, st.fam)
            x = self.noise(st, batch)
            T.peak_memory_reset(self.device)
            start = T.memory_allocated(self.device)
            with torch.no_grad(), V.precision(v):
                timing = T.time_call(lambda: run(x, g, self.o.seed), self.device, repeats)
            row["peak_memory_bytes"] = T.peak_memory(self.device)
            row["run_memory_bytes"] = None if start is None else row["peak_memory_bytes"] - start
            out = timing.result
            row["finite"] = bool(torch.isfinite(out).all())
            ref = self.reference(c, st, batch, short=False)
            if ref is not None:
                checks.append(_agree(out[:k], ref, v, f"whole run, first {k} samples vs eager fp32 run at batch {k}"))
        except Exception as err:  # noqa: BLE001  a failed measurement is recorded and the run goes on
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            return self.record(row, "oom" if T.is_oom(err) else "failed", f"{type(err).__name__}: {str(err)[:400]}")
        row["agreement"] = checks
        row["agrees"] = all(a["passed"] for a in checks) and row["finite"]
        if before is not None:  # what compilation did: graph breaks, and CUDA graphs it declined to use
            after = _compile_counters()
            row["compile"] = {key: after[key] - before[key] for key in after}
        row.update(self.figures(timing, batch, info["nfe"], info["flops_per_image_per_nfe"]))
        return self.record(row, "ok", None)

    def figures(self, timing: T.Timing, batch: int, nfe: int, flops_per_image_nfe: float) -> dict:
        med = timing.median
        tflops = flops_per_image_nfe * batch * nfe / med / 1e12
        rate = self.bf16_rate
        return {"repeats": len(timing.seconds), "seconds": list(timing.seconds), "median_s": med, "spread": _finite(timing.spread),
                "images_per_s": batch / med, "ms_per_nfe": 1e3 * med / nfe, "tflops": tflops,
                "fraction_of_bf16_matmul": tflops / rate if rate else None}

    def record(self, row: dict, status: str, reason: str | None) -> dict:
        row["status"], row["reason"] = status, reason
        self.res["runs"].append(row)
        self.save()
        if status == "ok":
            frac = row.get("fraction_of_bf16_matmul")
            self.log(f"{row['case']} {row['variant']} B={row['batch']}: {row['images_per_s']:.4g} img/s, "
                     f"{row['ms_per_nfe']:.4g} ms/NFE, {row['tflops']:.3g} TFLOP/s"
                     + (f" ({100 * frac:.1f}% of bf16 matmul)" if frac else "") + ("" if row["agrees"] else "  DISAGREES with fp32"))
        else:
            self.log(f"{row['case']} {row['variant']} B={row['batch']}: {status}: {reason}")
        return row

    # -- choosing batch sizes ------------------------------------------------------------------------
    def sweep(self, c: C.Case, st: _FamilyState, variants: list[V.Variant]) -> None:
        """Eager variants over the batch sizes, each until the memory limit, saturation or the budget."""
        for v in variants:
            if V.unavailable(v, self.device) is not None:
                self.record({"case": c.id, "variant": v.name, "precision": v.precision_class, "batch": None, "nfe": None},
                            "skipped", V.unavailable(v, self.device))
                continue
            best, misses = 0.0, 0
            for b in self.batches:
                row = self.measure(c, st, v, b)
                if row["status"] != "ok":
                    break
                misses = 0 if row["images_per_s"] > best * SATURATION_GAIN else misses + 1
                best = max(best, row["images_per_s"])
                if misses >= 2:
                    break
            if v.name not in ("fp32", PROBE_VARIANT):
                self.release(st, v)

    def fastest(self, c: C.Case) -> dict | None:
        """The successful run of ``c`` with the most images per second so far."""
        return max((r for r in self.res["runs"] if r["case"] == c.id and r["status"] == "ok"),
                   key=lambda r: r["images_per_s"], default=None)

    def best_batch(self, c: C.Case) -> int | None:
        """The batch at which the probe variant (or, failing it, any variant) of ``c`` ran fastest."""
        ok = [r for r in self.res["runs"] if r["case"] == c.id and r["status"] == "ok"]
        probe = [r for r in ok if r["variant"] == PROBE_VARIANT] or ok
        return max(probe, key=lambda r: r["images_per_s"])["batch"] if probe else None

    def probe(self, c: C.Case, st: _FamilyState) -> None:
        """Pick a family's batch size from short runs of the probe variant: images x NFE per second."""
        v = V.variant(PROBE_VARIANT)
        best, misses = 0.0, 0
        for b in self.batches:
            if self.fbudget.left() <= 0:
                break
            entry: dict[str, Any] = {"case": c.id, "variant": v.name, "batch": b}
            try:
                warm = self.short(c, st, v, b)
            except Exception as err:  # noqa: BLE001
                entry.update(status="oom" if T.is_oom(err) else "failed", reason=f"{type(err).__name__}: {str(err)[:300]}")
                self.res["batch_probes"].append(entry)
                self.save()
                break
            rate = b / warm["s_per_nfe"]
            entry.update(status="ok", s_per_nfe=warm["s_per_nfe"], image_nfe_per_s=rate)
            self.res["batch_probes"].append(entry)
            self.save()
            self.log(f"probe {c.id} B={b}: {rate:.4g} image-NFE/s")
            misses = 0 if rate > best * SATURATION_GAIN else misses + 1
            if rate > best:
                best, st.batch = rate, b
            if misses >= 2 or warm["s_per_nfe"] * C.nfe(c, st.fam, C.grid(c, st.fam)) > 4 * self.o.max_run_s:
                break
        self.release(st, v)

    def case_batch(self, c: C.Case, st: _FamilyState) -> int:
        """The family's batch, halved while a run of ``c`` with the probe variant would exceed half of max_run_s."""
        b = st.batch
        try:
            per_nfe = self.short(c, st, V.variant(PROBE_VARIANT), b)["s_per_nfe"]
        except Exception:  # noqa: BLE001  measure() records what goes wrong at this batch
            return b
        predicted = per_nfe * self.res["cases"][c.id]["nfe"]
        while predicted > self.o.max_run_s / 2 and b > self.batches[0]:
            b, predicted = b // 2, predicted / 2
        return b

    def memory_limit(self, c: C.Case, st: _FamilyState) -> None:
        """Double the batch of one forward pass of the probe variant until the device runs out of memory."""
        v = V.variant(PROBE_VARIANT)
        _, evaluate = C.sampler_fn(c, st.fam, self.nets_for(st, v))
        t = C.grid(c, st.fam)[1]
        entry: dict[str, Any] = {"family": st.fam.name, "variant": v.name, "largest_ok_batch": None, "first_oom_batch": None,
                                 "peak_memory_bytes": None, "stopped": None}
        b = st.batch
        gen = torch.Generator(device=self.device).manual_seed(self.o.seed)
        while b <= 65536:
            if self.fbudget.left() <= 30:
                entry["stopped"] = "budget"
                break
            try:
                x = torch.randn((b,) + st.fam.data_shape, generator=gen, device=self.device)
                T.peak_memory_reset(self.device)
                with torch.no_grad(), V.precision(v):
                    seconds, _ = T.once(lambda: evaluate(x, t), self.device)
                entry.update(largest_ok_batch=b, peak_memory_bytes=T.peak_memory(self.device))
                del x
            except Exception as err:  # noqa: BLE001
                torch.cuda.empty_cache()
                if T.is_oom(err):
                    entry.update(first_oom_batch=b, stopped="out of memory")
                else:
                    entry.update(stopped=f"{type(err).__name__}: {str(err)[:200]}")
                break
            if seconds > 10.0:
                entry["stopped"] = f"a forward pass took {seconds:.1f} s at batch {b}: the next would not fit the time"
                break
            b *= 2
        else:
            entry["stopped"] = "batch 65536 fits"
        torch.cuda.empty_cache()
        self.res["memory_limits"].append(entry)
        self.log(f"memory limit {st.fam.name}: largest forward batch {entry['largest_ok_batch']} ({entry['stopped']})")
        self.save()

    # -- diffusers beside us ---------------------------------------------------------------------------
    def diffusers(self, c: C.Case, st: _FamilyState, batch: int) -> None:
        """diffusers' UNet2DModel + scheduler on the same x_T, batch, NFE and precision classes as our rows."""
        if not self.o.diffusers or c.family != "ddpm":
            return
        if not D.available():
            if not any(s["what"] == "diffusers comparison" for s in self.res["skipped"]):
                self.skip("diffusers comparison", "diffusers is not installed (optional dependency: pip install 'diffcheck[diffusers]')")
            return
        if "diffusers" not in self.res:
            unet = D.build_unet(tiny=self.o.quick, device=self.device, seed=self.o.seed)
            x2 = self.noise_small(st, 2)
            with torch.no_grad(), V.precision(V.variant("fp32")):
                flops = T.count_flops(lambda: unet(x2, torch.tensor(500)).sample) / 2
            self.res["diffusers"] = {"version": D.version(), "unet_config": _jsonable(D.TINY_UNET_CONFIG if self.o.quick else D.UNET_CONFIG),
                                     "scheduler_config": dict(D.SCHEDULER_CONFIG), "parameters": sum(p.numel() for p in unet.parameters()),
                                     "flops_per_image_per_nfe": flops, "runs": []}
            self._unet = unet
        ours = {v.precision_class for v in self.variants if V.unavailable(v, self.device) is None}
        kind = "ddim" if c.sampler == "ddim" else "ddpm"
        nfe = self.res["cases"][c.id]["nfe"]
        for mode in ("bf16w", "bf16", "bf16w+cl+compile", "fp32"):  # the modes the targets compare with come first
            cls = "fp32" if mode == "fp32" else "bf16"
            if cls not in ours:
                continue
            self.diffusers_row(c, st, batch, kind, mode, nfe)

    def diffusers_row(self, c: C.Case, st: _FamilyState, batch: int, kind: str, mode: str, nfe: int) -> None:
        row: dict[str, Any] = {"case": c.id, "scheduler": kind, "mode": mode, "precision": "fp32" if mode == "fp32" else "bf16",
                               "batch": batch, "nfe": nfe, "status": "ok", "reason": None}
        runs = self.res["diffusers"]["runs"]

        def done(status: str, reason: str | None) -> None:
            row["status"], row["reason"] = status, reason
            runs.append(row)
            self.save()
            self.log(f"diffusers {c.id} {mode} B={batch}: " + (f"{row['images_per_s']:.4g} img/s" if status == "ok" else f"{status}: {reason}"))

        if "compile" in mode and not any(v.compile and V.unavailable(v, self.device) is None for v in self.variants):
            return done("skipped", "no compile variant of ours runs here, so neither does diffusers' compiled mode")
        if "compile" in mode and self.device.type == "cuda" and self.fbudget.left() < COMPILE_RESERVE_S:
            return done("skipped", f"budget: compiling takes a minute or more, {self.fbudget.left():.0f} s left")
        if self.fbudget.left() <= 0:
            return done("skipped", "budget: no measurement time left")
        precision = V.variant("fp32")
        try:
            unet = D.prepared(self._unet, mode)
            run = D.loop(unet, kind, mode, self.device)
            x = self.noise(st, batch)
            with torch.no_grad(), V.precision(precision):
                for _ in range(3 if "compile" in mode else 1):
                    T.once(lambda: run(x, 2, self.o.seed), self.device)
                per_nfe = T.time_call(lambda: run(x, 2, self.o.seed), self.device, 1).median / 2
                predicted = per_nfe * nfe
                row["predicted_run_s"] = predicted
                if predicted > self.o.max_run_s:
                    return done("skipped", f"one run is predicted to take {predicted:.0f} s > max_run_s = {self.o.max_run_s:g} s")
                repeats = max(1, min(self.o.max_repeats, int(self.o.target_s / max(predicted, 1e-9))))
                if not self.fbudget.allows(predicted * repeats):
                    if not self.fbudget.allows(predicted):
                        return done("skipped", f"budget: a run is predicted to take {predicted:.1f} s")
                    repeats = 1
                T.peak_memory_reset(self.device)
                start = T.memory_allocated(self.device)
                timing = T.time_call(lambda: run(x, nfe, self.o.seed), self.device, repeats)
            row["peak_memory_bytes"] = T.peak_memory(self.device)
            row["run_memory_bytes"] = None if start is None else row["peak_memory_bytes"] - start
            row["finite"] = bool(torch.isfinite(timing.result).all())
        except Exception as err:  # noqa: BLE001
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            return done("oom" if T.is_oom(err) else "failed", f"{type(err).__name__}: {str(err)[:400]}")
        row.update(self.figures(timing, batch, nfe, self.res["diffusers"]["flops_per_image_per_nfe"]))
        done("ok", None)

    # -- where the time goes ---------------------------------------------------------------------------
    def profile(self, c: C.Case, st: _FamilyState) -> None:
        ok = [r for r in self.res["runs"] if r["case"] == c.id and r["status"] == "ok"]
        if not self.o.profile or not ok:
            return
        best = max(ok, key=lambda r: r["images_per_s"])
        v = V.variant(best["variant"])
        run, _ = C.sampler_fn(c, st.fam, self.nets_for(st, v))
        g = C.grid(c, st.fam)
        gs = g[: min(6, len(g))]
        x = self.noise(st, best["batch"])
        n = C.nfe(c, st.fam, gs)
        flops = int(self.res["cases"][c.id]["flops_per_image_per_nfe"] * best["batch"] * n)
        try:
            with torch.no_grad(), V.precision(v):
                run(x, gs, self.o.seed)
                prof = profile_run(lambda: run(x, gs, self.o.seed), self.device, flops=flops)
        except Exception as err:  # noqa: BLE001
            self.skip(f"profile of {c.id} {v.name}", f"{type(err).__name__}: {str(err)[:300]}")
            return
        self.res["profile"] = {"case": c.id, "variant": v.name, "batch": best["batch"], "steps": len(gs) - 1, "nfe": n, **prof}
        self.log(f"profile {c.id} {v.name} B={best['batch']}: busy {prof['busy_fraction'] or 0:.2f}, shares "
                 + ", ".join(f"{k} {100 * s:.0f}%" for k, s in prof["by_class_share"].items()))
        self.save()

    # -- a family --------------------------------------------------------------------------------------
    def family(self, name: str, seconds: float | None) -> None:
        self.fbudget = Budget(seconds)
        fam = C.build_family(name, tiny=self.o.quick, device=self.device, seed=self.o.seed)
        st = _FamilyState(fam)
        self.res["families"][name] = {"parameters": fam.parameters, "process": repr(fam.process),
                                      "data_shape": list(fam.data_shape), "label_classes": fam.label_classes,
                                      "budget_s": seconds, "batch": None}
        selected = []
        for c in [C.case(i) for i in self.case_ids if C.case(i).family == name]:
            try:
                self.case_info(c, st)
                selected.append(c)
            except Exception as err:  # noqa: BLE001  a case that cannot be set up is recorded, the others run
                self.skip(f"case {c.id}", f"setting it up failed: {type(err).__name__}: {str(err)[:300]}")
        if not selected:
            return
        headline = next((c for c in selected if c.id == HEADLINE), None)
        eager = [v for v in self.variants if v.compile is None]
        probe_first = sorted(eager, key=lambda v: v.name != PROBE_VARIANT)  # the probe variant picks the batch
        if headline is not None:
            self.sweep(headline, st, probe_first[:1])
            st.batch = self.best_batch(headline)
        else:
            self.probe(selected[0], st)
        self.res["families"][name]["batch"] = st.batch
        if st.batch is None and headline is not None and len(probe_first) > 1:
            self.sweep(headline, st, probe_first[1:])  # the probe variant could not run: sweep the others
            probe_first = probe_first[:1]
            st.batch = self.res["families"][name]["batch"] = self.best_batch(headline)
        if st.batch is None:
            self.skip(f"family {name}", "no batch size ran (see the rows and probes for why)")
            return
        for c in selected:
            self.count_syncs(c, st, st.batch)
        if headline is not None:
            # what the targets need first: the compiled variants at the chosen batch, diffusers beside the
            # fastest, the profile; then the other eager variants over the batch sizes
            for v in [v for v in self.variants if v.compile is not None]:
                self.measure(headline, st, v, st.batch)
            fastest = self.fastest(headline)
            if fastest is not None:
                self.diffusers(headline, st, fastest["batch"])
            self.profile(headline, st)
            self.sweep(headline, st, probe_first[1:])
            final = self.fastest(headline)
            if final is not None and fastest is not None and final["batch"] != fastest["batch"]:
                self.diffusers(headline, st, final["batch"])  # the targets compare at the fastest run's batch
        if self.o.memory_probe and self.device.type == "cuda":
            self.memory_limit(selected[0], st)
        others = [v for v in reversed(self.variants) if self.o.quick or v.name in OTHER_VARIANTS]
        for c in selected:
            if c is headline:
                continue
            b = self.case_batch(c, st)
            for v in others:
                self.measure(c, st, v, b)
            self.diffusers(c, st, b)
        for v in list(st.prepared):
            self.release(st, V.variant(v))
        torch._dynamo.reset()  # compiled code of this family's networks (and diffusers') is not needed again
        self.summarize()
        self.save()

    # -- the summary -----------------------------------------------------------------------------------
    def summarize(self) -> None:
        self.res["summary"] = summarize(self.res, HEADLINE)

    # -- the whole run ---------------------------------------------------------------------------------
    def execute(self) -> dict:
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.ceilings()
        families = [f for f in C.FAMILIES if any(C.case(i).family == f for i in self.case_ids)]
        for i, name in enumerate(families):
            left = self.budget.left()
            share = None if self.o.budget_s is None else max(left, 0.0) / (len(families) - i)
            self.log(f"family {name}" + ("" if share is None else f" ({share:.0f} s of measurements)"))
            try:
                self.family(name, share)
            except Exception as err:  # noqa: BLE001  one family's failure does not lose the others
                self.skip(f"family {name}", f"{type(err).__name__}: {str(err)[:400]}")
                self.save()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        self.summarize()
        self.res["complete"] = True
        self.save()
        return self.res


OTHER_VARIANTS = ("bf16+cl+compile+graphs", "bf16+cl", "bf16", "fp32")  # on the cases after the headline (all when quick)


def _compile_counters() -> dict[str, int]:
    """Dynamo's running counts of graph breaks and of CUDA-graph skips (inductor declining a graph)."""
    from torch._dynamo.utils import counters

    return {"graph_breaks": int(sum(counters["graph_break"].values())),
            "cudagraph_skips": int(counters["inductor"].get("cudagraph_skips", 0))}


def _agree(out: torch.Tensor, ref: torch.Tensor, v: V.Variant, scope: str) -> dict:
    return agreement(out, ref, V.tolerance(v), scope)


def _jsonable(cfg: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}


def run(options: Options | None = None, out: str | Path | None = None) -> dict:
    """Run the benchmark; the result (also written to ``out`` after every measurement, when given)."""
    opts = options or Options()
    if not isinstance(opts, Options):
        raise TypeError(f"options must be an Options, got {type(opts).__name__}")
    bench = _Run(opts, out)
    # every compiled network instance and batch size is a recompilation of the same forward code; past the
    # limit dynamo would silently run eager, so the limit is raised for the run (and restored)
    cfg = torch._dynamo.config
    key = "recompile_limit" if hasattr(cfg, "recompile_limit") else "cache_size_limit"
    saved = getattr(cfg, key)
    setattr(cfg, key, max(saved, 64))
    cudnn_benchmark = torch.backends.cudnn.benchmark
    try:
        res = bench.execute()
    finally:
        setattr(cfg, key, saved)
        torch.backends.cudnn.benchmark = cudnn_benchmark
    if out is not None:
        from .gpu_report import write_report

        write_report([res], Path(out).with_suffix(".md"), Path(out).with_suffix(".png"))
    return res


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "device"


def default_out(opts: Options) -> Path:
    """Where a run writes when no ``out`` is given: a real GPU run under benchmarks/results/, a quick one under diffcheck-out/."""
    dev = torch.device(opts.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" and torch.cuda.is_available() else "cpu"
    if opts.quick:
        return Path("diffcheck-out") / f"gpu_quick_{_slug(name)}.json"
    return Path("benchmarks") / "results" / f"gpu_{_slug(name)}.json"


def _csv(kind: Callable[[str], Any]) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(s.strip()) for s in text.split(",") if s.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None

    return parse


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m diffcheck.bench.gpu``."""
    ap = argparse.ArgumentParser(prog="python -m diffcheck.bench.gpu", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny configurations, a few steps per sampler (runs on a CPU)")
    ap.add_argument("--out", default=None, help="JSON path (a .md table and a .png plot are written beside it)")
    ap.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when present)")
    ap.add_argument("--cases", type=_csv(str), default=None, help="comma-separated case ids: " + ", ".join(c.id for c in C.CASES))
    ap.add_argument("--variants", type=_csv(str), default=None, help="comma-separated variants: " + ", ".join(V.names()))
    ap.add_argument("--batches", type=_csv(int), default=None, help="batch sizes of the headline sweep, increasing")
    ap.add_argument("--budget-s", type=float, default=None, help="seconds of measurements; what would not fit is skipped")
    ap.add_argument("--max-repeats", type=int, default=5)
    ap.add_argument("--target-s", type=float, default=5.0, help="timed seconds aimed at per measurement")
    ap.add_argument("--max-run-s", type=float, default=60.0, help="skip a single run predicted to take longer")
    ap.add_argument("--no-diffusers", action="store_true")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--no-memory-probe", action="store_true")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return ap


def main(argv: list[str] | None = None, out: str | None = None, quick: bool = False) -> dict:
    """Run from command-line arguments (``argv``) or from ``out``/``quick`` (``diffcheck bench gpu``); write the JSON."""
    if argv is not None:
        a = parser().parse_args(argv)
        opts = Options(device=a.device, quick=a.quick, cases=a.cases, variants=a.variants, batches=a.batches,
                       budget_s=a.budget_s, max_repeats=a.max_repeats, target_s=a.target_s, max_run_s=a.max_run_s,
                       diffusers=not a.no_diffusers, profile=not a.no_profile, memory_probe=not a.no_memory_probe,
                       progress=not a.quiet)
        out = a.out
    else:
        opts = Options(quick=quick)
    path = Path(out) if out else default_out(opts)
    res = run(opts, path)
    print(f"wrote {path} ({path.with_suffix('.md').name}, {path.with_suffix('.png').name})")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
