"""The GPU benchmark's plan: the steps in priority order, and how long each is expected to take.

Priorities (``plan()``):

1. the bf16 matrix-multiply ceiling (one large product, rotated operands);
2. DDIM-50 on the DDPM CIFAR-10 U-Net: a short batch sweep of eager bf16 autocast + channels-last up to
   its best batch; diffusers' UNet2DModel with its DDIMScheduler at that batch in bf16 (autocast, as
   ours, and bf16 weights); eager float32 at the largest batch whose run fits the run cap; a first
   correctness gate on the eager runs (so that a compilation overrunning its estimate cannot cost the
   run its verdict); the compiled variants at the best batch (inductor, then its CUDA-graph mode);
3. the correctness gate (the fastest variant against eager float32), and a profile when the headline
   reaches less than 35% of the ceiling;
4. one batch each of NCSN++ predictor-corrector (VE), ADM-64 guided DDIM, NCSNv2 annealed Langevin and
   DDPM ancestral over 1000 steps;
5. diffusers in float32 and compiled.

No step starts unless its estimate, times ``safety``, fits in what is left of the budget after the
reserve and after the estimates of the pending steps of priorities 1 to 3. Estimates come from what the
run has measured (``Knowledge``): seconds per NFE from warm-ups and timed runs, scaled linearly to a
larger batch and never assumed faster at a smaller one; compile, set-up and build times as measured;
before a measurement, the priors of ``Settings``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["HEADLINE", "FAST_EAGER", "Step", "plan", "Settings", "FULL", "TINY", "Knowledge", "Budget",
           "nfe_seconds", "measure_estimate", "choose_batch", "repeats_for", "sweep_goes_on", "SATURATION_GAIN",
           "TARGET_FRACTION"]

HEADLINE = "ddpm/ddim50"
FAST_EAGER = "bf16+cl"  # the eager variant that sweeps the batch sizes and runs the other families
SATURATION_GAIN = 1.03  # a batch that does not raise images/s by 3% over the best so far ends the sweep
TARGET_FRACTION = 0.35  # below this fraction of the ceiling, the headline's fastest run is profiled


@dataclass(frozen=True)
class Step:
    """One step of the plan. ``batch``: "sweep", "best" (the sweep's best), "fit" (chosen by the run cap
    from two probes), or "as:<variant>" (the batch at which that variant of ours ran)."""

    name: str
    priority: int
    kind: str  # ceiling | sweep | measure | diffusers | gate | profile
    case: str | None = None
    variant: str | None = None
    batch: str | None = None


def plan(diffusers: bool = True) -> tuple[Step, ...]:
    """The steps in the order they run (priority order)."""
    h = HEADLINE
    steps = [Step("ceiling", 1, "ceiling"),
             Step(f"{h} {FAST_EAGER} sweep", 2, "sweep", h, FAST_EAGER, "sweep")]
    if diffusers:
        steps += [Step(f"{h} diffusers bf16", 2, "diffusers", h, "bf16", "best"),
                  Step(f"{h} diffusers bf16w", 2, "diffusers", h, "bf16w", "best")]
    steps += [Step(f"{h} fp32", 2, "measure", h, "fp32", "fit"),
              Step(f"{h} gate before compiling", 2, "gate", h),
              Step(f"{h} bf16+cl+compile", 2, "measure", h, "bf16+cl+compile", "best"),
              Step(f"{h} bf16+cl+compile+graphs", 2, "measure", h, "bf16+cl+compile+graphs", "best"),
              Step(f"{h} gate", 3, "gate", h),
              Step(f"{h} profile", 3, "profile", h)]
    for case in ("ncsnpp/pc1000", "adm/guided_ddim50", "ncsnv2/annealed_langevin", "ddpm/ancestral1000"):
        steps.append(Step(f"{case} {FAST_EAGER}", 4, "measure", case, FAST_EAGER, "fit"))
    if diffusers:
        steps += [Step(f"{h} diffusers fp32", 5, "diffusers", h, "fp32", "as:fp32"),
                  Step(f"{h} diffusers bf16w+cl+compile", 5, "diffusers", h, "bf16w+cl+compile", "best")]
    return tuple(steps)


@dataclass(frozen=True)
class Settings:
    """Batch sizes, caps and the priors used before anything is measured (seconds unless named otherwise)."""

    sweep_batches: tuple[int, ...]
    fit_batches: tuple[int, ...]
    probe_batches: tuple[int, ...]  # one or two
    gate_rows: int
    ceiling_n: int
    copy_bytes: int
    run_cap_s: float  # a "fit" batch keeps one run under this (or 1.5x the run's launch floor)
    max_run_s: float  # no run predicted longer than this starts
    target_s: float  # timed seconds aimed at per measurement
    min_repeats: int
    max_repeats: int
    safety: float
    reserve_s: float  # kept for the summary, the report and the plot
    short_steps: int  # steps of the warm-up runs
    profile_steps: int
    prior_ceiling_s: float
    prior_setup_s: float  # the first call at a new shape beyond a steady one (cuDNN's search, lazy init)
    prior_compile_s: float
    prior_build_s: float  # building and moving one network, before one was timed
    prior_tflops: float  # the rate assumed for a network not yet run (well under any ceiling)
    prior_launch_s: float  # per module per evaluation, the host's launch cost assumed for a network not yet run


FULL = Settings(sweep_batches=(64, 128, 256, 512, 1024, 2048), fit_batches=(8, 16, 32, 64, 128, 256, 512, 1024),
                probe_batches=(16, 64), gate_rows=8, ceiling_n=8192, copy_bytes=1 << 30, run_cap_s=8.0, max_run_s=45.0,
                target_s=4.0, min_repeats=2, max_repeats=5, safety=1.3, reserve_s=15.0, short_steps=2, profile_steps=5,
                prior_ceiling_s=15.0, prior_setup_s=10.0, prior_compile_s=150.0, prior_build_s=20.0,
                prior_tflops=20.0, prior_launch_s=30e-6)
TINY = Settings(sweep_batches=(1, 2), fit_batches=(1,), probe_batches=(1,), gate_rows=2, ceiling_n=128,
                copy_bytes=1 << 20, run_cap_s=1.0, max_run_s=10.0, target_s=0.01, min_repeats=1, max_repeats=2, safety=1.3,
                reserve_s=0.5, short_steps=1, profile_steps=1, prior_ceiling_s=2.0, prior_setup_s=0.5, prior_compile_s=60.0,
                prior_build_s=1.0, prior_tflops=0.001, prior_launch_s=100e-6)


@dataclass
class Knowledge:
    """What the run has measured so far, for the estimates."""

    ceiling_tflops: dict[str, float] = field(default_factory=dict)  # "bf16", "fp32" -> measured matrix-product rate
    nfe_s: dict[tuple[str, str, int], float] = field(default_factory=dict)  # (case, variant, batch) -> s per NFE
    setup_s: list[float] = field(default_factory=list)
    compile_s: dict[str, float] = field(default_factory=dict)  # variant -> first compiled call
    builds: list[tuple[int, float]] = field(default_factory=list)  # (parameters, seconds)
    shapes: set[tuple[str, str, int]] = field(default_factory=set)  # (case, variant, batch) already warmed up

    def learn(self, case: str, variant: str, batch: int, s_per_nfe: float) -> None:
        """Record seconds per NFE; a later (timed) figure replaces a warm-up's."""
        if not (s_per_nfe > 0 and math.isfinite(s_per_nfe)):
            raise ValueError(f"s_per_nfe must be a positive number, got {s_per_nfe!r}")
        self.nfe_s[(case, variant, batch)] = s_per_nfe
        self.shapes.add((case, variant, batch))


