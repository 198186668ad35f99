"""``diffcheck plot``: densities over t, score fields, sample clouds, trajectories, or any tour figure."""

from __future__ import annotations

from pathlib import Path

from ._common import UsageError, output_file, times
from .sample import add_common, runner, setup

__all__ = ["register", "PLOTS"]

PLOTS = ("densities", "scores", "samples", "trajectories", "figure")
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def register(sub) -> None:
    """Add the ``plot`` command."""
    plot = sub.add_parser("plot", help="figures: densities over t, score fields, sample clouds, trajectories, or any tour figure",
                          description="Draw one figure. KIND: densities | scores (exact score fields over t) | samples (a sampler's cloud over the exact density) | trajectories (ODE and SDE paths) | figure (a tour figure by --name).")
    plot.add_argument("kind", choices=PLOTS, help="what to draw")
    add_common(plot)
    plot.add_argument("--times", type=times, default=[0.0, 0.2, 0.5, 0.9], help="times for densities/scores (default 0,0.2,0.5,0.9)")
    plot.add_argument("--name", help="tour figure name for KIND=figure (see --list)")
    plot.add_argument("--list", action="store_true", help="list the tour figures and exit")
    plot.add_argument("--out", metavar="FILE", help="PNG, PDF or SVG path (default diffcheck-out/plots/<kind>.png)")
    plot.add_argument("--quiet", action="store_true", help="no progress bar")
    plot.set_defaults(handler=run)


def run(args) -> int:
    """Draw the figure and print its path."""
    from ..checks import plots

    if args.list or args.kind == "figure":
        figures = plots()
        if args.list:
            print("\n".join(n.removesuffix(".png") for n in figures))
            return 0
        name = (args.name or "").removesuffix(".png") + ".png"
        if name not in figures:
            raise UsageError(f"unknown figure {args.name!r}; see 'diffcheck plot figure --list'")
        out = output_file(args.out or f"diffcheck-out/plots/{name}", suffixes=PLOT_SUFFIXES)
        from ..tour import draw_figures

        print(draw_figures([(name, figures[name], out)], progress=not args.quiet)[0])
        return 0
    from .. import plots as pl

    out = str(output_file(args.out or f"diffcheck-out/plots/{args.kind}.png", suffixes=PLOT_SUFFIXES))
    mixture, process, model, grid, gen = setup(args)
    if mixture.dim != 2:
        raise UsageError(f"plots draw 2D presets; {args.preset} has dimension {mixture.dim}")
    if args.kind == "densities":
        path = pl.plot_noised_densities(mixture, process, args.times, out)
    elif args.kind == "scores":
        path = pl.plot_score_fields(mixture, process, args.times, out)
    elif args.kind == "samples":
        x = runner(args.sampler)(model, process, model.law(grid[0]).sample(2000, gen), grid, gen)
        path = pl.plot_samples(model.law(grid[-1]), {f"{args.sampler}, {len(grid) - 1} steps": x}, out,
                               f"{args.sampler} on {args.preset} ({args.process}) over the exact density")
    else:
        x_T = model.law(grid[0]).sample(24, gen)
        trajs = {}
        for name in ("heun-ode", "euler-maruyama"):
            res = runner(name)(model, process, x_T, grid, gen, full=True)
            trajs[f"{name} ({'probability-flow ODE' if name == 'heun-ode' else 'reverse SDE'})"] = res.trajectory
        path = pl.plot_trajectories(model.law(grid[-1]), trajs, out, f"Trajectories on {args.preset} ({args.process}, {len(grid) - 1} steps)")
    print(path)
    return 0
