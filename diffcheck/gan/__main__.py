"""Train Diffusion-GAN from the command line: ``python -m diffcheck.gan points|digits --out DIR [options]``.

Checkpoints (safetensors) and ``history.json`` go to ``--out``; running the same command again resumes.
"""

from __future__ import annotations

import argparse
import sys

import toy

from .timesteps import TimestepSampler
from .train import GANConfig


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m diffcheck.gan", description=__doc__.splitlines()[0])
    p.add_argument("data", choices=["points", "digits"], help="a 2D mixture preset (points) or the 8x8 digits")
    p.add_argument("--out", required=True, help="directory for the checkpoint and history.json")
    p.add_argument("--preset", default="ring", help="mixture preset for points (ring, grid, two_modes, ...)")
    p.add_argument("--std", type=float, default=None, help="component standard deviation of the ring/grid preset")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=None, help="batch size (default 128 for points, 64 for digits)")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-diffusion", action="store_true", help="the same GAN without instance noise")
    p.add_argument("--t-dist", choices=["priority", "uniform"], default="priority")
    p.add_argument("--convention", choices=["paper", "official"], default="paper")
    p.add_argument("--target", type=float, default=0.6)
    p.add_argument("--ada-kimg", type=float, default=100.0)
    p.add_argument("--noise-std", type=float, default=0.05)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, train, print the final T; errors in the arguments are one-line messages (exit 2)."""
    args = _parser().parse_args(argv)
    try:
        cfg = GANConfig(steps=args.steps, batch_size=args.batch or (128 if args.data == "points" else 64),
                        lr_g=args.lr, lr_d=args.lr, diffusion=not args.no_diffusion,
                        timesteps=TimestepSampler(args.t_dist, args.convention), target=args.target,
                        ada_kimg=args.ada_kimg, noise_std=args.noise_std, checkpoint_every=args.checkpoint_every)
        if args.data == "points":
            from .points import train_points

            kw = {} if args.std is None else {"std": args.std}
            run = train_points(toy.preset(args.preset, **kw), cfg, seed=args.seed, out_dir=args.out,
                               progress=not args.quiet, eval_every=max(1, args.steps // 10))
        else:
            from .digits import train_digits

            run = train_digits(cfg, seed=args.seed, out_dir=args.out, progress=not args.quiet)
    except (ValueError, TypeError, ImportError) as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    sys.stdout.write(f"trained {run.step} steps; final T = {run.T}; results in {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
