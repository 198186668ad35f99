"""``diffcheck bench scores|samplers|gpu``: throughput benchmarks written as JSON."""

from __future__ import annotations

from ..bench.gpu_args import DEFAULTS as _GPU_DEFAULTS
from ..bench.gpu_args import add_arguments as _gpu_arguments
from ._common import UsageError, output_file

__all__ = ["register"]


def register(sub) -> None:
    """Add the ``bench`` command."""
    bench = sub.add_parser("bench", help="benchmarks: exact-score throughput, sampler overhead, GPU sampler speed",
                           description="Run a benchmark and write its JSON under benchmarks/results/ (or --out). "
                                       "'gpu' runs its plan in priority order inside --budget-s; --dry-run (or --quick) "
                                       "runs the same plan on the CPU with tiny configurations.")
    bench.add_argument("which", choices=("scores", "samplers", "gpu"), help="which benchmark")
    bench.add_argument("--quick", action="store_true", help="a small, fast version (for gpu: the dry run)")
    bench.add_argument("--out", metavar="FILE", help="JSON path")
    _gpu_arguments(bench.add_argument_group("gpu options"))
    bench.set_defaults(handler=run)


def run(args) -> int:
    """Run the chosen benchmark."""
    if args.which != "gpu":
        used = [f"--{k.replace('_', '-')}" for k, d in _GPU_DEFAULTS.items() if getattr(args, k, d) != d]
        if used:
            raise UsageError(f"{', '.join(used)} applies to 'bench gpu' only")
    if args.out:
        output_file(args.out, suffixes=(".json",))
    if args.which == "scores":
        from ..bench import scores

        scores.main(out=args.out, quick=args.quick)
    elif args.which == "samplers":
        from ..bench import samplers

        samplers.main(out=args.out, quick=args.quick)
    else:
        try:
            from ..bench import gpu
        except ImportError as err:
            raise UsageError(f"the GPU benchmark is unavailable: {err}") from None
        gpu.main(gpu.options_from(args, quick=args.quick), args.out)
    return 0
