"""NCSN++ and DDPM++ of Song et al. 2021 (yang-song/score_sde_pytorch `models/ncsnpp.py`, `layerspp.py`).

One architecture with options; the two CIFAR-10 continuous configurations differ in FIR resampling,
the progressive input pyramid, the noise embedding, σ-scaling and the input range.

Noise input, NCSN++ ("sigma"): the VE SDE's σ(t) = σ_min (σ_max/σ_min)^t itself; the network embeds log σ
with fixed Gaussian Fourier features (W ~ N(0, 16²), [sin 2πW log σ, cos 2πW log σ]) and, with
``scale_by_sigma``, divides its output by σ.
Noise input, DDPM++ ("time_999"): for the continuous VP SDE the official score function feeds
``labels = t * 999`` for t ∈ [ε, 1] into DDPM's sinusoidal embedding ([sin, cos], 10⁴^(−k/(half−1))).

Output: NCSN++ (VE) predicts the score ("score"); DDPM++ (VP) predicts ε ("eps"): score_sde turns its
output into a score as −output/σ_t.

Data range: with ``centered=False`` (the VE configuration) the data lie in [0, 1] and the network maps them to
2x − 1 itself; the VP configuration sets ``centered=True`` (data in [−1, 1]).

Architecture facts kept here: BigGAN residual blocks throughout, whose skip is a 1×1 conv whenever the block
resamples even at equal width; sums with skips are divided by √2 (``skip_rescale``); GroupNorm with
min(C/4, 32) groups, eps 1e-6; attention is single-head, after every block at 16×16 on the way down but
*once* per level on the way up; the input pyramid of NCSN++ is the image, FIR-downsampled by a fused
FIR–conv at each level and averaged with the features ((p + h)/√2); the Fourier weights are a parameter that
is never trained (``requires_grad=False``) yet counted; DDPM's variance-scaling initialisation, with the last
conv of every block, the attention output and the output conv at scale 1e-10 rather than 0.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import ConfigDefaults, check_choice, check_metadata
from .common import (
    Downsample,
    GaussianFourierEmbedding,
    GroupNorm,
    Resample,
    ResBlock,
    SelfAttention2d,
    SQRT2,
    TimestepMLP,
    check_inputs,
    conv1x1,
    conv3x3,
    ddpm_timestep_embedding,
    variance_scaling_,
)


def score_sde_norm(channels: int) -> GroupNorm:
    """GroupNorm with min(C/4, 32) groups and eps 1e-6 (score_sde `layerspp`)."""
    return GroupNorm(min(channels // 4, 32), channels, eps=1e-6)


@dataclasses.dataclass(frozen=True)
class NCSNppConfig(ConfigDefaults):
    """NCSN++/DDPM++ hyperparameters in the names of score_sde's `configs/ve|vp/cifar10_*_continuous.py`."""

    image_size: int = 32
    channels: int = 3
    nf: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 4
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.1
    fir: bool = True
    fir_kernel: tuple[float, ...] = (1, 3, 3, 1)
    skip_rescale: bool = True
    progressive: Literal["none", "output_skip"] = "none"
    progressive_input: Literal["none", "input_skip", "residual"] = "residual"
    progressive_combine: Literal["sum", "cat"] = "sum"
    embedding_type: Literal["fourier", "positional"] = "fourier"
    fourier_scale: float = 16.0
    scale_by_sigma: bool = True
    centered: bool = False
    init_scale: float = 0.0
    prediction: str = "score"
    noise_input: str = "sigma"

    def __post_init__(self) -> None:
        check_choice(self, "progressive", ("none", "output_skip"))
        check_choice(self, "progressive_input", ("none", "input_skip", "residual"))
        check_choice(self, "progressive_combine", ("sum", "cat"))
        check_choice(self, "embedding_type", ("fourier", "positional"))
        if self.embedding_type == "fourier":
            check_metadata(self, predictions={"score", "eps"}, noise_inputs={"sigma"})
        else:
            check_metadata(self, predictions={"score", "eps"}, noise_inputs={"time_999", "timestep_1000"})
            if self.scale_by_sigma:
                raise ValueError("NCSNppConfig: scale_by_sigma needs σ as the noise input (embedding_type='fourier')")

    def build(self) -> NCSNpp:
        """Construct the network."""
        return NCSNpp(self)

    def tiny_overrides(self) -> dict[str, Any]:
        """A three-level, 16-channel version keeping this configuration's options, for fast tests."""
        return dict(image_size=16, nf=16, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,), dropout=0.0)


