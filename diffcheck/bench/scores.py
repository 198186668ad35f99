"""Exact mixture score throughput: a per-component loop, a plain einsum version, the per-component path and the dense path.

All four are timed in one run on the same points, so their ratios hold even on a busy machine (absolute figures
do not). A second table sweeps the dimension to find where the dense path stops being faster than the
per-component path (the crossover that ``toy.evaluate.DENSE_MAX_DIM`` encodes).

Run: ``diffcheck bench scores [--quick]`` (or ``python -m diffcheck.bench.scores``); writes
``benchmarks/results/score_cpu.json`` unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import time
from pathlib import Path

import torch
from tqdm import tqdm

import toy
from toy.evaluate import DENSE_MAX_DIM, DENSE_MIN_WORK
from diffcheck.io import write_json

__all__ = ["loop_score", "einsum_score", "mixture", "run", "crossover", "main"]

IMPLS = ("loop", "einsum", "reference", "dense")


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


def einsum_score(m: toy.GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    """A plain vectorised version: inverse covariances, einsum Mahalanobis terms, a softmax, one more einsum."""
    cov = m.covs.to(x.dtype)
    prec = torch.linalg.inv(cov)
    diff = x[:, None, :] - m.means.to(x.dtype)  # (N, K, D)
    pd = torch.einsum("kde,nke->nkd", prec, diff)
    logj = torch.log(m.weights.to(x.dtype)) - 0.5 * (diff * pd).sum(-1) - 0.5 * torch.logdet(cov) - 0.5 * x.shape[1] * math.log(2 * math.pi)
    return -torch.einsum("nk,nkd->nd", torch.softmax(logj, -1), pd)


def mixture(k: int) -> toy.GaussianMixture:
    """The benchmark's mixtures: the 8-component ring (K = 8) or a 5 x 5 grid (K = 25), both with std 0.3."""
    return toy.ring(n=8, radius=2.0, std=0.3) if k == 8 else toy.grid(n=5, spacing=1.0, std=0.3)


