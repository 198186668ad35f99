"""Video networks of Video Diffusion Models, MCVD and RaMViD, with the configurations of the papers and authors' code.

Three families, one module each, all called as ``net(x, noise, y=None, **cond)`` like the image networks:

- ``vdm_video64`` (:mod:`.video_vdm`, Ho et al. 2022): the factorised space-time U-Net; ``x`` is (B, C, F, H, W);
  keyword ``temporal_mask`` masks temporal attention for joint image–video training. No official code exists:
  the configuration is ours (see that module) and builds 1,165,601,851 parameters.
- ``mcvd_smmnist`` (:mod:`.video_mcvd`, Voleti et al. 2022): MCVD's concat-conditioned network for Stochastic
  Moving MNIST, 5 past → 5 frames; ``x`` is MCVD's own (B, F·C, H, W), frames stacked frame-major on channels
  (:func:`frames_to_channels` converts); keywords ``cond`` (the past frames, zeros where masked) and ``cond_mask``.
  27,941,765 parameters, as the official build.
- ``ramvid_bair`` (:mod:`.video_ramvid`, Höppe et al. 2022): improved-diffusion's U-Net with 3D convolutions,
  BAIR flags; ``x`` is (B, C, F, H, W); conditioning frames are clean frames inside ``x``, not an input.
  235,071,875 parameters, as the official build.

Each configuration records, besides ``prediction``, ``noise_input``, ``learn_sigma``, ``label_classes``,
``data_shape`` and ``data_range``, the keyword inputs it takes in ``cond_inputs``. The names live in the one
registry of :mod:`diffcheck.nets` (``nets.names("video")``, ``nets.build(name, **overrides)``):

>>> from diffcheck import nets                                          # doctest: +SKIP
>>> net = nets.build("vdm_video64", seed=0, **nets.tiny_overrides("vdm_video64"))   # doctest: +SKIP
"""

from __future__ import annotations

from .video_mcvd import MCVDConfig, MCVDNet, channels_to_frames, frames_to_channels
from .video_ramvid import RaMViDConfig, RaMViDUNet
from .video_vdm import TemporalAttention, VDMConfig, VDMUNet, joint_training_mask

VideoConfig = VDMConfig | MCVDConfig | RaMViDConfig

__all__ = [
    "VideoConfig",
    "VDMConfig",
    "VDMUNet",
    "TemporalAttention",
    "joint_training_mask",
    "MCVDConfig",
    "MCVDNet",
    "frames_to_channels",
    "channels_to_frames",
    "RaMViDConfig",
    "RaMViDUNet",
]
