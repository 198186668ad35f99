"""Exact mixture score throughput (points per second), vectorised vs a per-component loop.

Run: ``diffcheck bench scores [--quick]`` (or ``python -m diffcheck.bench.scores``); writes
``benchmarks/results/score_cpu.json`` unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import platform
import statistics
import time
from pathlib import Path

import torch

import toy
from diffcheck.io import write_json


def loop_score(m: toy.GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    """The straightforward baseline: one full-covariance Gaussian at a time, then a softmax over components."""
    logs, grads = [], []
    for k in range(m.num_components):
        cov = m.covs[k].to(x.dtype)
        prec = torch.linalg.inv(cov)
        d = x - m.means[k].to(x.dtype)
        logdet = torch.logdet(cov)
        logs.append(math.log(float(m.weights[k])) - 0.5 * ((d @ prec) * d).sum(-1) - 0.5 * logdet - 0.5 * x.shape[1] * math.log(2 * math.pi))
        grads.append(-d @ prec)
    r = torch.softmax(torch.stack(logs), 0)
    return (r[..., None] * torch.stack(grads)).sum(0)


def mixture(k: int) -> toy.GaussianMixture:
    return toy.ring(n=8, radius=2.0, std=0.3) if k == 8 else toy.grid(n=5, spacing=1.0, std=0.3)


def timeit(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(sizes=(100_000, 1_000_000), comps=(8, 25), dtypes=(torch.float32, torch.float64), repeats=5, progress=True) -> dict:
    rows = []
    gen = torch.Generator().manual_seed(0)
    for n in sizes:
        for k in comps:
            m = mixture(k)
            law = m.noised(0.8, 0.5)
            base = m.to_mixture() if hasattr(m, "to_mixture") else law.to_mixture()
            for dtype in dtypes:
                x = (3 * torch.randn(n, 2, generator=gen, dtype=torch.float64)).to(dtype)
                ours = timeit(lambda: law.score(x), repeats)
                loop = timeit(lambda: loop_score(base, x), repeats)
                err = float((law.score(x) - loop_score(base, x)).abs().max() / loop_score(base, x).abs().max())
                row = {"points": n, "components": k, "dim": 2, "dtype": str(dtype).replace("torch.", ""),
                       "seconds": ours, "points_per_s": n / ours, "loop_seconds": loop, "loop_points_per_s": n / loop,
                       "speedup_vs_loop": loop / ours, "max_rel_diff_vs_loop": err}
                rows.append(row)
                if progress:
                    print(f"n={n:>8} K={k:>2} {row['dtype']:>7}: {row['points_per_s'] / 1e6:7.2f} M pts/s "
                          f"(loop {row['loop_points_per_s'] / 1e6:6.2f} M pts/s, x{row['speedup_vs_loop']:.2f})", flush=True)
    return {
        "benchmark": "exact mixture score throughput (noised law alpha=0.8, sigma=0.5)",
        "device": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "rows": rows,
    }


def main(argv=None, out: str | None = None, quick: bool = False) -> dict:
    """Run the benchmark and write its JSON atomically (command-line arguments, or ``out``/``quick``)."""
    if argv is not None:
        ap = argparse.ArgumentParser(description=__doc__)
        ap.add_argument("--quick", action="store_true", help="1e4 points only, 2 repeats")
        ap.add_argument("--out", default=None)
        args = ap.parse_args(argv)
        out, quick = args.out, args.quick
    res = run(sizes=(10_000,), repeats=2) if quick else run()
    path = out or str(Path("benchmarks") / "results" / "score_cpu.json")
    write_json(path, res)
    print(f"wrote {path}")
    return res


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