def timeit(fn, repeats: int) -> float:
    """Fastest of ``repeats`` calls after one warm-up call, in seconds (the least disturbed by other work)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _impls(law, base):
    return {"loop": lambda x: loop_score(base, x), "einsum": lambda x: einsum_score(base, x),
            "reference": lambda x: law.score(x, engine="reference"), "dense": lambda x: law.score(x, engine="dense")}


def run(sizes=(100_000, 1_000_000), comps=(8, 25), dtypes=(torch.float32, torch.float64), repeats=5, progress=True) -> list[dict]:
    """One row per (points, components, dtype): seconds, points/s and point-components/s of every implementation, and ratios."""
    rows = []
    gen = torch.Generator().manual_seed(0)
    cases = [(n, k, d) for n in sizes for k in comps for d in dtypes]
    for n, k, dtype in tqdm(cases, desc="score throughput", disable=not progress):
        m = mixture(k)
        law = m.noised(0.8, 0.5)
        base = law.to_mixture()
        x = (3 * torch.randn(n, 2, generator=gen, dtype=torch.float64)).to(dtype)
        impls = _impls(law, base)
        secs = {name: timeit(lambda: fn(x), repeats) for name, fn in impls.items()}
        truth = loop_score(base, x.double())
        scale = float(truth.abs().max())
        row = {"points": n, "components": k, "dim": 2, "dtype": str(dtype).replace("torch.", "")}
        for name in IMPLS:
            row[f"{name}_seconds"] = secs[name]
            row[f"{name}_points_per_s"] = n / secs[name]
            row[f"{name}_point_components_per_s"] = n * k / secs[name]
            row[f"{name}_max_rel_diff"] = float((impls[name](x).double() - truth).abs().max()) / scale
        row["dense_vs_einsum"] = secs["einsum"] / secs["dense"]
        row["reference_vs_einsum"] = secs["einsum"] / secs["reference"]
        row["dense_vs_reference"] = secs["reference"] / secs["dense"]
        row["dense_vs_loop"] = secs["loop"] / secs["dense"]
        # the default evaluation (what ``law.score(x)`` chooses), under the names earlier versions of this file used
        auto = timeit(lambda: law.score(x), repeats)
        row.update(seconds=auto, points_per_s=n / auto, loop_seconds=secs["loop"], loop_points_per_s=n / secs["loop"],
                   speedup_vs_loop=secs["loop"] / auto)
        rows.append(row)
        if progress:
            tqdm.write(f"n={n:>8} K={k:>2} {row['dtype']:>7}: " + "  ".join(
                f"{name} {row[f'{name}_point_components_per_s'] / 1e6:6.1f}" for name in IMPLS)
                + f"  M point-components/s; dense/einsum x{row['dense_vs_einsum']:.2f}")
    return rows


def _spread_mixture(d: int, k: int, gen: torch.Generator) -> toy.GaussianMixture:
    """k components with means uniform in [-1, 1]^d and random full covariances of scale about 0.3."""
    means = 2 * torch.rand(k, d, generator=gen, dtype=torch.float64) - 1
    a = torch.randn(k, d, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
    covs = 0.09 * (a @ a.transpose(-1, -2) + 0.5 * torch.eye(d, dtype=torch.float64))
    return toy.GaussianMixture(torch.full((k,), 1.0 / k, dtype=torch.float64), means, covs)


def crossover(dims=(1, 2, 3, 4, 6, 8, 12, 16, 20, 24), n=100_000, k=25, batches=(64, 256, 1024, 4096, 16384),
              comps=(3, 25), dtypes=(torch.float32, torch.float64), repeats=3, progress=True) -> dict:
    """Where the dense path stops paying: per dimension (n points, k components), and per batch size in 2-D with the
    dense tables built afresh at every call (as a sampler's new time step does)."""
    gen = torch.Generator().manual_seed(1)
    by_dim = []
    for d in tqdm(dims, desc="crossover in dimension", disable=not progress):
        m = _spread_mixture(d, k, gen)
        law = m.noised(0.8, 0.5)
        for dtype in dtypes:
            x = law.sample(n, gen).to(dtype)
            ref = timeit(lambda: law.score(x, engine="reference"), repeats)
            den = timeit(lambda: law.score(x, engine="dense"), repeats)
            by_dim.append({"dim": d, "dtype": str(dtype).replace("torch.", ""), "reference_seconds": ref,
                           "dense_seconds": den, "dense_vs_reference": ref / den})
    by_batch = []
    for kk in comps:
        m = _spread_mixture(2, kk, gen)
        law = m.noised(0.8, 0.5)

        def fresh(x):
            m._dense.clear()
            return law.score(x, engine="dense")

        for size in tqdm(batches, desc=f"crossover in batch size, K={kk}", disable=not progress):
            x = law.sample(size, gen)
            ref = timeit(lambda: law.score(x, engine="reference"), 5 * repeats)
            den = timeit(lambda: fresh(x), 5 * repeats)
            by_batch.append({"points": size, "components": kk, "dtype": "float64", "reference_seconds": ref,
                             "dense_seconds_with_tables": den, "dense_vs_reference": ref / den})
    faster = [d for d in dims if all(r["dense_vs_reference"] > 1.0 for r in by_dim if r["dim"] <= d)]
    wins = [r["points"] * r["components"] for r in by_batch if r["dense_vs_reference"] > 1.0]
    return {"by_dim": {"points": n, "components": k, "rows": by_dim}, "by_batch": by_batch,
            "dense_faster_up_to_dim": max(faster) if faster else 0,
            "dense_faster_from_point_components": min(wins) if wins else None,
            "DENSE_MAX_DIM": DENSE_MAX_DIM, "DENSE_MIN_WORK": DENSE_MIN_WORK}


def main(argv=None, out: str | None = None, quick: bool = False) -> dict:
    """Run the benchmark and write its JSON atomically (command-line arguments, or ``out``/``quick``)."""
    if argv is not None:
        ap = argparse.ArgumentParser(description=__doc__)
        ap.add_argument("--quick", action="store_true", help="1e4 points only, 2 repeats")
        ap.add_argument("--out", default=None)
        args = ap.parse_args(argv)
        out, quick = args.out, args.quick
    if quick:
        rows = run(sizes=(10_000,), repeats=2)
        cross = crossover(dims=(2, 8), n=5_000, batches=(256, 4096), repeats=1)
    else:
        rows = run()
        cross = crossover()
    res = {
        "benchmark": "exact mixture score throughput (noised law alpha=0.8, sigma=0.5; points 3 N(0, I)); "
                     "seconds are the fastest of the repeats",
        "implementations": {"loop": "loop_score: one component at a time", "einsum": "einsum_score: plain vectorised",
                            "reference": "toy's per-component path (eigenbases, chunked)",
                            "dense": "toy's dense path (quadratic features x coefficient table)"},
        "device": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "rows": rows,
        "crossover": cross,
    }
    path = out or str(Path("benchmarks") / "results" / "score_cpu.json")
    write_json(path, res)
    print(f"wrote {path}")
    return res


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
