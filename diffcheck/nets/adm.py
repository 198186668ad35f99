"""Improved DDPM (Nichol & Dhariwal 2021) and ADM (Dhariwal & Nichol 2021) U-Nets and ADM's noisy classifier.

One architecture with options, as in openai/improved-diffusion and openai/guided-diffusion `unet.py`; the
defaults of a named configuration follow their `script_util.py` and README flags.

Noise input ("timestep_1000"): both codes feed the step index of the *original* schedule, even when
sampling on a respaced grid (`_WrappedModel` maps respaced indices back through `timestep_map`). With
``rescale_timesteps=True`` (improved-diffusion's default) the index is multiplied by 1000/T, so a T = 4000
step CIFAR-10 model sees i/4 ∈ [0, 1000); guided-diffusion's default is no rescaling with T = 1000, so the
net sees the integer i ∈ {0, …, 999}. The value goes through [cos, sin] sinusoids with frequencies
10⁴^(−k/half) and a Linear–SiLU–Linear MLP of width 4·model_channels; class labels add an embedding.

Output ("eps"): ε in the first C channels; with ``learn_sigma`` the next C channels hold v, and the
reverse variance is Σ = exp(f log β_t + (1 − f) log β̃_t) with f = (v + 1)/2 (iDDPM eq. 15 as coded).
The classifier returns logits over its classes for the noised image at that step.

Architecture facts kept here: GroupNorm(32, eps 1e-5) computed in float32; the last convolution of every
residual block, the attention output projection and the output convolution start at zero (so an untrained
U-Net outputs exactly 0); attention heads are either a fixed count (iDDPM, 4) or a fixed width (ADM, 64
channels); the middle block always has attention; the strided downsampling conv pads 1 on every side;
BigGAN residual up/down blocks keep an identity skip; the classifier's attention pooling is CLIP's, with
a learned positional embedding for the (image_size/2^(L−1))² positions plus the mean token.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from .base import ConfigDefaults, check_choice, check_metadata
from .unet import EncoderClassifier, UNet, UNetLayout


def _attention_widths(config: Any) -> list[int]:
    """The widths that attention sees: the levels at the attention resolutions, and the middle block (the last level)."""
    widths = [int(m * config.model_channels) for level, m in enumerate(config.channel_mult)
              if config.image_size // 2**level in config.attention_resolutions]
    return widths + [int(config.channel_mult[-1] * config.model_channels)]


def _check_heads(config: Any) -> None:
    """Every attention width must split evenly into heads (guided-diffusion asserts it in each AttentionBlock only)."""
    name = type(config).__name__
    if config.num_head_channels is not None:
        bad = [c for c in _attention_widths(config) if c % config.num_head_channels]
        if bad:
            raise ValueError(f"{name}: channels {bad} are not multiples of num_head_channels={config.num_head_channels}")


@dataclasses.dataclass(frozen=True)
class ADMConfig(ConfigDefaults):
    """U-Net hyperparameters in the names of improved/guided-diffusion `create_model` (iDDPM, ADM)."""

    image_size: int = 64
    in_channels: int = 3
    model_channels: int = 128
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16, 8)
    dropout: float = 0.0
    channel_mult: tuple[float, ...] = (1, 2, 3, 4)
    conv_resample: bool = True
    num_classes: int | None = None
    num_heads: int = 4
    num_head_channels: int | None = None
    num_heads_upsample: int | None = None
    use_scale_shift_norm: bool = True
    resblock_updown: bool = False
    use_new_attention_order: bool = False
    learn_sigma: bool = False
    prediction: str = "eps"
    noise_input: str = "timestep_1000"

    def __post_init__(self) -> None:
        check_metadata(self, predictions={"eps"}, noise_inputs={"timestep_1000"})
        _check_heads(self)

    @property
    def out_channels(self) -> int:
        """ε, and the variance interpolation v when the variance is learned."""
        return self.in_channels * (2 if self.learn_sigma else 1)

    def layout(self) -> UNetLayout:
        """The shared U-Net options that make this architecture."""
        return UNetLayout(
            image_size=self.image_size,
            in_channels=self.in_channels,
            model_channels=self.model_channels,
            channel_mult=self.channel_mult,
            num_res_blocks=self.num_res_blocks,
            attention_resolutions=self.attention_resolutions,
            dropout=self.dropout,
            num_heads=self.num_heads,
            head_channels=self.num_head_channels,
            num_heads_upsample=self.num_heads_upsample,
            scale_shift=self.use_scale_shift_norm,
            resblock_updown=self.resblock_updown,
            conv_resample=self.conv_resample,
            qkv_layout="qkv_first" if self.use_new_attention_order else "heads_first",
        )

    def build(self) -> ADMUNet:
        """Construct the network."""
        return ADMUNet(self)

    def tiny_overrides(self) -> dict[str, Any]:
        """A three-level, 32-channel version keeping this configuration's options, for fast tests."""
        tiny: dict[str, Any] = dict(image_size=16, model_channels=32, channel_mult=(1, 1, 2), num_res_blocks=1,
                                    attention_resolutions=(8, 4), dropout=0.0)
        if self.num_head_channels is not None:
            tiny["num_head_channels"] = 16
        if self.num_classes is not None:
            tiny["num_classes"] = 5
        return tiny


