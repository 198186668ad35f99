"""RaMViD's 3D U-Net (Höppe et al. 2022, Tobi-r9/RaMViD `diffusion_openai/unet.py`): improved-diffusion's U-Net on videos.

Layout: a video batch (B, C, F, H, W), channels first and frames second, as the official code (and torch's
Conv3d) takes it; the output has the same layout, with 2C channels when ``learn_sigma``.

The network is :class:`~diffcheck.nets.unet.UNet` with ``dims=3``: every convolution is 3×3×3 (1×1×1 skips),
GroupNorm(32) normalises over channels × frames × height × width, attention attends over all F·H·W positions of
a sample at the chosen resolutions (4 heads, improved-diffusion's legacy q/k/v order), and resampling between
levels halves or doubles height and width only (stride-(1, 2, 2) 3×3×3 convolution down, nearest (1, 2, 2)
upsampling followed by a 3×3×3 convolution up): this is the code's ``scale_time_dim 0`` that every published
configuration uses (its time-reducing variant is not offered here). Every frame count works; the frames are
never resampled.

Noise input ("timestep_1000"): the step index of the 1000-step linear DDPM schedule, rescaled by 1000/T as in
improved-diffusion (``rescale_timesteps`` on), embedded by [cos, sin] sinusoids and a Linear–SiLU–Linear MLP.

Output ("eps"): ε for every frame. Conditioning is not an input of the network: RaMViD trains by keeping a random
subset of frames clean (no noise) in x_t and excluding them from the loss, and samples by resetting those frames
to their clean values at every step; the network only ever sees a video.

Architecture facts kept here: the last convolution of every residual block, the attention output projection and
the output convolution start at zero; AdaGN (scale–shift norm) in the blocks; channel multipliers (1, 2, 3, 4)
at 64×64 as in `script_util.create_model`; attention at 16 and 8 (downsampling rates 4 and 8).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .base import ConfigDefaults, check_metadata
from .unet import UNet, UNetLayout


@dataclasses.dataclass(frozen=True)
class RaMViDConfig(ConfigDefaults):
    """3D U-Net hyperparameters in the names of RaMViD's `script_util.create_model` (Höppe et al. 2022)."""

    image_size: int = 64
    num_frames: int = 20
    in_channels: int = 3
    model_channels: int = 128
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16, 8)
    dropout: float = 0.0
    channel_mult: tuple[float, ...] = (1, 2, 3, 4)
    conv_resample: bool = True
    num_classes: int | None = None
    num_heads: int = 4
    num_heads_upsample: int | None = None
    use_scale_shift_norm: bool = True
    learn_sigma: bool = False
    prediction: str = "eps"
    noise_input: str = "timestep_1000"

    def __post_init__(self) -> None:
        check_metadata(self, predictions={"eps"}, noise_inputs={"timestep_1000"})
        if isinstance(self.num_frames, bool) or not isinstance(self.num_frames, int) or self.num_frames < 1:
            raise ValueError(f"RaMViDConfig.num_frames must be a positive int, got {self.num_frames!r}")
        bad = [m for m in self.channel_mult if int(m * self.model_channels) % self.num_heads]
        if bad:
            raise ValueError(f"RaMViDConfig: channels {[int(m * self.model_channels) for m in bad]} are not "
                             f"divisible into num_heads={self.num_heads} heads")

    @property
    def out_channels(self) -> int:
        """ε, and the variance interpolation v when the variance is learned."""
        return self.in_channels * (2 if self.learn_sigma else 1)

    @property
    def data_shape(self) -> tuple[int, int, int, int]:
        """Shape (C, F, H, W) of one video at the configured size (any frame count works)."""
        return (self.in_channels, self.num_frames, self.image_size, self.image_size)

    @property
    def cond_inputs(self) -> dict[str, str]:
        """Keyword inputs beyond (x, noise, y): none; conditioning frames are clean frames inside x."""
        return {}

    def layout(self) -> UNetLayout:
        """The shared U-Net options, in three dimensions."""
        return UNetLayout(
            image_size=self.image_size,
            in_channels=self.in_channels,
            model_channels=self.model_channels,
            channel_mult=self.channel_mult,
            num_res_blocks=self.num_res_blocks,
            attention_resolutions=self.attention_resolutions,
            dropout=self.dropout,
            num_heads=self.num_heads,
            num_heads_upsample=self.num_heads_upsample,
            scale_shift=self.use_scale_shift_norm,
            conv_resample=self.conv_resample,
            qkv_layout="heads_first",
            dims=3,
        )

    def build(self) -> RaMViDUNet:
        """Construct the network."""
        return RaMViDUNet(self)

    def tiny_overrides(self) -> dict[str, Any]:
        """A three-level, 32-channel version over 4 frames of 16×16, keeping this configuration's options."""
        tiny: dict[str, Any] = dict(image_size=16, num_frames=4, model_channels=32, channel_mult=(1, 1, 2),
                                    num_res_blocks=1, attention_resolutions=(8, 4), dropout=0.0)
        if self.num_classes is not None:
            tiny["num_classes"] = 5
        return tiny


class RaMViDUNet(UNet):
    """RaMViD's 3D U-Net; ``forward(x, noise, y=None)`` with ``x`` a video batch (B, C, F, H, W) and ``noise`` the step index."""

    def __init__(self, config: RaMViDConfig) -> None:
        super().__init__(config.layout(), out_channels=config.out_channels, num_classes=config.num_classes)
        self.config = config


__all__ = ["RaMViDConfig", "RaMViDUNet"]
