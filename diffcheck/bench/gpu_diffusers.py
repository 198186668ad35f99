"""The peer beside the benchmark: diffusers' UNet2DModel in the configuration of google/ddpm-cifar10-32,
driven by its DDIMScheduler (or DDPMScheduler) as its DDIM (or DDPM) pipeline drives it.

diffusers is optional: ``available()`` says whether it imports, and nothing here is imported before that.
The configuration is the checkpoint's config.json (the DDPM CIFAR-10 U-Net: block_out_channels
(128, 256, 256, 256), two layers per block, attention only in the 16x16 blocks, positional time embedding
with freq_shift 1 and no sin/cos flip, GroupNorm 32 with eps 1e-6); built with random weights it has the
35,746,307 parameters of ours, so both sides do the same work. The scheduler settings are the
checkpoint's scheduler_config.json (linear betas 1e-4 to 0.02 over 1000 steps, clip_sample on).

Precisions, matched to ours: "fp32" (TF32 off), "bf16" (the U-Net call under bf16 autocast, the loop in
float32, as our autocast variants), "bf16w" (weights and the loop in bf16, as a pipeline loaded with
torch_dtype=torch.bfloat16 runs), and "bf16w+cl+compile" (that, channels-last and torch.compile of the
U-Net, the speed-up diffusers' documentation recommends).
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import torch

__all__ = ["available", "version", "UNET_CONFIG", "TINY_UNET_CONFIG", "SCHEDULER_CONFIG", "MODES", "build_unet",
           "scheduler", "prepared", "loop"]

UNET_CONFIG: dict[str, Any] = dict(
    sample_size=32, in_channels=3, out_channels=3, layers_per_block=2, block_out_channels=(128, 256, 256, 256),
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    act_fn="silu", attention_head_dim=None, center_input_sample=False, downsample_padding=0, flip_sin_to_cos=False,
    freq_shift=1, mid_block_scale_factor=1, norm_eps=1e-6, norm_num_groups=32, time_embedding_type="positional",
)
# The same options at the size of our tiny DDPM U-Net (16 px, channels 32 and 64, one block per level, attention at 8x8).
TINY_UNET_CONFIG: dict[str, Any] = dict(
    UNET_CONFIG, sample_size=16, layers_per_block=1, block_out_channels=(32, 64),
    down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
)
SCHEDULER_CONFIG: dict[str, Any] = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                                        clip_sample=True)
MODES = ("fp32", "bf16", "bf16w", "bf16w+cl+compile")


def available() -> bool:
    """Whether diffusers can be imported."""
    try:
        import diffusers  # noqa: F401
    except ImportError:
        return False
    return True


def version() -> str:
    """diffusers' version string."""
    import diffusers

    return diffusers.__version__


def build_unet(*, tiny: bool, device: torch.device, seed: int = 0) -> torch.nn.Module:
    """UNet2DModel in the checkpoint's configuration (or the tiny one), random weights from ``seed``, eval mode."""
    from diffusers import UNet2DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DModel(**(TINY_UNET_CONFIG if tiny else UNET_CONFIG))
    unet = unet.to(device).eval()
    unet.requires_grad_(False)
    return unet


def scheduler(kind: str) -> Any:
    """A fresh DDIMScheduler ("ddim") or DDPMScheduler ("ddpm") with the checkpoint's settings."""
    from diffusers import DDIMScheduler, DDPMScheduler

    if kind == "ddim":
        return DDIMScheduler(**SCHEDULER_CONFIG)
    if kind == "ddpm":
        return DDPMScheduler(**SCHEDULER_CONFIG, variance_type="fixed_small")
    raise ValueError(f"unknown scheduler kind {kind!r}; known: ddim, ddpm")


def prepared(unet: torch.nn.Module, mode: str, backend: str | None = None) -> torch.nn.Module:
    """The U-Net as mode ``mode`` runs it (a converted copy for bf16 weights and channels-last); ``backend``
    replaces inductor when compiling ("eager" on a CPU dry run)."""
    if mode not in MODES:
        raise ValueError(f"unknown diffusers mode {mode!r}; known: {', '.join(MODES)}")
    if mode.startswith("bf16w"):
        from diffusers.utils import logging as dlog

        level = dlog.get_verbosity()
        dlog.set_verbosity_error()  # its advice to load with torch_dtype concerns checkpoints; these weights are random
        try:
            unet = copy.deepcopy(unet).to(torch.bfloat16)
        finally:
            dlog.set_verbosity(level)
    if "+cl" in mode:
        unet = unet.to(memory_format=torch.channels_last)
    if "compile" in mode:
        unet = torch.compile(unet, backend=backend, dynamic=False) if backend else torch.compile(unet, dynamic=False)
    return unet


def loop(unet: torch.nn.Module, kind: str, mode: str, device: torch.device) -> Callable[[torch.Tensor, int, int], torch.Tensor]:
    """``run(x_T, nfe, seed)``: the pipelines' loop, ``eps = unet(x, t).sample; x = scheduler.step(eps, t, x).prev_sample``,
    over ``nfe`` timesteps of the scheduler ``kind``; ``unet`` already prepared for ``mode``."""
    sched = scheduler(kind)
    autocast = mode == "bf16"
    dtype = torch.bfloat16 if mode.startswith("bf16w") else torch.float32

    def run(x_T: torch.Tensor, nfe: int, seed: int) -> torch.Tensor:
        gen = torch.Generator(device=device).manual_seed(seed)
        sched.set_timesteps(nfe)
        x = x_T.to(dtype)
        for t in sched.timesteps:
            if autocast:
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    eps = unet(x, t).sample
                eps = eps.float()
            else:
                eps = unet(x, t).sample
            x = sched.step(eps, t, x, generator=gen).prev_sample if kind == "ddpm" else sched.step(eps, t, x).prev_sample
        return x.float()

    return run
