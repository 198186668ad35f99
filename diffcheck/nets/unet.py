"""The U-Net of the DDPM lineage and its encoder half, shared by DDPM, Improved DDPM and ADM.

Ho et al. 2020 (ermongroup/ddim `models/diffusion.py`), Nichol & Dhariwal 2021 (openai/improved-diffusion
`unet.py`) and Dhariwal & Nichol 2021 (openai/guided-diffusion `unet.py`) wire the same network: a 3×3 input
convolution; per level, residual blocks (each followed by attention at the chosen resolutions) and a 2×
downsampling except at the last level; a middle of block–attention–block; a mirrored decoder whose levels
have one extra block, every decoder block taking the matching encoder activation by concatenation and being
followed by attention at the chosen resolutions; GroupNorm–SiLU–3×3 output. The families differ only in the
options collected in :class:`UNetLayout`. With ``dims=3`` the same network runs on videos (B, C, F, H, W) with
3×3×3 convolutions, attention over all F·H·W positions and resampling of height and width only (Höppe et al.
2022, Tobi-r9/RaMViD `diffusion_openai/unet.py`).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import Tensor, nn

from .common import (
    Downsample,
    EmbedSequential,
    GroupNorm,
    QKVLayout,
    Resample,
    ResBlock,
    SelfAttention2d,
    TimestepMLP,
    Upsample,
    adm_timestep_embedding,
    check_inputs,
    conv1x1,
    conv3x3,
    ddpm_timestep_embedding,
    multihead_attention,
    zero_,
)

EMBEDDINGS = {"ddpm": ddpm_timestep_embedding, "adm": adm_timestep_embedding}


@dataclasses.dataclass(frozen=True)
class UNetLayout:
    """The architecture options of a DDPM-lineage U-Net, in the names of guided-diffusion's `UNetModel`."""

    image_size: int
    in_channels: int
    model_channels: int
    channel_mult: tuple[float, ...]
    num_res_blocks: int
    attention_resolutions: tuple[int, ...]
    dropout: float
    num_heads: int = 1
    head_channels: int | None = None
    num_heads_upsample: int | None = None
    scale_shift: bool = False
    resblock_updown: bool = False
    conv_resample: bool = True
    qkv_layout: QKVLayout = "heads_first"
    norm_eps: float = 1e-5
    downsample_padding: Literal["symmetric", "asymmetric"] = "symmetric"
    time_embedding: Literal["ddpm", "adm"] = "adm"
    zero_init: bool = True
    dims: int = 2

    def __post_init__(self) -> None:
        if self.dims not in (2, 3):
            raise ValueError(f"UNetLayout.dims must be 2 (images) or 3 (videos), got {self.dims!r}")
        if self.dims == 3 and (self.resblock_updown or self.downsample_padding != "symmetric"):
            raise ValueError("UNetLayout with dims=3 resamples between levels only (resblock_updown=False), "
                             "with symmetric padding")

    @property
    def emb_dim(self) -> int:
        """Width of the timestep embedding MLP, 4× the base channels."""
        return 4 * self.model_channels

    @property
    def size_multiple(self) -> int:
        """Inputs must have sides divisible by the total downsampling factor."""
        return 2 ** (len(self.channel_mult) - 1)

    def level_channels(self, level: int) -> int:
        """Channels of the blocks at one level."""
        return int(self.channel_mult[level] * self.model_channels)

    def has_attention(self, level: int) -> bool:
        """Whether the blocks at a level (resolution image_size / 2^level) are followed by attention."""
        return self.image_size // 2**level in self.attention_resolutions

    def norm(self, channels: int) -> GroupNorm:
        """GroupNorm with 32 groups."""
        return GroupNorm(32, channels, eps=self.norm_eps)

    def res_block(self, in_ch: int, out_ch: int, resample: Literal["up", "down"] | None = None) -> ResBlock:
        """A residual block; its last convolution starts at zero when ``zero_init``."""
        block = ResBlock(in_ch, out_ch, self.emb_dim, dropout=self.dropout, norm=self.norm,
                         scale_shift=self.scale_shift, resample=Resample(resample) if resample else None,
                         dims=self.dims)
        if self.zero_init:
            zero_(block.conv2)
        return block

    def attention(self, channels: int, *, decoder: bool = False) -> SelfAttention2d:
        """Self-attention with a fixed head width if given, else a fixed number of heads."""
        if self.head_channels is not None:
            heads = channels // self.head_channels
        elif decoder and self.num_heads_upsample is not None:
            heads = self.num_heads_upsample
        else:
            heads = self.num_heads
        block = SelfAttention2d(channels, norm=self.norm, num_heads=heads, layout=self.qkv_layout, dims=self.dims)
        if self.zero_init:
            zero_(block.proj)
        return block

    def downsample(self, channels: int) -> nn.Module:
        """2× downsampling between levels: a resampling residual block, a strided conv, or average pooling."""
        if self.resblock_updown:
            return self.res_block(channels, channels, "down")
        return Downsample(channels, with_conv=self.conv_resample, padding=self.downsample_padding, dims=self.dims)

    def upsample(self, channels: int) -> nn.Module:
        """2× upsampling between levels: a resampling residual block or nearest + conv."""
        if self.resblock_updown:
            return self.res_block(channels, channels, "up")
        return Upsample(channels, with_conv=self.conv_resample, dims=self.dims)


