"""``diffcheck sample``: any sampler on the exact model of any preset, checked against the exact law."""

from __future__ import annotations

from pathlib import Path
from ._common import UsageError, output_file, positive_int
from ._sampling import PROCESSES, SAMPLERS, make_grid, make_process, runner
from .convert import add_checkpoint_options

__all__ = ["register", "add_common", "setup", "runner", "PROCESSES", "SAMPLERS"]

SAMPLE_SUFFIXES = (".npy", ".pt", ".csv")


def add_common(sp, sampler: bool = True) -> None:
    """The preset, process, sampler and seed options shared by ``sample`` and ``plot``."""
    import toy

    sp.add_argument("--preset", choices=sorted(toy.PRESETS), default="two_modes", help="toy distribution (default two_modes)")
    sp.add_argument("--process", choices=PROCESSES, default="VP", help="forward process (default VP)")
    if sampler:
        sp.add_argument("--sampler", choices=SAMPLERS, default="heun-ode", help="sampler (default heun-ode)")
        sp.add_argument("--steps", type=positive_int, default=100, help="sampler steps (default 100)")
        sp.add_argument("--prediction", choices=("eps", "x0", "v", "score"), default="eps", help="what the exact model predicts")
    sp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def register(sub) -> None:
    """Add the ``sample`` command."""
    sample = sub.add_parser("sample", help="run any sampler on the exact model of any preset, or on a checkpoint (--weights)",
                            description="Sample a toy with the exact model and a sampler, compare with the exact law (two-sample test, mode weights) and save the samples (.npy, .pt or .csv). "
                                        "Exits 0 when the samples are consistent with the exact law, 1 when they are not (or the sampler fails). "
                                        "With --weights, sample a published checkpoint's network on its own process and write an image grid (PNG).")
    add_common(sample)
    sample.add_argument("-n", type=positive_int, default=2000, help="number of samples (default 2000; 16 with --weights)")
    sample.add_argument("--out", metavar="FILE", help="write the samples here (.npy, .pt or .csv; a .png grid with --weights)")
    sample.add_argument("--progress", action="store_true", help="show a progress bar")
    sample.add_argument("--weights", metavar="PATH", help="a checkpoint file or diffusers folder to sample instead of the exact model")
    sample.add_argument("--label", type=int, help="with --weights: the class of a class-conditional network (default: drawn)")
    add_checkpoint_options(sample, prefix="with --weights: ")
    # None marks "not given": the toy defaults are filled in by run, and --weights refuses the toy-only options
    sample.set_defaults(handler=run, preset=None, process=None, prediction=None, sampler=None, n=None)


def setup(args):
    """(mixture, process, exact model, grid, generator) from the common options."""
    import torch

    import toy

    from ..exact import ExactModel

    mixture = toy.preset(args.preset)
    process = make_process(args.process)
    model = ExactModel(mixture, process, args.prediction)
    grid = make_grid(process, args.steps)
    gen = torch.Generator().manual_seed(args.seed)
    return mixture, process, model, grid, gen


def save_samples(x, path: str) -> None:
    """Write samples atomically as .npy, .pt or .csv."""
    import numpy as np
    import torch

    from ..io import atomic_path

    suffix = Path(path).suffix.lower()
    if suffix not in SAMPLE_SUFFIXES:
        raise UsageError(f"--out must end in .npy, .pt or .csv, got {path!r}")
    with atomic_path(path) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, x.numpy())
        elif suffix == ".pt":
            torch.save(x, tmp)
        else:
            np.savetxt(tmp, x.numpy(), delimiter=",")


TOY_DEFAULTS = {"preset": "two_modes", "process": "VP", "prediction": "eps", "sampler": "heun-ode", "n": 2000}


def run(args) -> int:
    """Sample, test against the exact law, save (or, with ``--weights``, sample a checkpoint: see ``sample_weights``)."""
    if args.weights:
        from .sample_weights import run as run_weights

        return run_weights(args)
    for key, value in TOY_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    from ..testing import stats as st

    if args.out:
        output_file(args.out, suffixes=SAMPLE_SUFFIXES)  # before the work: a bad --out fails at once

    mixture, process, model, grid, gen = setup(args)
    x_T = model.law(grid[0]).sample(args.n, gen)
    x = runner(args.sampler)(model, process, x_T, grid, gen, progress=args.progress) if args.sampler != "adaptive-ode" \
        else runner(args.sampler)(model, process, x_T, grid, gen)
    law = model.law(grid[-1])
    two = st.two_sample_test(x, law.sample(args.n, gen), alpha=1e-3, generator=gen, features=law.log_prob)
    modes = st.mode_weights_test(x, mixture, alpha=1e-3, generator=gen, reference=law.to_mixture())
    ok = two.passed and modes.passed
    print(f"{args.sampler} on {args.preset} ({args.process}, {len(grid) - 1} steps, n={args.n}): "
          f"two-sample p = {two.p_value:.3g}, mode weights p = {modes.p_value:.3g} -> "
          f"{'consistent with the exact law' if ok else 'NOT the exact law'} at alpha = 1e-3")
    if args.out:
        save_samples(x.detach().cpu(), args.out)
        print(f"samples: {args.out}")
    return 0 if ok else 1