def _precision(variant: str) -> str:
    return "fp32" if variant in ("fp32", "fp32+cl", "tf32") else "bf16"


def nfe_seconds(k: Knowledge, s: Settings, case: str, variant: str, batch: int, *, flops_per_image: float | None = None,
                modules: int | None = None) -> float:
    """Estimated seconds per NFE of ``variant`` of ``case`` at ``batch``.

    From the same case and variant: the nearest measured batch, scaled linearly up to a larger batch and
    taken unchanged for a smaller one. Else from the slowest other variant of the case of the same precision;
    else from the slowest of another precision (float32 from bf16 times the ratio of the two measured
    matrix-product rates, at least 1). Else from the FLOPs at
    ``prior_tflops`` plus ``prior_launch_s`` per module.
    """
    pts = {b: t for (c, v, b), t in k.nfe_s.items() if c == case and v == variant}
    if pts:
        if batch in pts:
            return pts[batch]
        below = [b for b in pts if b < batch]
        if below:
            b0 = max(below)
            return pts[b0] * batch / b0
        return pts[min(pts)]
    others = {v for (c, v, _) in k.nfe_s if c == case and v != variant}
    same = {v for v in others if _precision(v) == _precision(variant)}
    if same:
        return max(nfe_seconds(k, s, case, v, batch) for v in same)
    if others:
        est = max(nfe_seconds(k, s, case, v, batch) for v in others)
        if _precision(variant) == "fp32":
            bf, fp = k.ceiling_tflops.get("bf16"), k.ceiling_tflops.get("fp32")
            est *= max(bf / fp, 1.0) if bf and fp else 16.0
        return est
    if flops_per_image is None or modules is None:
        raise ValueError(f"nothing measured for {case}: flops_per_image and modules are needed for the prior")
    return flops_per_image * batch / (s.prior_tflops * 1e12) + modules * s.prior_launch_s


