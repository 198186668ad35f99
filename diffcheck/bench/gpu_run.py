"""Running the GPU benchmark's plan: each step's estimate is checked against the budget, then the step is
measured and recorded. The plan and the estimates are ``gpu_plan``'s; the measurements ``gpu_measure``'s."""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

import torch

from . import gpu_cases as C
from . import gpu_diffusers as D
from . import gpu_plan as P
from . import gpu_timing as T
from . import gpu_variants as V
from .gpu_measure import Subject, ceilings, compile_counters, figures, timed, warm_up
from .gpu_gate import gate_step
from .gpu_profile import profile_step
from .gpu_record import Record, new_row

__all__ = ["Runner"]

_DIFFUSERS = "diffusers:"  # knowledge key prefix of diffusers' runs


class Runner:
    """Walks the plan in order; ``execute()`` returns when every step has run or been skipped with a reason."""

    def __init__(self, *, record: Record, settings: P.Settings, budget: P.Budget, device: torch.device, tiny: bool,
                 diffusers: bool, cpu_compile: bool, seed: int, ddpm_net: torch.nn.Module | None = None,
                 grace_s: float = 0.0, log: Callable[[str], None] | None = None) -> None:
        self.record, self.s, self.budget, self.device = record, settings, budget, device
        self.tiny, self.cpu_compile, self.seed, self.ddpm_net = tiny, cpu_compile, seed, ddpm_net
        self.grace_s = grace_s  # between the budget and the hard stop
        self.steps = P.plan(diffusers=diffusers)
        self.k = P.Knowledge()
        self.fams: dict[str, C.Family] = {}
        self.prepared: dict[tuple[str, str], dict[str, torch.nn.Module]] = {}
        self.samples: dict[tuple[str, int], torch.Tensor] = {}  # (variant, batch) -> first rows of a headline run
        self.gate_ref: torch.Tensor | None = None  # eager float32 samples of the gate
        self.unet: torch.nn.Module | None = None
        self.current: str | None = None
        self.estimate = 0.0  # the estimates the current step checked against the budget, summed
        self.log = log or (lambda msg: print(f"[bench gpu {self.budget.elapsed():6.1f} s] {msg}", file=sys.stderr, flush=True))

    @property
    def doc(self) -> dict:
        return self.record.doc

    # -- the walk ---------------------------------------------------------------------------------------
    def execute(self) -> None:
        kinds = {"ceiling": self.ceiling, "sweep": self.sweep, "measure": self.measure, "diffusers": self.diffusers,
                 "gate": lambda st: gate_step(self, st), "profile": lambda st: profile_step(self, st)}
        for step in self.steps:
            if self.record.closed:  # the hard stop closed the document: nothing more is recorded
                break
            self.current = step.name
            start = self.budget.elapsed()
            self.estimate = 0.0
            self.record.step(step.name, started_s=start)
            try:
                status, reason = kinds[step.kind](step)
            except Exception as err:  # noqa: BLE001  a failed step is recorded and the plan goes on
                status, reason = "failed", f"{type(err).__name__}: {str(err)[:400]}"
                self._free()
            self.record.step(step.name, status=status, reason=reason, elapsed_s=self.budget.elapsed() - start, estimate_s=self.estimate)
            spent = self.budget.elapsed()
            self.record.set("budget", {"total_s": self.budget.total_s, "spent_s": spent,
                                       "left_s": None if self.budget.total_s is None else self.budget.total_s - spent})
            self.log(f"{step.name}: {status}" + (f" ({reason})" if reason else ""))
            if step.priority == 4 and step.case and C.case(step.case).family != "ddpm":
                self.fams.pop(C.case(step.case).family, None)
                self.prepared = {key: v for key, v in self.prepared.items() if key[0] != C.case(step.case).family}
                self._free()
        self.current = None

    def allow(self, step: P.Step, estimate_s: float) -> str | None:
        """None if ``estimate_s`` fits beside the reserve and the reserved steps still to come; else why not."""
        self.estimate += estimate_s
        later = self.steps[self.steps.index(step) + 1:]
        held = sum(self.reserved_estimate(t) for t in later if t.kind in ("gate", "profile") and self._pending(t))
        if self.budget.fits(estimate_s, reserve_s=self.s.reserve_s + held, safety=self.s.safety):
            return None
        return (f"budget: estimated {estimate_s:.1f} s (x{self.s.safety} safety) with {max(self.budget.left(), 0):.1f} s left, "
                f"{self.s.reserve_s + held:.1f} s of it held for the report, the gate and the profile")

    def _pending(self, step: P.Step) -> bool:
        return next(e for e in self.doc["steps"] if e["step"] == step.name)["status"] == "pending"

    def reserved_estimate(self, step: P.Step) -> float:
        """The gate's or the profile's estimate: from the headline's measurements, or ``prior_setup_s`` before any."""
        measured = sorted(b for (c, v, b) in self.k.nfe_s if c == P.HEADLINE and v == P.FAST_EAGER)
        if P.HEADLINE not in self.doc["cases"] or not measured:
            return self.s.prior_setup_s
        if step.kind == "gate":
            if self.gate_ref is not None:
                return 0.1
            per = self._nfe_s(P.HEADLINE, "fp32", self.s.gate_rows)
            new = (P.HEADLINE, "fp32", self.s.gate_rows) not in self.k.shapes
            return per * self.doc["cases"][P.HEADLINE]["nfe"] + (self.s.prior_setup_s if new else 0.0)
        fastest = self.fastest()
        variant, batch = (fastest["variant"], fastest["batch"]) if fastest else (P.FAST_EAGER, measured[-1])
        return 3.0 * self._nfe_s(P.HEADLINE, variant, batch) * self.s.profile_steps + 2.0

    # -- networks and cases -----------------------------------------------------------------------------
    def family(self, name: str) -> C.Family:
        if name not in self.fams:
            start = self.budget.clock()
            fam = C.build_family(name, tiny=self.tiny, device=self.device, seed=self.seed,
                                 net=self.ddpm_net if name == "ddpm" else None)
            T.sync(self.device)
            self.k.builds.append((sum(fam.parameters.values()), self.budget.clock() - start))
            self.fams[name] = fam
        return self.fams[name]

    def nets(self, fam: C.Family, variant: str) -> dict[str, torch.nn.Module]:
        key = (fam.name, variant)
        if key not in self.prepared:
            v = V.variant(variant)
            self.prepared[key] = {k: V.prepare(n, v, self.device, backend="eager" if v.compile and self.device.type == "cpu" else None)
                                  for k, n in fam.nets.items()}
        return self.prepared[key]

    def case_info(self, case_id: str) -> dict:
        """The case's facts (steps, NFE, FLOPs per image per NFE counted on one evaluation at batch 2)."""
        if case_id in self.doc["cases"]:
            return self.doc["cases"][case_id]
        c = C.case(case_id)
        fam = self.family(c.family)
        g = C.grid(c, fam)
        _, evaluate = C.sampler_fn(c, fam, self.nets(fam, "fp32"))
        with torch.no_grad(), V.precision(V.variant("fp32")):
            flops = T.count_flops(lambda: evaluate(C.initial_noise(fam, 2), g[len(g) // 2])) / 2
        net = fam.nets["net"]
        info = {"family": c.family, "sampler": c.sampler, "description": c.description, "steps": c.quick_steps if self.tiny else c.steps,
                "nfe": C.nfe(c, fam, g), "deterministic": c.deterministic, "flops_per_image_per_nfe": flops,
                "flops_counted_at_batch": 2, "parameters": dict(fam.parameters),
                "modules": sum(1 for n in fam.nets.values() for _ in n.modules()),
                "network": type(net).__name__ + (" (user-supplied)" if c.family == "ddpm" and self.ddpm_net is not None else "")}
        self.record.doc["cases"][case_id] = info
        self.record.save()
        return info

    def _nfe_s(self, case_id: str, variant: str, batch: int) -> float:
        info = self.doc["cases"].get(case_id.removeprefix(_DIFFUSERS))
        if case_id.startswith(_DIFFUSERS) and not any(c == case_id and v == variant for (c, v, _) in self.k.nfe_s):
            ours = "fp32" if variant == "fp32" else P.FAST_EAGER
            return 2.0 * self._nfe_s(case_id.removeprefix(_DIFFUSERS), ours, batch)  # diffusers assumed up to 2x slower
        if info is None:
            return self.s.prior_setup_s
        return P.nfe_seconds(self.k, self.s, case_id, variant, batch, flops_per_image=info["flops_per_image_per_nfe"],
                             modules=info["modules"])

    def subject(self, case_id: str, variant: str, batch: int, steps: int | None = None) -> Subject:
        c = C.case(case_id)
        fam = self.family(c.family)
        run, _ = C.sampler_fn(c, fam, self.nets(fam, variant))
        g = C.grid(c, fam)
        gs = g[: min(self.s.short_steps + 1, len(g))]
        x = C.initial_noise(fam, batch)
        full = g if steps is None else g[: min(steps + 1, len(g))]
        return Subject(lambda: run(x, gs, self.seed), lambda: run(x, full, self.seed), C.nfe(c, fam, gs), C.nfe(c, fam, full))

    # -- one measurement --------------------------------------------------------------------------------
    def _measure(self, step: P.Step, row: dict, *, key: str, variant: str, make: Callable[[], Subject], flops: float,
                 compiled: bool, precision: V.Variant, build_parameters: int | None = None) -> dict:
        """Estimate, warm up, time and record one row (its identity already in ``row``)."""
        batch, nfe = row["batch"], row["nfe"]
        per = self._nfe_s(key, variant, batch)
        min_rep = self.s.min_repeats if step.priority <= 3 else 1
        est = P.measure_estimate(self.k, self.s, case=key, variant=variant, batch=batch, nfe=nfe, short_nfe=2 * self.s.short_steps,
                                 compiled=compiled, repeats=min_rep, per_nfe=per, build_parameters=build_parameters,
                                 warmup_calls=3 if compiled else 1)
        row["estimate_s"], row["started_s"] = est["total_s"], self.budget.elapsed()
        why = self.allow(step, est["total_s"])
        if why is None and per * nfe > self.s.max_run_s:
            why = f"one run is predicted to take {per * nfe:.1f} s > {self.s.max_run_s:g} s"
        if why is not None:
            return self._done(row, "skipped", why)
        start = self.budget.elapsed()
        before = compile_counters() if compiled else None
        try:
            subject = make()
            with torch.no_grad(), V.precision(precision):
                w = warm_up(subject, self.device, 3 if compiled else 1)
                self.k.learn(key, variant, batch, w["s_per_nfe"])
                (self.k.compile_s.__setitem__(variant, w["excess_s"]) if compiled else self.k.setup_s.append(w["excess_s"]))
                row.update(warmup_first_call_s=w["first_call_s"], warmup_s_per_nfe=w["s_per_nfe"],
                           compile_s=w["excess_s"] if compiled else None)
                run_s = w["s_per_nfe"] * nfe
                if run_s > self.s.max_run_s:
                    return self._done(row, "skipped", f"one run would take {run_s:.1f} s > {self.s.max_run_s:g} s", start)
                held = self.s.reserve_s + sum(self.reserved_estimate(t) for t in self.steps[self.steps.index(step) + 1:]
                                              if t.kind in ("gate", "profile") and self._pending(t))
                reps = P.repeats_for(run_s, self.budget.left() - held, self.s, min_rep)
                if reps == 0 and self.grace_s and compiled:  # a compilation paid for: one run may end in the grace
                    reps = 1 if run_s * self.s.safety <= self.grace_s + self.budget.left() - self.s.reserve_s else 0
                if reps == 0:
                    return self._done(row, "skipped", f"budget: one run would take {run_s:.1f} s, {self.budget.left():.1f} s left", start)
                t = timed(subject, self.device, reps, self.s.gate_rows)
        except Exception as err:  # noqa: BLE001  recorded; the plan goes on
            self._free()
            return self._done(row, "oom" if T.is_oom(err) else "failed", f"{type(err).__name__}: {str(err)[:400]}", start)
        self.k.learn(key, variant, batch, t["timing"].median / nfe)
        if before is not None:
            after = compile_counters()
            row.update(graph_breaks=after["graph_breaks"] - before["graph_breaks"],
                       cudagraph_skips=after["cudagraph_skips"] - before["cudagraph_skips"])
        row.update(figures(t["timing"], batch, nfe, flops, self.k.ceiling_tflops.get("bf16")),
                   peak_memory_bytes=t["peak_memory_bytes"], finite=t["finite"])
        if row["case"] == P.HEADLINE and row["impl"] == "diffcheck":
            self.samples[(row["variant"], batch)] = t["rows"]
        return self._done(row, "ok", None, start)

    def _done(self, row: dict, status: str, reason: str | None, start: float | None = None) -> dict:
        row.update(status=status, reason=reason, elapsed_s=None if start is None else self.budget.elapsed() - start)
        if row["started_s"] is None:
            row["started_s"] = self.budget.elapsed()
        self.record.add(row)
        if status == "ok":
            frac = row["fraction_of_ceiling"]
            self.log(f"  {row['case']} {row['variant']} B={row['batch']}: {row['images_per_s']:.4g} img/s, {row['ms_per_nfe']:.4g} ms/NFE, "
                     f"{row['tflops']:.3g} TFLOP/s" + ("" if frac is None else f" ({100 * frac:.1f}% of the ceiling)"))
        else:
            self.log(f"  {row['case']} {row['variant']} B={row['batch']}: {status}: {reason}")
        return row

    def _free(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def ours(self, step: P.Step, variant: str, batch: int, batch_choice: Any) -> dict:
        v = V.variant(variant)
        info = self.case_info(step.case)
        row = new_row(step, impl="diffcheck", variant=variant, precision=v.precision_class, batch=batch, nfe=info["nfe"],
                      channels_last=v.channels_last, compiled=v.compile is not None, cuda_graphs=v.cuda_graphs)
        row["batch_choice"] = batch_choice
        why = V.unavailable(v, self.device)
        if why is None and v.compile is not None and self.device.type == "cpu" and not self.cpu_compile:
            why = "not run on a CPU by default: inductor builds C++ for minutes there (cpu_compile runs dynamo's eager backend)"
        if why is not None:
            return self._done(row, "skipped", why)
        return self._measure(step, row, key=step.case, variant=variant, compiled=v.compile is not None, precision=v,
                             make=lambda: self.subject(step.case, variant, batch), flops=info["flops_per_image_per_nfe"])

    # -- the steps --------------------------------------------------------------------------------------
    def ceiling(self, step: P.Step) -> tuple[str, str | None]:
        why = self.allow(step, self.s.prior_ceiling_s)
        if why:
            return "skipped", why
        start = self.budget.clock()
        c = ceilings(self.device, self.s.ceiling_n, self.s.copy_bytes, lambda: V.precision(V.variant("fp32")))
        c["seconds"] = self.budget.clock() - start
        self.k.ceiling_tflops.update(bf16=c["matmul_bf16"]["tflops"], fp32=c["matmul_fp32"]["tflops"])
        self.record.set("ceiling", c)
        return "done", None

    def sweep(self, step: P.Step) -> tuple[str, str | None]:
        why = self.ready(step)
        if why is not None:
            return "skipped", why
        ips: list[float] = []
        for b in self.s.sweep_batches:
            row = self.ours(step, step.variant, b, "sweep")
            if row["status"] != "ok":
                break
            ips.append(row["images_per_s"])
            if not P.sweep_goes_on(ips):
                break
        return ("done", None) if ips else ("skipped", "no batch size was measured")

    def best_batch(self) -> int | None:
        rows = [r for r in self.doc["runs"] if r["case"] == P.HEADLINE and r["variant"] == P.FAST_EAGER and r["status"] == "ok"]
        return max(rows, key=lambda r: r["images_per_s"])["batch"] if rows else None

    def resolve(self, step: P.Step) -> tuple[int | None, Any, str | None]:
        """(batch, how it was chosen, why none) for a step's batch rule."""
        if step.batch == "best":
            b = self.best_batch()
            return b, "best of the sweep", None if b else "no best batch: the sweep measured nothing"
        if step.batch and step.batch.startswith("as:"):
            ref = step.batch[3:]
            rows = [r for r in self.doc["runs"] if r["case"] == step.case and r["impl"] == "diffcheck" and r["variant"] == ref and r["status"] == "ok"]
            return (rows[-1]["batch"], f"the batch of {ref}", None) if rows else (None, None, f"{ref} was not measured")
        return self.fit(step)

    def fit(self, step: P.Step) -> tuple[int | None, Any, str | None]:
        """Probe two batch sizes with short runs, then choose by the run cap (``gpu_plan.choose_batch``)."""
        info = self.case_info(step.case)
        best = self.best_batch() if step.case == P.HEADLINE else None
        candidates = tuple(b for b in self.s.sweep_batches if b <= best) if best else self.s.fit_batches
        v = V.variant(step.variant)
        points = {}
        for b in self.s.probe_batches:
            if (step.case, step.variant, b) not in self.k.shapes:
                per = self._nfe_s(step.case, step.variant, b)
                est = P.measure_estimate(self.k, self.s, case=step.case, variant=step.variant, batch=b, nfe=info["nfe"],
                                         short_nfe=2 * self.s.short_steps, compiled=False, repeats=0, per_nfe=per)
                why = self.allow(step, est["total_s"] + info["nfe"] * per)
                if why:
                    return None, {"probes": points}, why
                with torch.no_grad(), V.precision(v):
                    w = warm_up(self.subject(step.case, step.variant, b), self.device, 1)
                self.k.learn(step.case, step.variant, b, w["s_per_nfe"])
                self.k.setup_s.append(w["excess_s"])
            points[b] = self.k.nfe_s[(step.case, step.variant, b)]
        b, model = P.choose_batch(points, info["nfe"], candidates, self.s)
        choice = {"probes": {str(k): t for k, t in points.items()}, **model}
        return b, choice, None if b else f"even batch {min(candidates)} would take {model['predicted_run_s']:.0f} s"

    def ready(self, step: P.Step) -> str | None:
        """Build the step's family if its estimate fits (None), else why not."""
        name = C.case(step.case).family
        if name in self.fams:
            return None
        params = C.family_parameters(name, tiny=self.tiny, net=self.ddpm_net if name == "ddpm" else None)
        why = self.allow(step, P.build_seconds(self.k, self.s, params))
        if why is None:
            self.family(name)
        return why

    def measure(self, step: P.Step) -> tuple[str, str | None]:
        v = V.variant(step.variant)
        why = V.unavailable(v, self.device) or self.ready(step)
        if why is None:
            batch, choice, why = self.resolve(step)
        if why is not None:
            info = self.doc["cases"].get(step.case)
            row = new_row(step, impl="diffcheck", variant=step.variant, precision=v.precision_class, batch=None,
                          nfe=None if info is None else info["nfe"], channels_last=v.channels_last,
                          compiled=v.compile is not None, cuda_graphs=v.cuda_graphs)
            self._done(row, "skipped", why)
            return "skipped", why
        row = self.ours(step, step.variant, batch, choice)
        return ("done", None) if row["status"] == "ok" else (row["status"], row["reason"])

    def diffusers(self, step: P.Step) -> tuple[str, str | None]:
        mode = step.variant
        compiled = "compile" in mode
        why = self.ready(step)
        batch, choice, why = (None, None, why) if why else self.resolve(step)
        info = self.doc["cases"].get(step.case)
        row = new_row(step, impl="diffusers", variant=f"diffusers {mode}", precision="fp32" if mode == "fp32" else "bf16",
                      batch=batch, nfe=None if info is None else info["nfe"], channels_last="+cl" in mode, compiled=compiled,
                      cuda_graphs=False)
        row["batch_choice"] = choice
        if why is None and not D.available():
            why = "diffusers is not installed (pip install 'diffcheck[diffusers]', or the wheels of benchmarks/prepare_wheels.py)"
        if why is None and compiled and self.device.type == "cpu" and not self.cpu_compile:
            why = "not run on a CPU by default: inductor builds C++ for minutes there"
        if why is None and compiled and not any(r["compiled"] and r["status"] == "ok" for r in self.doc["runs"] if r["impl"] == "diffcheck"):
            why = "none of our compiled variants ran, so diffusers is not compiled either"
        if why is not None:
            self._done(row, "skipped", why)
            return "skipped", why
        fam = self.family("ddpm")
        if self.unet is None:
            params = sum(p.numel() for p in fam.nets["net"].parameters())  # the same configuration as ours
            why = self.allow(step, P.build_seconds(self.k, self.s, params))
            if why is not None:
                self._done(row, "skipped", why)
                return "skipped", why
            start = self.budget.clock()
            self.unet = D.build_unet(tiny=self.tiny, device=self.device, seed=self.seed)
            T.sync(self.device)
            self.k.builds.append((sum(p.numel() for p in self.unet.parameters()), self.budget.clock() - start))
        row = self._measure(step, row, key=_DIFFUSERS + step.case, variant=mode, compiled=compiled, precision=V.variant("fp32"),
                            make=lambda: self._diffusers_subject(fam, mode, batch, info["nfe"]), flops=self._diffusers_flops(fam))
        return ("done", None) if row["status"] == "ok" else (row["status"], row["reason"])

    def _diffusers_flops(self, fam: C.Family) -> float:
        if self.doc["diffusers"] is None:
            x2 = C.initial_noise(fam, 2)
            with torch.no_grad(), V.precision(V.variant("fp32")):
                flops = T.count_flops(lambda: self.unet(x2, torch.tensor(500, device=self.device)).sample) / 2
            self.record.set("diffusers", {"version": D.version(), "unet_config": {k: list(v) if isinstance(v, tuple) else v for k, v in
                                          (D.TINY_UNET_CONFIG if self.tiny else D.UNET_CONFIG).items()},
                                          "scheduler": "DDIMScheduler", "scheduler_config": dict(D.SCHEDULER_CONFIG),
                                          "parameters": sum(p.numel() for p in self.unet.parameters()), "flops_per_image_per_nfe": flops})
        return self.doc["diffusers"]["flops_per_image_per_nfe"]

    def _diffusers_subject(self, fam: C.Family, mode: str, batch: int, nfe: int) -> Subject:
        run = D.loop(D.prepared(self.unet, mode, backend="eager" if self.device.type == "cpu" else None), "ddim", mode, self.device)
        x = C.initial_noise(fam, batch)
        short = min(self.s.short_steps, nfe)
        return Subject(lambda: run(x, short, self.seed), lambda: run(x, nfe, self.seed), short, nfe)

    def fastest(self) -> dict | None:
        """The fastest run of the headline of ours whose first samples were kept (the gate's subject)."""
        rows = [r for r in self.doc["runs"] if r["case"] == P.HEADLINE and r["impl"] == "diffcheck" and r["status"] == "ok"
                and (r["variant"], r["batch"]) in self.samples]
        return max(rows, key=lambda r: r["images_per_s"], default=None)

    def close_note(self) -> str:
        """What was running, for a hard stop's note."""
        return f"step {self.current!r} was still running" if self.current else "between steps"
