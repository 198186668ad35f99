"""``diffcheck sample --weights``: a checkpoint's network through any sampler, written as an image grid (PNG)."""

from __future__ import annotations

from pathlib import Path

from ._common import UsageError
from .convert import overrides

__all__ = ["run", "image_grid"]


def image_grid(images, lo: float, hi: float, cols: int | None = None):
    """(N, C, H, W) images in [lo, hi] tiled into one uint8 array (H', W', C) with a 2-pixel white border."""
    import math

    import numpy as np

    n, c, h, w = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    pixels = ((images.float().clamp(lo, hi) - lo) / (hi - lo) * 255).round().byte()
    canvas = np.full((rows * (h + 2) + 2, cols * (w + 2) + 2, c), 255, dtype=np.uint8)
    for i, img in enumerate(pixels.permute(0, 2, 3, 1).cpu().numpy()):
        r, k = divmod(i, cols)
        canvas[2 + r * (h + 2): 2 + r * (h + 2) + h, 2 + k * (w + 2): 2 + k * (w + 2) + w] = img
    return canvas[..., 0] if c == 1 else canvas


def _grid(loaded, process, steps: int):
    from .. import process as P
    from ._sampling import make_grid

    if loaded.config.noise_input == "sigma_index":  # NCSN: times must sit on the network's ladder
        levels = loaded.config.num_classes
        ladder = loaded.wrap.get("sigmas") or P.geometric_sigmas(1.0, 0.01, levels)
        return P.sigma_grid(process, ladder)
    return make_grid(process, steps)


def run(args) -> int:
    """Load the checkpoint, sample, write the grid atomically."""
    import torch
    from PIL import Image

    from .. import process as P
    from ..io import atomic_path
    from ..nets.checkpoints import load
    from ._sampling import runner

    for flag in ("preset", "process", "prediction"):
        if getattr(args, flag) is not None:
            raise UsageError(f"--{flag} does not apply with --weights: the checkpoint's own process and output are used")
    if not args.out or Path(args.out).suffix.lower() != ".png":
        raise UsageError("--weights writes an image grid: give --out FILE.png")
    loaded = load(args.net, args.weights, ema=not args.raw, **overrides(args.set))
    cfg = loaded.config
    if cfg.prediction == "logits":
        raise UsageError(f"--weights {args.weights} holds a classifier ({loaded.name}); sample a diffusion model")
    process = loaded.process()
    model = loaded.model(process)
    grid = _grid(loaded, process, args.steps)
    sampler = args.sampler or ("ve-ancestral" if cfg.noise_input == "sigma_index"
                               else "ddim" if isinstance(process, P.DiscreteVP) else "heun-ode")
    n = args.n or 16
    gen = torch.Generator().manual_seed(args.seed)
    x = process.prior_sample((n, *cfg.data_shape), gen, dtype=torch.float32)
    kwargs = {}
    if cfg.label_classes:
        if args.label is not None and not 0 <= args.label < cfg.label_classes:
            raise UsageError(f"--label must be in [0, {cfg.label_classes}), got {args.label}")
        kwargs["y"] = (torch.full((n,), args.label) if args.label is not None
                       else torch.randint(0, cfg.label_classes, (n,), generator=gen))
    print(f"{loaded.describe()}\n{sampler} over {len(grid) - 1} steps of {process!r}, {n} samples")
    with torch.no_grad():
        run_sampler = runner(sampler)
        if sampler == "adaptive-ode":
            if kwargs:
                raise UsageError("--sampler adaptive-ode takes no labels; choose another sampler for this network")
            samples = run_sampler(model, process, x, grid, gen)
        else:
            samples = run_sampler(model, process, x, grid, gen, progress=args.progress, **kwargs)
    lo, hi = model.data_range
    with atomic_path(args.out) as tmp:
        Image.fromarray(image_grid(samples, lo, hi)).save(tmp, format="PNG")
    print(f"image grid: {args.out}")
    return 0