class _Conv(nn.Module):
    """A convolution that ignores the embedding, so that it can sit in an EmbedSequential."""

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        return self.conv(x)


class UNetEncoder(nn.Module):
    """Input convolution, encoder levels and middle block; records the channels of every skip activation."""

    def __init__(self, layout: UNetLayout) -> None:
        super().__init__()
        ch = layout.level_channels(0)
        self.blocks = nn.ModuleList([EmbedSequential([_Conv(conv3x3(layout.in_channels, ch, dims=layout.dims))])])
        self.skip_channels = [ch]
        levels = len(layout.channel_mult)
        for level in range(levels):
            for _ in range(layout.num_res_blocks):
                out_ch = layout.level_channels(level)
                layers: list[nn.Module] = [layout.res_block(ch, out_ch)]
                ch = out_ch
                if layout.has_attention(level):
                    layers.append(layout.attention(ch))
                self.blocks.append(EmbedSequential(layers))
                self.skip_channels.append(ch)
            if level != levels - 1:
                self.blocks.append(EmbedSequential([layout.downsample(ch)]))
                self.skip_channels.append(ch)
        self.middle = EmbedSequential([layout.res_block(ch, ch), layout.attention(ch), layout.res_block(ch, ch)])
        self.out_channels = ch

    def forward(self, x: Tensor, emb: Tensor) -> tuple[Tensor, list[Tensor]]:
        skips = []
        h = x
        for block in self.blocks:
            h = block(h, emb)
            skips.append(h)
        return self.middle(h, emb), skips


