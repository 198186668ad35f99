"""DDPM U-Net (Ho et al. 2020) as ported exactly to PyTorch in ermongroup/ddim `models/diffusion.py`.

Noise input ("timestep_1000"): the official code draws a 0-based step index i ∈ {0, …, 999} and feeds it
unchanged, ``model(x, i)``; the noised input is x = √ᾱ x_0 + √(1−ᾱ) ε with ᾱ = ∏_{j≤i} (1 − β_j) over the
0-based β table, i.e. the paper's step t = i + 1. The index goes through the tensor2tensor sinusoid
([sin, cos], frequencies 10⁴^(−k/(half−1))) and a Linear–Swish–Linear MLP of width 4·ch.

Output ("eps"): the noise ε, three channels. Inputs are images scaled to [−1, 1].

Architecture facts kept here: GroupNorm(32, eps 1e-6) and Swish everywhere; every convolution and linear
layer has a bias and PyTorch's default initialisation (the port does not copy the TF zero-init); attention is
single-head with separate q, k, v 1×1 convolutions (here one fused 1×1 conv, same parameters); the strided
downsampling convolution pads (0, 1) on the right and bottom like TF 'SAME'; and attention follows *every*
residual block at 16×16, on the way up as well — three times per decoder level, not once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .base import ConfigDefaults, check_metadata
from .unet import UNet, UNetLayout


@dataclasses.dataclass(frozen=True)
class DDPMConfig(ConfigDefaults):
    """DDPM U-Net hyperparameters, in the names of ddim's `configs/*.yml` (Ho et al. 2020, Appendix B)."""

    image_size: int = 32
    in_channels: int = 3
    out_channels: int = 3
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.1
    resamp_with_conv: bool = True
    prediction: str = "eps"
    noise_input: str = "timestep_1000"

    def __post_init__(self) -> None:
        check_metadata(self, predictions={"eps"}, noise_inputs={"timestep_1000"})

    def layout(self) -> UNetLayout:
        """The shared U-Net options that make the DDPM architecture."""
        return UNetLayout(
            image_size=self.image_size,
            in_channels=self.in_channels,
            model_channels=self.ch,
            channel_mult=self.ch_mult,
            num_res_blocks=self.num_res_blocks,
            attention_resolutions=self.attn_resolutions,
            dropout=self.dropout,
            num_heads=1,
            conv_resample=self.resamp_with_conv,
            norm_eps=1e-6,
            downsample_padding="asymmetric",
            time_embedding="ddpm",
            zero_init=False,
        )

    def build(self) -> DDPMUNet:
        """Construct the network."""
        return DDPMUNet(self)

    def tiny_overrides(self) -> dict[str, Any]:
        """A two-level, 32-channel version with attention at 8×8 for fast tests."""
        return dict(image_size=16, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,), dropout=0.0)


class DDPMUNet(UNet):
    """The DDPM ε-prediction U-Net; ``forward(x, noise)`` with ``noise`` the 0-based step index."""

    def __init__(self, config: DDPMConfig) -> None:
        super().__init__(config.layout(), out_channels=config.out_channels)
        self.config = config
