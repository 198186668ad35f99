"""The command line: tour, plot, sample, train, bench, verify-diffusers.

Bad arguments end with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["main", "build_parser", "SAMPLERS", "PROCESSES"]

PROCESSES = ("VP", "subVP", "VE", "VE-official", "cosine", "linear-VE", "ddpm-linear", "ddpm-cosine")
SAMPLERS = ("ddpm", "ddpm-beta", "ddim", "ddim-eta1", "euler-maruyama", "reverse-diffusion", "pc", "pc-batch",
            "ve-ancestral", "vp-ancestral", "euler-ode", "heun-ode", "adaptive-ode")
PLOTS = ("densities", "scores", "samples", "trajectories", "figure")


class UsageError(ValueError):
    """A bad command-line value, reported in one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2
        self.exit(2, f"diffcheck: error: {message} (see 'diffcheck --help')\n")


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _times(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated times in [0, 1], got {text!r}") from None
    if not vals or any(not 0.0 <= v <= 1.0 for v in vals):
        raise argparse.ArgumentTypeError(f"expected comma-separated times in [0, 1], got {text!r}")
    return vals


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``diffcheck`` command."""
    import toy

    p = _Parser(prog="diffcheck", description="Diffusion and score-based models, verified against exact answers.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    tour = sub.add_parser("tour", help="run the registered checks on the toys; print a table; write a JSON report and plots",
                          description="Run every registered check (or those matching --only), print claim / source / expected / measured / verdict, and write report.json, report.md and plots to --out.")
    tour.add_argument("--only", metavar="TEXT", help="only checks whose id or source contains TEXT (comma-separated alternatives), e.g. 'ddpm' or 'Song & Ermon'")
    tour.add_argument("--out", metavar="DIR", default="diffcheck-out", help="output folder (default: diffcheck-out)")
    tour.add_argument("--json", action="store_true", help="print the report as JSON instead of the table")
    tour.add_argument("--no-plots", action="store_true", help="skip the plots")
    tour.add_argument("--quiet", action="store_true", help="no progress bar")
    tour.add_argument("--list", action="store_true", help="list the selected checks and exit")

    def common(sp, sampler: bool = True):
        sp.add_argument("--preset", choices=sorted(toy.PRESETS), default="two_modes", help="toy distribution (default two_modes)")
        sp.add_argument("--process", choices=PROCESSES, default="VP", help="forward process (default VP)")
        if sampler:
            sp.add_argument("--sampler", choices=SAMPLERS, default="heun-ode", help="sampler (default heun-ode)")
            sp.add_argument("--steps", type=_positive_int, default=100, help="sampler steps (default 100)")
            sp.add_argument("--prediction", choices=("eps", "x0", "v", "score"), default="eps", help="what the exact model predicts")
        sp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    sample = sub.add_parser("sample", help="run any sampler on the exact model of any preset; check the samples; save them",
                            description="Sample a toy with the exact model and a sampler, compare with the exact law (two-sample test, mode weights) and save the samples (.npy, .pt or .csv).")
    common(sample)
    sample.add_argument("-n", type=_positive_int, default=2000, help="number of samples (default 2000)")
    sample.add_argument("--out", metavar="FILE", help="write the samples here (.npy, .pt or .csv)")
    sample.add_argument("--progress", action="store_true", help="show a progress bar")

    plot = sub.add_parser("plot", help="figures: densities over t, score fields, sample clouds, trajectories, or any tour figure",
                          description="Draw one figure. KIND: densities | scores (exact score fields over t) | samples (a sampler's cloud over the exact density) | trajectories (ODE and SDE paths) | figure (a tour figure by --name).")
    plot.add_argument("kind", choices=PLOTS, help="what to draw")
    common(plot)
    plot.add_argument("--times", type=_times, default=[0.0, 0.2, 0.5, 0.9], help="times for densities/scores (default 0,0.2,0.5,0.9)")
    plot.add_argument("--name", help="tour figure name for KIND=figure (see --list)")
    plot.add_argument("--list", action="store_true", help="list the tour figures and exit")
    plot.add_argument("--out", metavar="FILE", help="PNG path (default diffcheck-out/plots/<kind>.png)")

    train = sub.add_parser("train", help="train a toy model or the digits demo",
                           description="toy: train a small network on a toy with an objective (see 'diffcheck train toy --help'); digits: the DDPM digits demo (arguments are passed on).")
    tsub = train.add_subparsers(dest="target", metavar="TARGET", parser_class=_Parser)
    tsub.add_parser("digits", help="train a small DDPM on scikit-learn's digits and write a sample grid (see 'diffcheck train digits --help')", add_help=False)
    tsub.add_parser("toy", help="train toy networks over presets x objectives and tabulate their errors against the exact score (see 'diffcheck train toy --help')", add_help=False)

    bench = sub.add_parser("bench", help="benchmarks: exact-score throughput, sampler overhead, GPU sampler speed",
                           description="Run a benchmark and write its JSON under benchmarks/results/ (or --out).")
    bench.add_argument("which", choices=("scores", "samplers", "gpu"), help="which benchmark")
    bench.add_argument("--quick", action="store_true", help="a small, fast version")
    bench.add_argument("--out", metavar="FILE", help="JSON path")

    vd = sub.add_parser("verify-diffusers", help="drive diffusers' schedulers with the exact model and report their errors",
                        description="Needs the optional dependency: pip install 'diffcheck[diffusers]'.")
    vd.add_argument("--quick", action="store_true", help="fewer configurations and steps")
    vd.add_argument("--out", metavar="FILE", help="JSON path (default diffcheck-out/diffusers_report.json)")
    return p


# -- handlers -----------------------------------------------------------------------------------------


def _process(name: str):
    from . import process as P

    return {"VP": P.VP, "subVP": P.SubVP, "VE": P.VE, "VE-official": lambda: P.VE(kernel="official"), "cosine": P.CosineVP,
            "linear-VE": P.LinearVE, "ddpm-linear": P.DiscreteVP.linear, "ddpm-cosine": P.DiscreteVP.cosine}[name]()


def _grid(process, steps: int):
    from . import process as P

    if isinstance(process, P.DiscreteVP):
        if steps > process.T:
            raise UsageError(f"--steps must be at most the table's T = {process.T}, got {steps}")
        return P.iddpm_grid(process, [steps])
    return P.uniform_grid(steps, 1.0, max(process.t_eps, 1e-3))


def _runner(name: str) -> Callable:
    from . import samplers as S

    table: dict[str, Callable] = {
        "ddpm": lambda m, p, x, g, gen, **kw: S.ddpm_ancestral(m, p, x, g, generator=gen, **kw),
        "ddpm-beta": lambda m, p, x, g, gen, **kw: S.ddpm_ancestral(m, p, x, g, generator=gen, variance="beta", **kw),
        "ddim": lambda m, p, x, g, gen, **kw: S.ddim(m, p, x, g, **kw),
        "ddim-eta1": lambda m, p, x, g, gen, **kw: S.ddim(m, p, x, g, eta=1.0, generator=gen, **kw),
        "euler-maruyama": lambda m, p, x, g, gen, **kw: S.euler_maruyama(m, p, x, g, generator=gen, **kw),
        "reverse-diffusion": lambda m, p, x, g, gen, **kw: S.reverse_diffusion(m, p, x, g, generator=gen, **kw),
        "pc": lambda m, p, x, g, gen, **kw: S.predictor_corrector(m, p, x, g, generator=gen, **kw),
        "pc-batch": lambda m, p, x, g, gen, **kw: S.predictor_corrector(m, p, x, g, generator=gen, norm="batch", **kw),
        "ve-ancestral": lambda m, p, x, g, gen, **kw: S.ve_ancestral(m, p, x, g, generator=gen, **kw),
        "vp-ancestral": lambda m, p, x, g, gen, **kw: S.vp_ancestral(m, p, x, g, generator=gen, **kw),
        "euler-ode": lambda m, p, x, g, gen, **kw: S.euler_ode(m, p, x, g, **kw),
        "heun-ode": lambda m, p, x, g, gen, **kw: S.heun_ode(m, p, x, g, **kw),
        "adaptive-ode": lambda m, p, x, g, gen, **kw: S.adaptive_ode(m, p, x, g, **{k: v for k, v in kw.items() if k == "full"}),
    }
    return table[name]


def _setup(args):
    import torch

    import toy

    from .exact import ExactModel

    mixture = toy.preset(args.preset)
    process = _process(args.process)
    model = ExactModel(mixture, process, args.prediction)
    grid = _grid(process, args.steps)
    gen = torch.Generator().manual_seed(args.seed)
    return mixture, process, model, grid, gen


def _cmd_tour(args) -> int:
    from .checks import select
    from .tour import run_tour

    chosen = select(args.only)
    if not chosen:
        raise UsageError(f"no check matches --only {args.only!r}")
    if args.list:
        for c in chosen:
            print(f"{c.check_id:32} {c.claim} ({c.source})")
        return 0
    report = run_tour(args.only, args.out, with_plots=not args.no_plots, progress=not (args.quiet or args.json), as_json=args.json)
    return 0 if report["summary"]["failed"] == 0 else 1


def _save_samples(x, path: str) -> None:
    import numpy as np
    import torch

    from .io import atomic_path

    suffix = Path(path).suffix.lower()
    if suffix not in (".npy", ".pt", ".csv"):
        raise UsageError(f"--out must end in .npy, .pt or .csv, got {path!r}")
    with atomic_path(path) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, x.numpy())
        elif suffix == ".pt":
            torch.save(x, tmp)
        else:
            np.savetxt(tmp, x.numpy(), delimiter=",")


def _cmd_sample(args) -> int:
    from .testing import stats as st

    mixture, process, model, grid, gen = _setup(args)
    x_T = model.law(grid[0]).sample(args.n, gen)
    x = _runner(args.sampler)(model, process, x_T, grid, gen, progress=args.progress) if args.sampler != "adaptive-ode" \
        else _runner(args.sampler)(model, process, x_T, grid, gen)
    law = model.law(grid[-1])
    two = st.two_sample_test(x, law.sample(args.n, gen), alpha=1e-3, generator=gen, features=law.log_prob)
    modes = st.mode_weights_test(x, mixture, alpha=1e-3, generator=gen, reference=law.to_mixture())
    print(f"{args.sampler} on {args.preset} ({args.process}, {len(grid) - 1} steps, n={args.n}): "
          f"two-sample p = {two.p_value:.3g}, mode weights p = {modes.p_value:.3g} -> "
          f"{'consistent with the exact law' if two.passed and modes.passed else 'NOT the exact law'} at alpha = 1e-3")
    if args.out:
        _save_samples(x.detach().cpu(), args.out)
        print(f"samples: {args.out}")
    return 0


def _cmd_plot(args) -> int:
    from .checks import plots

    if args.list or args.kind == "figure":
        figures = plots()
        if args.list:
            print("\n".join(n.removesuffix(".png") for n in figures))
            return 0
        name = (args.name or "").removesuffix(".png") + ".png"
        if name not in figures:
            raise UsageError(f"unknown figure {args.name!r}; see 'diffcheck plot figure --list'")
        out = args.out or f"diffcheck-out/plots/{name}"
        print(figures[name](Path(out)))
        return 0
    from . import plots as pl

    mixture, process, model, grid, gen = _setup(args)
    if mixture.dim != 2:
        raise UsageError(f"plots draw 2D presets; {args.preset} has dimension {mixture.dim}")
    out = args.out or f"diffcheck-out/plots/{args.kind}.png"
    if args.kind == "densities":
        path = pl.plot_noised_densities(mixture, process, args.times, out)
    elif args.kind == "scores":
        path = pl.plot_score_fields(mixture, process, args.times, out)
    elif args.kind == "samples":
        x = _runner(args.sampler)(model, process, model.law(grid[0]).sample(2000, gen), grid, gen)
        path = pl.plot_samples(model.law(grid[-1]), {f"{args.sampler}, {len(grid) - 1} steps": x}, out,
                               f"{args.sampler} on {args.preset} ({args.process}) over the exact density")
    else:
        x_T = model.law(grid[0]).sample(24, gen)
        trajs = {}
        for name in ("heun-ode", "euler-maruyama"):
            res = _runner(name)(model, process, x_T, grid, gen, full=True)
            trajs[f"{name} ({'probability-flow ODE' if name == 'heun-ode' else 'reverse SDE'})"] = res.trajectory
        path = pl.plot_trajectories(model.law(grid[-1]), trajs, out, f"Trajectories on {args.preset} ({args.process}, {len(grid) - 1} steps)")
    print(path)
    return 0


def _cmd_train(args, rest: Sequence[str]) -> int:
    if args.target == "digits":
        from .demos.digits import main as digits_main

        return int(digits_main(list(rest)) or 0)
    if args.target == "toy":
        from .learned.__main__ import main as toy_main

        return int(toy_main(list(rest)) or 0)
    raise UsageError("train needs a target: digits or toy")


def _cmd_bench(args) -> int:
    if args.which == "scores":
        from .bench import scores

        scores.main(out=args.out, quick=args.quick)
    elif args.which == "samplers":
        from .bench import samplers

        samplers.main(out=args.out, quick=args.quick)
    else:
        try:
            from .bench import gpu
        except ImportError as err:
            raise UsageError(f"the GPU benchmark is unavailable: {err}") from None
        gpu.main(out=args.out, quick=args.quick)
    return 0


def _cmd_verify_diffusers(args) -> int:
    try:
        from .adapters import format_report, verify_diffusers
    except ImportError as err:
        raise UsageError(f"{err} (install it with: pip install 'diffcheck[diffusers]')") from None
    report = verify_diffusers(out=args.out or "diffcheck-out/diffusers_report.json", quick=args.quick)
    print(format_report(report))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``diffcheck`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    rest: list[str] = []
    if len(argv) >= 2 and argv[0] == "train" and argv[1] in ("digits", "toy"):
        argv, rest = argv[:2], argv[2:]
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    handlers: dict[str, Callable[..., int]] = {
        "tour": _cmd_tour, "sample": _cmd_sample, "plot": _cmd_plot, "bench": _cmd_bench,
        "verify-diffusers": _cmd_verify_diffusers,
    }
    try:
        if args.command == "train":
            return _cmd_train(args, rest)
        return handlers[args.command](args)
    except (UsageError, ValueError, TypeError) as err:
        sys.stderr.write(f"diffcheck: error: {err}\n".replace("\n", " ").rstrip() + "\n")
        return 2
    except FloatingPointError as err:  # a sampler or solver reached a non-finite state: say where, no traceback
        sys.stderr.write(f"diffcheck: failed: {err}\n".replace("\n", " ").rstrip() + "\n")
        return 1
    except BrokenPipeError:  # the reader went away (e.g. piped into head)
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
