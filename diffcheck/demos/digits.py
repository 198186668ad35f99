"""A small DDPM on scikit-learn's 8×8 digits, trained for a few minutes on the CPU (Ho et al. 2020, Algorithms 1–2).

    python -m diffcheck.demos.digits --out digits-run --minutes 5
    torchrun --nproc_per_node 2 -m diffcheck.demos.digits --out digits-run --minutes 5     # the same, on 2 processes

A two-level DDPM U-Net (the ``ddpm_cifar10`` architecture, shrunk) learns ε on the linear 1000-step schedule with
the training loop (Adam, warmup, clipping, EMA); the EMA weights then draw samples by ancestral sampling, sample i
from seed i. Written to ``--out`` atomically: ``samples.png`` (training digits beside samples), ``loss.png``,
``samples.safetensors``, ``summary.json``, and the loop's ``log.jsonl`` and ``checkpoints/``. Running again with
the same ``--out`` resumes training from the last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

# Idle OpenMP threads sleep instead of spinning: on a loaded machine spinning threads made this trainer 15-30x
# slower than one thread. It must be set before torch loads; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from .. import nets  # noqa: E402
from .. import process as P  # noqa: E402
from ..data import load_digits  # noqa: E402
from ..io import atomic_path, writable_dir, write_json  # noqa: E402
from ..nets.wrap import wrap_net  # noqa: E402
from ..param import Model  # noqa: E402
from ..samplers import ddpm_ancestral  # noqa: E402
from ..training import TrainConfig, eps_mse_objective, init_distributed, sample_sharded, train  # noqa: E402

__all__ = ["main", "build_model", "sample", "net_overrides"]


def net_overrides(size: int, width: int) -> dict:
    """A two-level DDPM U-Net for one-channel size×size images, attention at the lower level."""
    return dict(image_size=size, in_channels=1, out_channels=1, ch=width, ch_mult=(1, 2), num_res_blocks=2,
                attn_resolutions=(size // 2,), dropout=0.1)


def build_model(process: P.DiscreteVP, size: int, width: int, seed: int):
    """The wrapped network: an ε-model of ``process``."""
    return wrap_net(nets.build("ddpm_cifar10", seed=seed, **net_overrides(size, width)), process)


@torch.no_grad()
def sample(model: Model, process: P.DiscreteVP, seeds: list[int], size: int, steps: int | None) -> torch.Tensor:
    """Ancestral samples, row i from seed i alone: x_T and every step's noise from its own generator."""
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    x = torch.stack([torch.randn(1, size, size, generator=g) for g in gens])
    grid = P.ddpm_grid(process) if steps is None else P.respaced_grid(process, P.iddpm_steps(process.T, [steps]))
    return ddpm_ancestral(model, process, x, grid, generator=gens)