class _Level(nn.Module):
    """The layers of one resolution level; the optional ones are None where the configuration has none."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        self.attentions = nn.ModuleList()
        self.downsample: nn.Module | None = None
        self.combine: nn.Module | None = None
        self.pyramid_down: nn.Module | None = None
        self.pyramid_norm: nn.Module | None = None
        self.pyramid_conv: nn.Module | None = None
        self.upsample: nn.Module | None = None


class NCSNpp(nn.Module):
    """NCSN++/DDPM++ U-Net; ``forward(x, noise)`` with ``noise`` = σ (Fourier embedding) or 999·t (positional)."""

    def __init__(self, config: NCSNppConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        levels = len(c.ch_mult)
        kernel = c.fir_kernel if c.fir else None
        emb_dim = 4 * c.nf
        self.size_multiple = 2 ** (levels - 1)

        def block(in_ch: int, out_ch: int | None = None, resample: Literal["up", "down"] | None = None) -> ResBlock:
            return ResBlock(in_ch, in_ch if out_ch is None else out_ch, emb_dim, dropout=c.dropout,
                            norm=score_sde_norm, resample=Resample(resample, kernel) if resample else None,
                            skip_conv_on_resample=True, skip_rescale=c.skip_rescale)

        def attention(channels: int) -> SelfAttention2d:
            return SelfAttention2d(channels, norm=score_sde_norm, skip_rescale=c.skip_rescale)

        def has_attention(level: int) -> bool:
            return c.image_size // 2**level in c.attn_resolutions

        self.fourier = GaussianFourierEmbedding(c.nf, c.fourier_scale) if c.embedding_type == "fourier" else None
        self.time_mlp = TimestepMLP(2 * c.nf if self.fourier is not None else c.nf, emb_dim)
        self.conv_in = conv3x3(c.channels, c.nf)

        skips = [c.nf]
        in_ch = c.nf
        pyramid_ch = c.channels
        self.down = nn.ModuleList()
        for level in range(levels):
            stage = _Level()
            for _ in range(c.num_res_blocks):
                out_ch = c.nf * c.ch_mult[level]
                stage.blocks.append(block(in_ch, out_ch))
                in_ch = out_ch
                stage.attentions.append(attention(in_ch) if has_attention(level) else nn.Identity())
                skips.append(in_ch)
            if level != levels - 1:
                stage.downsample = block(in_ch, resample="down")
                if c.progressive_input == "input_skip":
                    stage.combine = conv1x1(pyramid_ch, in_ch)
                    if c.progressive_combine == "cat":
                        in_ch *= 2
                elif c.progressive_input == "residual":
                    stage.pyramid_down = Downsample(pyramid_ch, in_ch, with_conv=True, padding="asymmetric",
                                                    fir_kernel=kernel)
                    pyramid_ch = in_ch
                skips.append(in_ch)
            self.down.append(stage)
        self.pyramid_resample_down = Resample("down", kernel)

        self.middle = nn.ModuleList([block(in_ch), attention(in_ch), block(in_ch)])

        self.up = nn.ModuleList()
        for level in reversed(range(levels)):
            stage = _Level()
            for _ in range(c.num_res_blocks + 1):
                out_ch = c.nf * c.ch_mult[level]
                stage.blocks.append(block(in_ch + skips.pop(), out_ch))
                in_ch = out_ch
            stage.attentions.append(attention(in_ch) if has_attention(level) else nn.Identity())
            if c.progressive == "output_skip":
                stage.pyramid_norm = score_sde_norm(in_ch)
                stage.pyramid_conv = conv3x3(in_ch, c.channels)
            if level != 0:
                stage.upsample = block(in_ch, resample="up")
            self.up.append(stage)
        self.pyramid_resample_up = Resample("up", kernel)

        output_skip = c.progressive == "output_skip"
        self.norm_out = None if output_skip else score_sde_norm(in_ch)
        self.conv_out = None if output_skip else conv3x3(in_ch, c.channels)
        self._initialise()

    @torch.no_grad()
    def _initialise(self) -> None:
        """DDPM's variance scaling with zero biases; block outputs at ``init_scale``; attention q, k, v at 0.1 (score_sde)."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                variance_scaling_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, ResBlock):
                variance_scaling_(module.conv2.weight, self.config.init_scale)
            elif isinstance(module, SelfAttention2d):
                for projection in module.qkv.weight.chunk(3):
                    variance_scaling_(projection, 0.1)
                variance_scaling_(module.proj.weight, self.config.init_scale)
        for stage in self.up:
            if stage.pyramid_conv is not None:
                variance_scaling_(stage.pyramid_conv.weight, self.config.init_scale)
        if self.conv_out is not None:
            variance_scaling_(self.conv_out.weight, self.config.init_scale)

    def forward(self, x: Tensor, noise: Tensor, y: Tensor | None = None) -> Tensor:
        c = self.config
        check_inputs(self, x, noise, y, channels=c.channels, num_classes=None, size_multiple=self.size_multiple)
        if self.fourier is not None:
            temb = self.fourier(torch.log(noise))
        else:
            temb = ddpm_timestep_embedding(noise, c.nf)
        temb = self.time_mlp(temb)
        if not c.centered:
            x = 2 * x - 1

        # Encoder, with the input pyramid fed in at every downsampling.
        pyramid = x
        skips = [self.conv_in(x)]
        for stage in self.down:
            for block, attention in zip(stage.blocks, stage.attentions):
                skips.append(attention(block(skips[-1], temb)))
            if stage.downsample is not None:
                h = stage.downsample(skips[-1], temb)
                if stage.combine is not None:
                    pyramid = self.pyramid_resample_down(pyramid)
                    p = stage.combine(pyramid)
                    h = torch.cat([p, h], dim=1) if c.progressive_combine == "cat" else p + h
                elif stage.pyramid_down is not None:
                    pyramid = stage.pyramid_down(pyramid)
                    pyramid = (pyramid + h) / SQRT2 if c.skip_rescale else pyramid + h
                    h = pyramid
                skips.append(h)

        h = self.middle[0](skips[-1], temb)
        h = self.middle[1](h)
        h = self.middle[2](h, temb)

        # Decoder, optionally summing an output pyramid of images.
        out_pyramid: Tensor | None = None
        for stage in self.up:
            for block in stage.blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), temb)
            h = stage.attentions[0](h)
            if stage.pyramid_conv is not None and stage.pyramid_norm is not None:
                p = stage.pyramid_conv(F.silu(stage.pyramid_norm(h)))
                out_pyramid = p if out_pyramid is None else self.pyramid_resample_up(out_pyramid) + p
            if stage.upsample is not None:
                h = stage.upsample(h, temb)

        if self.conv_out is not None and self.norm_out is not None:
            h = self.conv_out(F.silu(self.norm_out(h)))
        else:
            assert out_pyramid is not None
            h = out_pyramid
        if c.scale_by_sigma:
            h = h / noise.to(h.dtype)[:, None, None, None]
        return h
