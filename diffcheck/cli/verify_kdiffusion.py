"""``diffcheck verify-kdiffusion``: run k-diffusion's samplers with the exact model and report."""

from __future__ import annotations

from ._common import UsageError

__all__ = ["register"]


def register(sub) -> None:
    """Add the ``verify-kdiffusion`` command."""
    vk = sub.add_parser("verify-kdiffusion", help="run k-diffusion's samplers with the exact model and report their laws and orders",
                        description="Needs k-diffusion: pip install 'diffcheck[kdiffusion]' && pip install --no-deps k-diffusion.")
    vk.add_argument("--quick", action="store_true", help="fewer steps, one preset, smaller Monte Carlo tests (seconds per sampler)")
    vk.add_argument("--samplers", nargs="+", metavar="NAME", help="samplers to run (e.g. euler heun dpmpp_2m)")
    vk.add_argument("--out", metavar="FILE", help="JSON path (default diffcheck-out/kdiffusion_report.json)")
    vk.set_defaults(handler=run)


def run(args) -> int:
    """Run the report and print it."""
    from ..adapters import kdiffusion as kd

    if not kd.available():
        raise UsageError(f"k-diffusion is not installed: {kd.INSTALL_HINT}")
    try:
        kd.sampling()
    except ImportError as err:  # k-diffusion is there but a package its samplers import is not
        raise UsageError(str(err)) from None
    report = kd.verify_kdiffusion(args.samplers, out=args.out or "diffcheck-out/kdiffusion_report.json", quick=args.quick)
    print(kd.format_report(report), end="")
    return 0
