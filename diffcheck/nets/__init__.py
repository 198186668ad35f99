"""Image networks of the 2019–2022 score-based and diffusion papers, with the configurations of the authors' code.

Each family has one frozen config dataclass whose ``build()`` makes the module; the named configurations
below reproduce the official ones parameter for parameter (the reference counts of MODELS.md):

>>> net = build("ddpm_cifar10")                      # doctest: +SKIP
>>> with torch.device("meta"):                        # count a large one at no cost
...     n = sum(p.numel() for p in build("adm_256").parameters())   # doctest: +SKIP
>>> small = build("adm_64", **tiny_overrides("adm_64"))              # doctest: +SKIP

Every network is called as ``net(x, noise, y=None)``: ``x`` an image batch (B, C, H, W), ``noise`` a (B,)
tensor holding the network's own noise-conditioning input, named by ``config.noise_input`` (see
:data:`NOISE_INPUTS`), and ``y`` class labels (B,) for class-conditional networks only. What the output
means is ``config.prediction`` (see :data:`PREDICTIONS`); ``config.learn_sigma`` says whether extra
channels hold iDDPM's variance interpolation. Tiny configurations for tests: ``tiny_overrides(name)``,
which keeps the named configuration's options and shrinks its sizes. Published checkpoints (diffusers folders,
improved/guided-diffusion, score_sde, NCSN, NCSNv2) load into these networks with ``load(name, path)``
(:mod:`diffcheck.nets.checkpoints`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .adm import ADMClassifier, ADMClassifierConfig, ADMConfig, ADMUNet
from .base import NOISE_INPUTS, PREDICTIONS, NetConfig, replace
from .ddpm import DDPMConfig, DDPMUNet
from .ncsn import NCSN, NCSNConfig
from .ncsnpp import NCSNpp, NCSNppConfig
from .ncsnv2 import NCSNv2, NCSNv2Config
from .video_mcvd import MCVDConfig
from .video_ramvid import RaMViDConfig
from .video_vdm import VDMConfig
from . import video, wrap  # noqa: F401  nets.wrap.wrap_net(net, process): a network as a model of a process
from .checkpoints import load  # nets.load(name, path): a published checkpoint in its reference network

_NAMED: dict[str, NetConfig] = {
    # Ho et al. 2020; ermongroup/ddim configs/cifar10.yml and celeba.yml.
    "ddpm_cifar10": DDPMConfig(),
    "ddpm_celeba64": DDPMConfig(image_size=64, ch_mult=(1, 2, 2, 2, 4)),
    # Nichol & Dhariwal 2021; improved-diffusion README, CIFAR-10 flags with learned Σ.
    "iddpm_cifar10": ADMConfig(image_size=32, model_channels=128, num_res_blocks=3, channel_mult=(1, 2, 2, 2),
                               attention_resolutions=(16, 8), num_heads=4, dropout=0.3, learn_sigma=True),
    # Dhariwal & Nichol 2021; guided-diffusion README flags.
    "adm_64": ADMConfig(image_size=64, model_channels=192, num_res_blocks=3, channel_mult=(1, 2, 3, 4),
                        attention_resolutions=(32, 16, 8), num_head_channels=64, dropout=0.1,
                        resblock_updown=True, use_new_attention_order=True, learn_sigma=True, num_classes=1000),
    "adm_256": ADMConfig(image_size=256, model_channels=256, num_res_blocks=2, channel_mult=(1, 1, 2, 2, 4, 4),
                         attention_resolutions=(32, 16, 8), num_head_channels=64, dropout=0.0,
                         resblock_updown=True, learn_sigma=True, num_classes=1000),
    "adm_classifier_128": ADMClassifierConfig(),
    # Song & Ermon 2019; ermongroup/ncsn configs/anneal.yml (CIFAR-10 and MNIST).
    "ncsn_cifar10": NCSNConfig(),
    "ncsn_mnist": NCSNConfig(image_size=28, channels=1, ngf=64),
    # Song & Ermon 2020; ermongroup/ncsnv2 configs/cifar10.yml and celeba.yml.
    "ncsnv2_cifar10": NCSNv2Config(),
    "ncsnv2_deeper": NCSNv2Config(image_size=64, depth="deeper"),
    # Song et al. 2021; score_sde configs/ve/cifar10_ncsnpp_continuous.py, vp/cifar10_ddpmpp_continuous.py.
    "ncsnpp_cifar10_ve": NCSNppConfig(),
    "ddpmpp_cifar10_vp": NCSNppConfig(fir=False, progressive_input="none", embedding_type="positional",
                                      scale_by_sigma=False, centered=True, prediction="eps", noise_input="time_999"),
    # Video networks (x is a video): see diffcheck.nets.video.
    # Ho et al. 2022: the factorised space-time U-Net at 16 x 64 x 64 (our configuration; no official code).
    "vdm_video64": VDMConfig(),
    # Voleti et al. 2022; mcvd-pytorch configs/smmnist_DDPM_big5.yml with the training script's num_res_blocks=2.
    "mcvd_smmnist": MCVDConfig(),
    # Hoppe et al. 2022; RaMViD README BAIR flags on the improved-diffusion defaults, seq_len 20.
    "ramvid_bair": RaMViDConfig(),
}


def names(kind: str | None = None) -> list[str]:
    """The named configurations, sorted; ``kind`` "image" or "video" keeps one kind."""
    if kind is None:
        return sorted(_NAMED)
    if kind not in ("image", "video"):
        raise ValueError(f"kind must be 'image', 'video' or None, got {kind!r}")
    video_families = (VDMConfig, MCVDConfig, RaMViDConfig)
    return sorted(n for n, c in _NAMED.items() if isinstance(c, video_families) == (kind == "video"))


def config(name: str) -> NetConfig:
    """The frozen configuration of a named network."""
    try:
        return _NAMED[name]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; known: {', '.join(names())}") from None


def tiny_overrides(name: str) -> dict[str, Any]:
    """Overrides that shrink a named configuration for tests while keeping its options."""
    return config(name).tiny_overrides()


def build(name: str, *, seed: int | None = None, **overrides: Any) -> nn.Module:
    """Build a named network with some config fields replaced; ``seed`` (not a field) fixes the initialisation
    without touching the global random state. Works under ``with torch.device("meta"):``."""
    cfg = replace(config(name), **overrides)
    if seed is None:
        return cfg.build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cfg.build()


__all__ = [
    "NOISE_INPUTS",
    "PREDICTIONS",
    "NetConfig",
    "names",
    "config",
    "build",
    "tiny_overrides",
    "DDPMConfig",
    "DDPMUNet",
    "ADMConfig",
    "ADMUNet",
    "ADMClassifierConfig",
    "ADMClassifier",
    "NCSNConfig",
    "NCSN",
    "NCSNv2Config",
    "NCSNv2",
    "NCSNppConfig",
    "NCSNpp",
    "load",
]
