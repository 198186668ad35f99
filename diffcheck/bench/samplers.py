"""Per-step overhead and throughput of each sampler on the exact model (CPU), and diffusers' loops beside them.

Run: ``diffcheck bench samplers [--quick]`` (or ``python -m diffcheck.bench.samplers``); writes
``benchmarks/results/samplers_cpu.json`` unless ``--out`` says otherwise.

Two timings per sampler: with the exact model of the ring of 8 (throughput, points per
second) and with a model that costs almost nothing, eps = x/2 (the sampler's own per-step overhead). When
diffusers is installed, its DDPM, DDIM and Euler schedulers are driven by the same
exact model on the same points and steps, and the ratio of times is reported; without
it those rows are absent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import toy
from diffcheck import process as P
from diffcheck import samplers as S
from diffcheck.exact import ExactModel
from diffcheck.io import write_json
from diffcheck.param import function_model


def _time(fn, repeats: int) -> float:
    fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return statistics.median(out)


def configurations(steps_scale: float = 1.0):
    ddpm = P.DiscreteVP.linear()
    vp, ve = P.VP(), P.VE()
    k = lambda n: max(2, int(n * steps_scale))
    gen = torch.Generator().manual_seed(0)
    return [
        ("ddpm_ancestral", ddpm, P.iddpm_grid(ddpm, [k(1000)]), lambda m, p, x, g: S.ddpm_ancestral(m, p, x, g, generator=gen)),
        ("ddim", ddpm, P.ddim_grid(ddpm, k(50)), lambda m, p, x, g: S.ddim(m, p, x, g)),
        ("euler_maruyama", vp, P.uniform_grid(k(1000)), lambda m, p, x, g: S.euler_maruyama(m, p, x, g, generator=gen)),
        ("reverse_diffusion", ve, P.uniform_grid(k(1000), 1.0, 1e-5), lambda m, p, x, g: S.reverse_diffusion(m, p, x, g, generator=gen)),
        ("predictor_corrector", ve, P.uniform_grid(k(500), 1.0, 1e-5), lambda m, p, x, g: S.predictor_corrector(m, p, x, g, generator=gen, norm="batch")),
        ("euler_ode", vp, P.uniform_grid(k(100)), lambda m, p, x, g: S.euler_ode(m, p, x, g)),
        ("heun_ode", vp, P.uniform_grid(k(50)), lambda m, p, x, g: S.heun_ode(m, p, x, g)),
    ]


def _diffusers_rows(m: toy.GaussianMixture, x: torch.Tensor, steps: dict, repeats: int) -> list[dict]:
    try:
        import diffusers
    except ImportError:
        return []
    ddpm = P.DiscreteVP.linear()
    exact = ExactModel(m, ddpm, "eps")
    betas = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    rows = []

    def drive(scheduler, n, scaled: bool):
        scheduler.set_timesteps(n)
        gen = torch.Generator().manual_seed(0)
        y = x * (scheduler.init_noise_sigma if scaled else 1.0)
        for t in scheduler.timesteps:
            inp = scheduler.scale_model_input(y, t) if scaled else y
            eps = exact(inp, (float(t) + 1.0) / 1000.0)
            y = scheduler.step(eps, t, y, generator=gen).prev_sample
        return y

    for name, cls, n, scaled, ours in (
        ("ddpm_ancestral", diffusers.DDPMScheduler, steps["ddpm_ancestral"], False, "ddpm_ancestral"),
        ("ddim", diffusers.DDIMScheduler, steps["ddim"], False, "ddim"),
        ("euler_ode", diffusers.EulerDiscreteScheduler, steps["euler_ode"], True, "euler_ode"),
    ):
        sched = cls(**betas) if cls is not diffusers.DDPMScheduler else cls(**betas, clip_sample=False)
        if hasattr(sched.config, "clip_sample") and sched.config.clip_sample:
            sched = cls(**betas, clip_sample=False)
        seconds = _time(lambda: drive(sched, n, scaled), repeats)
        rows.append({"sampler": f"diffusers {cls.__name__}", "steps": n, "seconds": seconds, "compare_with": ours,
                     "diffusers": diffusers.__version__})
    return rows


def run(points: int = 1024, repeats: int = 3, steps_scale: float = 1.0, progress: bool = True) -> dict:
    m = toy.ring()
    cheap = function_model(lambda x, t: 0.5 * x, "eps")  # near-free evaluations: what remains is the sampler's own cost
    rows = []
    steps = {}
    for name, p, grid, fn in configurations(steps_scale):
        exact = ExactModel(m, p, "eps")
        x = exact.law(grid[0]).sample(points, torch.Generator().manual_seed(1))
        n = len(grid) - 1
        steps[name] = n
        t_exact = _time(lambda: fn(exact, p, x, grid), repeats)
        t_zero = _time(lambda: fn(cheap, p, x, grid), repeats)
        row = {"sampler": name, "process": repr(p), "steps": n, "points": points, "seconds": t_exact,
               "points_per_s": points / t_exact, "ms_per_step": 1e3 * t_exact / n, "overhead_ms_per_step": 1e3 * t_zero / n}
        rows.append(row)
        if progress:
            print(f"{name:20} {n:5d} steps: {row['points_per_s']:9.0f} pts/s, {row['ms_per_step']:.3f} ms/step "
                  f"(overhead {row['overhead_ms_per_step']:.3f} ms/step)", file=sys.stderr, flush=True)
    x = P.DiscreteVP.linear().prior_sample((points, 2), torch.Generator().manual_seed(1))
    ours = {r["sampler"]: r["seconds"] for r in rows}
    for r in _diffusers_rows(m, x, steps, repeats):
        r["ratio_diffusers_over_ours"] = r["seconds"] / ours[r["compare_with"]]
        rows.append(r)
        if progress:
            print(f"{r['sampler']:20} {r['steps']:5d} steps: {r['ratio_diffusers_over_ours']:.2f}x our time", file=sys.stderr)
    return {"benchmark": "sampler per-step overhead and throughput on the exact model (ring of 8, float64)",
            "device": platform.processor() or platform.machine(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "rows": rows}


def main(argv=None, out: str | None = None, quick: bool = False) -> dict:
    """Run the benchmark and write its JSON atomically (command-line arguments, or ``out``/``quick``)."""
    if argv is not None:
        ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        ap.add_argument("--quick", action="store_true", help="a tenth of the steps, 128 points, one repeat")
        ap.add_argument("--out", default=None)
        args = ap.parse_args(argv)
        out, quick = args.out, args.quick
    res = run(points=128, repeats=1, steps_scale=0.1) if quick else run()
    path = out or str(Path("benchmarks") / "results" / "samplers_cpu.json")
    write_json(path, res)
    print(f"wrote {path}")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