class UNet(nn.Module):
    """Timestep- (and optionally class-) conditional U-Net (Ho et al. 2020; Nichol & Dhariwal 2021; Dhariwal & Nichol 2021)."""

    def __init__(self, layout: UNetLayout, *, out_channels: int, num_classes: int | None = None) -> None:
        super().__init__()
        self.layout = layout
        self.num_classes = num_classes
        self.embed = EMBEDDINGS[layout.time_embedding]
        self.time_embed = TimestepMLP(layout.model_channels, layout.emb_dim)
        self.label_embed = nn.Embedding(num_classes, layout.emb_dim) if num_classes is not None else None
        self.encoder = UNetEncoder(layout)
        skips = list(self.encoder.skip_channels)
        ch = self.encoder.out_channels
        self.decoder = nn.ModuleList()
        for level in reversed(range(len(layout.channel_mult))):
            for i in range(layout.num_res_blocks + 1):
                out_ch = layout.level_channels(level)
                layers: list[nn.Module] = [layout.res_block(ch + skips.pop(), out_ch)]
                ch = out_ch
                if layout.has_attention(level):
                    layers.append(layout.attention(ch, decoder=True))
                if level and i == layout.num_res_blocks:
                    layers.append(layout.upsample(ch))
                self.decoder.append(EmbedSequential(layers))
        self.out = nn.Sequential(layout.norm(ch), nn.SiLU(), conv3x3(ch, out_channels, dims=layout.dims))
        if layout.zero_init:
            zero_(self.out[-1])

    def forward(self, x: Tensor, noise: Tensor, y: Tensor | None = None) -> Tensor:
        check_inputs(self, x, noise, y, channels=self.layout.in_channels, num_classes=self.num_classes,
                     size_multiple=self.layout.size_multiple, dims=self.layout.dims)
        emb = self.time_embed(self.embed(noise, self.layout.model_channels))
        if self.label_embed is not None:
            emb = emb + self.label_embed(y)
        h, skips = self.encoder(x, emb)
        for block in self.decoder:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)


class AttentionPool2d(nn.Module):
    """Attention pooling: the spatial mean attends to all positions (CLIP, Radford et al. 2021; ADM classifier)."""

    def __init__(self, spatial: int, channels: int, head_channels: int, out_dim: int) -> None:
        super().__init__()
        self.spatial = spatial
        self.num_heads = channels // head_channels
        self.positional = nn.Parameter(torch.randn(channels, spatial**2 + 1) / channels**0.5)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = nn.Conv1d(channels, out_dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.spatial, self.spatial):
            raise ValueError(f"AttentionPool2d was built for {self.spatial}×{self.spatial} features, "
                             f"got {tuple(x.shape[-2:])}; build the classifier for this image size")
        x = x.flatten(2)
        x = torch.cat([x.mean(dim=-1, keepdim=True), x], dim=-1) + self.positional.to(x.dtype)
        return self.proj(multihead_attention(self.qkv(x), self.num_heads, "qkv_first"))[:, :, 0]


class EncoderClassifier(nn.Module):
    """The encoder half of the U-Net with a pooling head, a time-dependent classifier (Dhariwal & Nichol 2021, `EncoderUNetModel`)."""

    def __init__(self, layout: UNetLayout, *, num_classes: int, pool: Literal["attention", "adaptive"]) -> None:
        super().__init__()
        if layout.dims != 2:
            raise ValueError("EncoderClassifier classifies images: its layout must have dims=2")
        self.layout = layout
        self.num_classes = num_classes
        self.pool = pool
        self.embed = EMBEDDINGS[layout.time_embedding]
        self.time_embed = TimestepMLP(layout.model_channels, layout.emb_dim)
        self.encoder = UNetEncoder(layout)
        ch = self.encoder.out_channels
        head: nn.Module
        if pool == "attention":
            if layout.head_channels is None:
                raise ValueError("attention pooling needs a fixed head width (head_channels)")
            head = AttentionPool2d(layout.image_size // layout.size_multiple, ch, layout.head_channels, num_classes)
        else:
            head = nn.Sequential(nn.AdaptiveAvgPool2d(1), zero_(conv1x1(ch, num_classes)), nn.Flatten())
        self.out = nn.Sequential(layout.norm(ch), nn.SiLU(), head)

    def forward(self, x: Tensor, noise: Tensor, y: Tensor | None = None) -> Tensor:
        check_inputs(self, x, noise, y, channels=self.layout.in_channels, num_classes=None,
                     size_multiple=self.layout.size_multiple)
        h, _ = self.encoder(x, self.time_embed(self.embed(noise, self.layout.model_channels)))
        return self.out(h)


__all__ = ["UNetLayout", "UNet", "UNetEncoder", "EncoderClassifier", "AttentionPool2d"]
