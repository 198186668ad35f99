"""Sampler throughput of the reference image models on CUDA, in priority order inside a time budget.

``diffcheck bench gpu --budget-s 420`` runs the plan of ``gpu_plan`` (the bf16 matrix-product ceiling;
DDIM-50 on the DDPM U-Net in eager float32, bf16 autocast + channels-last over a batch sweep and
compiled, beside diffusers' UNet2DModel with its DDIMScheduler; the correctness gate; the other
families as the budget allows), writes the JSON atomically after every step and ends with a summary
table; ``--dry-run`` runs the same plan on the CPU with tiny configurations. How to run it on a GPU
machine, and the JSON's fields: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from . import gpu_cases as C
from . import gpu_plan as P
from . import gpu_timing as T
from .gpu_args import HARD_STOP_GRACE_S, add_arguments
from .gpu_record import Record, Watchdog, hard_exit, new_document
from .gpu_run import Runner
from .gpu_summary import summarize, table

__all__ = ["Options", "run", "main", "parser", "options_from", "default_out", "HARD_STOP_GRACE_S"]

@dataclass(frozen=True)
class Options:
    """What one benchmark run does; every field is checked, naming the argument."""

    device: str | None = None  # None: CUDA when present, else the CPU (tiny configurations only)
    tiny: bool = False  # the tiny configurations (a CPU dry run, or a quick check on a GPU)
    budget_s: float | None = 420.0  # seconds for the whole run; None: no limit
    hard_stop_s: float | None = None  # None: the budget plus HARD_STOP_GRACE_S (no hard stop without a budget)
    diffusers: bool = True
    cpu_compile: bool = False  # on a CPU, run the compiled variants through dynamo's eager backend
    seed: int = 0
    progress: bool = True
    weights: str | None = None  # a checkpoint that replaces the DDPM family's U-Net (read by diffcheck.nets.load)

    def __post_init__(self) -> None:
        if self.device is not None and not isinstance(self.device, str):
            raise TypeError(f"device must be a string such as 'cuda' or 'cpu', got {self.device!r}")
        for name in ("budget_s", "hard_stop_s"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not (value > 0 and math.isfinite(value))):
                raise ValueError(f"{name} must be a positive number of seconds or None, got {value!r}")
        if self.hard_stop_s is not None and self.budget_s is not None and self.hard_stop_s < self.budget_s:
            raise ValueError(f"hard_stop_s ({self.hard_stop_s}) must not be under budget_s ({self.budget_s})")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")
        if self.weights is not None and not Path(self.weights).exists():
            raise ValueError(f"weights: no such file or folder {self.weights!r}")

    @property
    def stop_s(self) -> float | None:
        if self.hard_stop_s is not None:
            return self.hard_stop_s
        return None if self.budget_s is None else self.budget_s + HARD_STOP_GRACE_S


def _device(opts: Options) -> torch.device:
    dev = torch.device(opts.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device is 'cuda' but no CUDA device is available")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
    if not opts.tiny and dev.type != "cuda":
        raise ValueError("the full benchmark needs a CUDA device; --dry-run runs the same plan on the CPU with tiny configurations")
    return dev


def run(options: Options | None = None, out: str | Path | None = None, *, ddpm_net: torch.nn.Module | None = None,
        exit_fn: Callable[[int], None] = hard_exit) -> dict:
    """Run the plan; the closed document (also written to ``out`` after every step, with a report beside it).

    ``ddpm_net`` replaces the DDPM family's reference U-Net (a loaded checkpoint, say). If a step is still
    running at the hard stop, the document is closed from a watchdog thread and ``exit_fn(3)`` is called.
    """
    opts = options or Options()
    if not isinstance(opts, Options):
        raise TypeError(f"options must be an Options, got {type(opts).__name__}")
    if ddpm_net is not None:
        C.user_network(ddpm_net)
    device = _device(opts)
    settings = P.TINY if opts.tiny else P.FULL
    budget = P.Budget(opts.budget_s)
    steps = P.plan(diffusers=opts.diffusers)
    doc = new_document(configuration="tiny" if opts.tiny else "full", dry_run=device.type == "cpu",
                       environment=T.environment(device), timer=T.timer_name(device),
                       settings={"budget_s": opts.budget_s, "hard_stop_s": opts.stop_s, "seed": opts.seed, "device": str(device),
                                 "diffusers": opts.diffusers, "cpu_compile": opts.cpu_compile, "user_network": ddpm_net is not None,
                                 **{k: list(v) if isinstance(v, tuple) else v for k, v in vars(settings).items()}},
                       steps=steps)
    record = Record(doc, out)
    record.save()
    runner = Runner(record=record, settings=settings, budget=budget, device=device, tiny=opts.tiny, diffusers=opts.diffusers,
                    cpu_compile=opts.cpu_compile, seed=opts.seed, ddpm_net=ddpm_net,
                    grace_s=0.0 if opts.stop_s is None or opts.budget_s is None else opts.stop_s - opts.budget_s,
                    log=None if opts.progress else (lambda msg: None))

    def report(d: dict, path: Path) -> None:
        from .gpu_report import write_report

        write_report(d, path.with_suffix(".md"), path.with_suffix(".png"))

    def expire() -> None:
        closed = record.close(summarize, f"hard stop at {opts.stop_s:g} s: {runner.close_note()}", report)
        print(table(closed), flush=True)
        exit_fn(3)

    watchdog = Watchdog(opts.stop_s, expire).start() if opts.stop_s is not None else None
    compiles = device.type == "cuda" or opts.cpu_compile  # importing dynamo takes seconds: only when it will run
    cfg = torch._dynamo.config if compiles else None
    key = "recompile_limit" if cfg is not None and hasattr(cfg, "recompile_limit") else "cache_size_limit"
    saved = (getattr(cfg, key) if cfg is not None else None, torch.backends.cudnn.benchmark)
    if cfg is not None:
        setattr(cfg, key, max(saved[0], 32))  # each variant and batch size is a compilation of the same forward code
    torch.backends.cudnn.benchmark = device.type == "cuda"
    try:
        runner.execute()
    finally:
        if cfg is not None:
            setattr(cfg, key, saved[0])
        torch.backends.cudnn.benchmark = saved[1]
        if watchdog is not None:
            watchdog.cancel()
    return record.close(summarize, None, report)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "device"


def default_out(opts: Options) -> Path:
    """A CUDA run writes under benchmarks/results/, a tiny one under diffcheck-out/."""
    if opts.tiny:
        return Path("diffcheck-out") / "gpu_dry_run.json"
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return Path("benchmarks") / "results" / f"gpu_{_slug(name)}.json"


def options_from(args: argparse.Namespace, quick: bool = False) -> Options:
    """Options from parsed arguments; ``quick`` (``bench --quick``) is a dry run."""
    dry = bool(args.dry_run or quick)
    if dry and args.device not in (None, "cpu"):
        raise ValueError(f"--dry-run runs on the CPU; --device {args.device} contradicts it")
    if args.budget_s is not None and args.budget_s < 0:
        raise ValueError(f"--budget-s must be a positive number of seconds (or 0 for no limit), got {args.budget_s:g}")
    return Options(device="cpu" if dry else args.device, tiny=dry, budget_s=args.budget_s or None, hard_stop_s=args.hard_stop_s,
                   diffusers=not args.no_diffusers, cpu_compile=args.cpu_compile, progress=not args.quiet,
                   weights=getattr(args, "weights", None))


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m diffcheck.bench.gpu``."""
    ap = argparse.ArgumentParser(prog="python -m diffcheck.bench.gpu", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="JSON path (a .md table and a .png plot are written beside it)")
    add_arguments(ap)
    return ap


def user_network(weights: str | Path) -> torch.nn.Module:
    """The network of a checkpoint (``diffcheck.nets.load``), checked to stand in for the DDPM U-Net."""
    from ..nets import load

    net = load(None, weights).net
    C.user_network(net)
    return net


def main(opts: Options, out: str | Path | None = None) -> dict:
    """Run with ``opts``, write the JSON (default ``default_out``) and print the summary table."""
    path = Path(out) if out else default_out(opts)
    net = user_network(opts.weights) if opts.weights is not None else None
    doc = run(opts, path, ddpm_net=net)
    print(table(doc))
    print(f"wrote {path} ({path.with_suffix('.md').name}, {path.with_suffix('.png').name})")
    return doc


if __name__ == "__main__":
    a = parser().parse_args(sys.argv[1:])
    try:
        opts = options_from(a)
    except ValueError as err:
        parser().exit(2, f"error: {err}\n")
    main(opts, a.out)