def build_seconds(k: Knowledge, s: Settings, parameters: int) -> float:
    """Estimated seconds to build networks of ``parameters``: twice the rate of the builds so far (seconds per
    parameter, pooled), else the prior."""
    if not k.builds:
        return s.prior_build_s
    per = sum(t for _, t in k.builds) / max(sum(p for p, _ in k.builds), 1)
    return max(2.0 * per * parameters, 0.1)


def measure_estimate(k: Knowledge, s: Settings, *, case: str, variant: str, batch: int, nfe: int, short_nfe: int,
                     compiled: bool, repeats: int, per_nfe: float, build_parameters: int | None = None,
                     warmup_calls: int = 2) -> dict:
    """The parts of one measurement's expected time and their sum: building the networks (if not built),
    the set-up at a new shape, compilation, the warm-up calls and ``repeats`` timed runs."""
    parts = {"build_s": build_seconds(k, s, build_parameters) if build_parameters else 0.0,
             "setup_s": 0.0 if (case, variant, batch) in k.shapes else (2.0 * max(k.setup_s) if k.setup_s else s.prior_setup_s),
             "compile_s": 0.0,
             "warmup_s": warmup_calls * short_nfe * per_nfe,
             "timed_s": repeats * nfe * per_nfe}
    if compiled and (case, variant, batch) not in k.shapes:
        parts["compile_s"] = 1.25 * max(k.compile_s.values()) if k.compile_s else s.prior_compile_s
    parts["total_s"] = sum(parts.values())
    return parts


def choose_batch(points: dict[int, float], nfe: int, candidates: tuple[int, ...], s: Settings) -> tuple[int | None, dict]:
    """A "fit" batch from probed seconds per NFE: t(b) = a + c b through the probes (a the launch floor,
    c the cost of one image; one probe gives a = 0). The largest candidate whose run, nfe t(b), stays
    under the larger of ``run_cap_s`` and 1.5 times the run's floor nfe a (never over ``max_run_s``);
    failing that the smallest candidate if its run is under ``max_run_s``; else None."""
    if not points:
        raise ValueError("points must hold at least one probe")
    bs = sorted(points)
    if len(bs) == 1:
        a, c = 0.0, points[bs[0]] / bs[0]
    else:
        b0, b1 = bs[0], bs[-1]
        c = max((points[b1] - points[b0]) / (b1 - b0), 0.0)
        a = max(points[b0] - c * b0, 0.0)
        if c == 0.0:  # no growth seen between the probes: charge the larger probe's time per image
            c = points[b1] / b1
    cap = min(max(s.run_cap_s, 1.5 * nfe * a), s.max_run_s)
    run = {b: nfe * (a + c * b) for b in candidates}
    fit = [b for b in candidates if run[b] <= cap]
    model = {"floor_s_per_nfe": a, "s_per_image_nfe": c, "cap_s": cap}
    if fit:
        b = max(fit)
    elif run[min(candidates)] <= s.max_run_s:
        b = min(candidates)
    else:
        return None, {**model, "predicted_run_s": run[min(candidates)]}
    return b, {**model, "predicted_run_s": run[b]}


def repeats_for(run_s: float, left_s: float, s: Settings, min_repeats: int | None = None) -> int:
    """Timed repeats: ``target_s`` worth, within [min_repeats, max_repeats], cut to what the budget holds
    (0 when not even one run fits)."""
    lo = s.min_repeats if min_repeats is None else min_repeats
    r = min(max(math.ceil(s.target_s / max(run_s, 1e-9)), lo), s.max_repeats)
    while r > 0 and r * run_s * s.safety > left_s:
        r -= 1
    return r


def sweep_goes_on(images_per_s: list[float]) -> bool:
    """Whether a batch sweep continues after these throughputs (in batch order): it ends at the first batch
    that does not beat the best before it by ``SATURATION_GAIN``."""
    if len(images_per_s) < 2:
        return True
    return images_per_s[-1] >= SATURATION_GAIN * max(images_per_s[:-1])


class Budget:
    """Seconds for the whole run from ``start``; ``None`` is unlimited."""

    def __init__(self, total_s: float | None, clock: Callable[[], float] = time.perf_counter) -> None:
        if total_s is not None and not (isinstance(total_s, (int, float)) and total_s > 0 and math.isfinite(total_s)):
            raise ValueError(f"total_s must be a positive number of seconds or None, got {total_s!r}")
        self.total_s = total_s
        self.clock = clock
        self.start = clock()

    def elapsed(self) -> float:
        return self.clock() - self.start

    def left(self) -> float:
        return math.inf if self.total_s is None else self.total_s - self.elapsed()

    def fits(self, estimate_s: float, *, reserve_s: float, safety: float) -> bool:
        """Whether ``estimate_s`` times ``safety`` fits in what is left after ``reserve_s``."""
        return estimate_s * safety <= self.left() - reserve_s