def _grid_image(images: torch.Tensor, cols: int) -> np.ndarray:
    """Tile (N, 1, H, W) images in [−1, 1] into one array, one pixel of border between them."""
    n, _, h, w = images.shape
    rows = -(-n // cols)
    canvas = np.ones((rows * (h + 1) + 1, cols * (w + 1) + 1))
    for i, img in enumerate(images.clamp(-1, 1).numpy()):
        r, c = divmod(i, cols)
        canvas[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = img[0]
    return canvas


def _figures(out: Path, data: torch.Tensor, samples: torch.Tensor, log: list[dict]) -> None:
    from .. import plots

    plots.style()
    plt = plots.plt
    cols = int(np.ceil(np.sqrt(samples.shape[0])))
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.2))
    for ax, imgs, title in ((axes[0], data[: samples.shape[0]], "training digits"),
                            (axes[1], samples, f"DDPM samples (EMA weights, step {log[-1]['step'] if log else 0})")):
        ax.imshow(_grid_image(imgs, cols), cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(title)
        ax.axis("off")
    plots.save(fig, out / "samples.png")

    fig, ax = plt.subplots(figsize=(5, 3.2))
    steps = np.array([r["step"] for r in log])
    loss = np.array([r["loss"] for r in log])
    ax.plot(steps, loss, lw=0.5, alpha=0.4, label="per step")
    if len(loss) >= 50:
        k = 50
        ax.plot(steps[k - 1 :], np.convolve(loss, np.ones(k) / k, mode="valid"), lw=1.5, label=f"mean of {k}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("mean |ε̂ − ε|²")
    ax.set_title("L_simple on the digits")
    ax.legend()
    plots.save(fig, out / "loss.png")


def _read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diffcheck.demos.digits", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output folder (resumed if it holds a checkpoint)")
    parser.add_argument("--minutes", type=float, default=5.0, help="training wall time of this run")
    parser.add_argument("--max-steps", type=int, default=200_000, help="total training steps at most")
    parser.add_argument("--size", type=int, choices=(8, 16), default=8, help="image size (16: nearest 2× enlargement)")
    parser.add_argument("--width", type=int, default=32, help="base channels of the U-Net (a multiple of 32)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--ema-rate", type=float, default=0.995)
    parser.add_argument("--samples", type=int, default=64, help="samples drawn at the end")
    parser.add_argument("--sample-steps", type=int, default=None, help="respace sampling to this many steps (default all 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's, one per core; idle threads sleep, so a busy machine "
                             "does not slow them down; 1 is best when other jobs hold every core)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        parser.error("--minutes must be positive")
    if args.width <= 0 or args.width % 32:
        parser.error("--width must be a positive multiple of 32 (GroupNorm has 32 groups)")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    writable_dir(args.out, "--out")  # before any work: an unwritable --out fails at once

    w = init_distributed()
    out: Path = args.out
    process = P.DiscreteVP.linear()
    data = load_digits(size=args.size, resize="nearest")
    model = build_model(process, args.size, args.width, args.seed)
    config = TrainConfig(steps=args.max_steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=100,
                         grad_clip=1.0, ema_rate=args.ema_rate, checkpoint_every=500, data_seed=args.seed,
                         progress=not args.no_progress)
    deadline = time.perf_counter() + 60.0 * args.minutes
    start = time.perf_counter()
    result = train(model, eps_mse_objective(process), data.images, config, generator=torch.Generator().manual_seed(args.seed),
                   out_dir=out, on_step=lambda record: time.perf_counter() > deadline)
    train_seconds = time.perf_counter() - start

    ema_model = build_model(process, args.size, args.width, args.seed)
    result.ema.copy_to(ema_model)
    ema_model.eval()
    start = time.perf_counter()
    samples = sample_sharded(lambda seeds: sample(ema_model, process, seeds, args.size, args.sample_steps),
                             args.samples, base_seed=10_000 * (args.seed + 1), batch_size=64, progress=not args.no_progress)
    sample_seconds = time.perf_counter() - start
    if not w.is_main:
        return 0
    assert samples is not None
    with atomic_path(out / "samples.safetensors") as tmp:
        save_file({"samples": samples.contiguous()}, str(tmp))
    log = _read_log(out / "log.jsonl")
    _figures(out, data.images, samples, log)
    summary = {
        "command": " ".join(["python -m diffcheck.demos.digits", *(argv if argv is not None else sys.argv[1:])]),
        "processes": w.size,
        "threads": torch.get_num_threads(),
        "steps": result.step,
        "steps_this_run": len(result.records),
        "train_seconds": round(train_seconds, 1),
        "sample_seconds": round(sample_seconds, 1),
        "final_loss_mean_of_last_100": float(np.mean([r["loss"] for r in log[-100:]])) if log else None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "samples_range": [float(samples.min()), float(samples.max())],
    }
    write_json(out / "summary.json", summary)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, OSError) as err:
        sys.exit(f"python -m diffcheck.demos.digits: error: {err}")