class ADMUNet(UNet):
    """The iDDPM/ADM U-Net; ``forward(x, noise, y)`` with ``noise`` the (rescaled) step index, ``y`` labels if class-conditional."""

    def __init__(self, config: ADMConfig) -> None:
        super().__init__(config.layout(), out_channels=config.out_channels, num_classes=config.num_classes)
        self.config = config


@dataclasses.dataclass(frozen=True)
class ADMClassifierConfig(ConfigDefaults):
    """Noisy-image classifier hyperparameters in the names of guided-diffusion `create_classifier` (Dhariwal & Nichol 2021)."""

    image_size: int = 128
    in_channels: int = 3
    model_channels: int = 128
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (32, 16, 8)
    channel_mult: tuple[float, ...] = (1, 1, 2, 3, 4)
    num_classes: int = 1000
    num_head_channels: int | None = 64
    use_scale_shift_norm: bool = True
    resblock_updown: bool = True
    use_new_attention_order: bool = False
    pool: Literal["attention", "adaptive"] = "attention"
    dropout: float = 0.0
    prediction: str = "logits"
    noise_input: str = "timestep_1000"

    def __post_init__(self) -> None:
        check_metadata(self, predictions={"logits"}, noise_inputs={"timestep_1000"})
        check_choice(self, "pool", ("attention", "adaptive"))
        _check_heads(self)
        if self.pool == "attention" and self.num_head_channels is None:
            raise ValueError("ADMClassifierConfig: attention pooling needs num_head_channels")

    @property
    def label_classes(self) -> int | None:
        """Number of class labels taken as ``y``; None: the network takes no labels."""
        return None

    def layout(self) -> UNetLayout:
        """The shared encoder options that make this classifier."""
        return UNetLayout(
            image_size=self.image_size,
            in_channels=self.in_channels,
            model_channels=self.model_channels,
            channel_mult=self.channel_mult,
            num_res_blocks=self.num_res_blocks,
            attention_resolutions=self.attention_resolutions,
            dropout=self.dropout,
            head_channels=self.num_head_channels,
            scale_shift=self.use_scale_shift_norm,
            resblock_updown=self.resblock_updown,
            qkv_layout="qkv_first" if self.use_new_attention_order else "heads_first",
        )

    def build(self) -> ADMClassifier:
        """Construct the network."""
        return ADMClassifier(self)

    def tiny_overrides(self) -> dict[str, Any]:
        """A three-level, 32-channel classifier over 5 classes for fast tests."""
        return dict(image_size=16, model_channels=32, channel_mult=(1, 1, 2), num_res_blocks=1,
                    attention_resolutions=(8, 4), num_classes=5, num_head_channels=16)


class ADMClassifier(EncoderClassifier):
    """ADM's time-dependent classifier p(y | x_t); ``forward(x, noise)`` returns logits (B, num_classes)."""

    def __init__(self, config: ADMClassifierConfig) -> None:
        super().__init__(config.layout(), num_classes=config.num_classes, pool=config.pool)
        self.config = config
