"""The factorised space-time U-Net of Video Diffusion Models (Ho et al. 2022, Section 3), which has no official code.

Layout: a video batch (B, C, F, H, W), channels first and frames second; the output has the same layout.

The paper turns the image U-Net into a video U-Net by three changes, which are all this module adds to the
DDPM-lineage U-Net of :mod:`diffcheck.nets.unet`:

1. every 2D convolution becomes a space-only 3D convolution (3×3 → 1×3×3): here frames are folded into the batch
   and the image network's layers run on every frame (a 1×3×3 convolution *is* a 3×3 convolution per frame);
   GroupNorm normalises each frame on its own, so that nothing but temporal attention mixes frames;
2. spatial attention stays attention over the H·W positions of one frame;
3. after each spatial attention block comes a temporal attention block (:class:`TemporalAttention`): attention
   over the F frames at every spatial position, with relative position information — a learned bias per head
   and clipped frame offset j − i added to the attention logits (a scalar relative-position bias in the manner
   of Shaw et al. 2018 and Raffel et al. 2020; the paper names relative position embeddings, not their form) —
   so that the network orders frames without an absolute notion of time.

Joint image–video training (Ho et al. 2022, Section 3): independent images appended as extra frames must not mix with the video,
so temporal attention takes a mask ``temporal_mask`` (F, F) or (B, F, F), True where frame i may attend to frame j;
:func:`joint_training_mask` builds the paper's mask. With the identity mask every frame is processed exactly as
an image by an image U-Net. Every frame count works.

Noise input ("time_999"): 999·t for the continuous time t ∈ [0, 1] of the process, through DDPM's [sin, cos]
sinusoids and a Linear–SiLU–Linear MLP of width 4·model_channels; class labels, if any, add an embedding.
Output ("eps"): ε for every frame.

Configuration choices (ours; there is no official code and so no reference count): the named ``vdm_video64`` is
16 frames of 64×64 RGB, base width 256, multipliers (1, 2, 4, 8), 2 residual blocks per level, spatial and
temporal attention at 32, 16 and 8 with 64-channel heads, dropout 0.1, embedding width 1024 — the sizes the
paper's hyperparameter table reports for its 64×64 video models, as we read it — and, from the ADM lineage,
scale-shift norm, zero-initialised output layers, q/k/v split before heads, relative offsets clipped at ±32
frames with the bias starting at zero (an untrained network treats the frames as a set).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import ConfigDefaults, check_metadata
from .common import GroupNorm, TimestepMLP, check_inputs, conv1x1, conv3x3, zero_
from .unet import EMBEDDINGS, UNetLayout


def joint_training_mask(video_frames: int, image_frames: int = 0, *, device: torch.device | str | None = None) -> Tensor:
    """Temporal-attention mask of joint image–video training (Ho et al. 2022, Section 3): (F, F), F = video + image frames.

    The first ``video_frames`` attend to one another; each of the ``image_frames`` after them attends to itself
    alone. ``joint_training_mask(0, F)`` makes all F frames independent images.
    """
    for name, value in (("video_frames", video_frames), ("image_frames", image_frames)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    frames = video_frames + image_frames
    if frames == 0:
        raise ValueError("joint_training_mask needs at least one frame")
    mask = torch.eye(frames, dtype=torch.bool, device=device)
    mask[:video_frames, :video_frames] = True
    return mask


def check_temporal_mask(mask: Tensor | None, batch: int, frames: int) -> Tensor | None:
    """A boolean mask (F, F) or (B, F, F) as (B or 1, F, F), each frame allowed to attend to itself; else a ValueError."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        raise ValueError(f"temporal_mask must be a bool tensor (True: may attend), got "
                         f"{mask.dtype if isinstance(mask, Tensor) else type(mask).__name__}")
    if mask.dim() == 2:
        mask = mask[None]
    if mask.dim() != 3 or mask.shape[-2:] != (frames, frames) or mask.shape[0] not in (1, batch):
        raise ValueError(f"temporal_mask must have shape ({frames}, {frames}) or ({batch}, {frames}, {frames}), "
                         f"got {tuple(mask.shape)}")
    if not bool(mask.diagonal(dim1=-2, dim2=-1).all()):
        raise ValueError("temporal_mask must let every frame attend to itself (its diagonal must be True)")
    return mask


class TemporalAttention(nn.Module):
    """Residual attention over frames at every spatial position, with a relative-position bias (Ho et al. 2022, Section 3).

    Works on frames folded into the batch, (B·F, C, H, W): GroupNorm per frame → 1×1 q, k, v → multi-head
    softmax attention over the F frames of each position, logits plus bias[head, clip(j − i, ±max_distance)]
    and −∞ where the mask forbids → 1×1 output (zero at initialisation).
    """

    def __init__(self, channels: int, *, num_heads: int, relative_position: bool = True, max_distance: int = 32,
                 norm_groups: int = 32) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"temporal attention: {channels} channels are not divisible into {num_heads} heads")
        self.num_heads = num_heads
        self.max_distance = max_distance
        self.norm = GroupNorm(norm_groups, channels)
        self.qkv = conv1x1(channels, 3 * channels)
        self.proj = zero_(conv1x1(channels, channels))
        self.relative_bias = (nn.Parameter(torch.zeros(num_heads, 2 * max_distance + 1))
                              if relative_position else None)

    def position_bias(self, frames: int) -> Tensor | None:
        """bias[h, i, j] = learned value for head h at offset clip(j − i, −max_distance, max_distance); (heads, F, F)."""
        if self.relative_bias is None:
            return None
        index = torch.arange(frames, device=self.relative_bias.device)
        offset = (index[None, :] - index[:, None]).clamp(-self.max_distance, self.max_distance) + self.max_distance
        return self.relative_bias[:, offset]

    def forward(self, x: Tensor, frames: int, mask: Tensor | None = None) -> Tensor:
        bf, c, h, w = x.shape
        b, heads, head_dim, positions = bf // frames, self.num_heads, c // self.num_heads, h * w
        qkv = self.qkv(self.norm(x)).reshape(b, frames, 3, heads, head_dim, positions)
        # one attention problem per (sample, position): (B·H·W, heads, F, head_dim) each
        q, k, v = qkv.permute(2, 0, 5, 3, 1, 4).reshape(3, b * positions, heads, frames, head_dim).unbind(0)
        bias = self.position_bias(frames)
        logits_bias: Tensor | None = None if bias is None else bias[None].to(q.dtype)  # (1, heads, F, F)
        if mask is not None:
            allowed = mask[:, None] if mask.shape[0] == 1 else \
                mask[:, None, None].expand(b, positions, 1, frames, frames).reshape(b * positions, 1, frames, frames)
            base = torch.zeros((), dtype=q.dtype, device=q.device) if logits_bias is None else logits_bias
            logits_bias = torch.where(allowed, base, torch.tensor(float("-inf"), dtype=q.dtype, device=q.device))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=logits_bias)
        out = out.reshape(b, positions, heads, frames, head_dim).permute(0, 3, 2, 4, 1).reshape(bf, c, h, w)
        return x + self.proj(out)


class _Stage(nn.ModuleList):
    """Layers taking (x, emb), with temporal attention taking (x, frames, mask) instead."""

    def forward(self, x: Tensor, emb: Tensor, frames: int, mask: Tensor | None) -> Tensor:
        for layer in self:
            x = layer(x, frames, mask) if isinstance(layer, TemporalAttention) else layer(x, emb)
        return x


@dataclasses.dataclass(frozen=True)
class VDMConfig(ConfigDefaults):
    """Factorised space-time U-Net hyperparameters (Ho et al. 2022), in the names of the ADM configurations."""

    image_size: int = 64
    num_frames: int = 16
    in_channels: int = 3
    model_channels: int = 256
    channel_mult: tuple[float, ...] = (1, 2, 4, 8)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (32, 16, 8)
    num_head_channels: int = 64
    dropout: float = 0.1
    use_scale_shift_norm: bool = True
    relative_position: bool = True
    max_relative_distance: int = 32
    num_classes: int | None = None
    prediction: str = "eps"
    noise_input: str = "time_999"

    def __post_init__(self) -> None:
        check_metadata(self, predictions={"eps"}, noise_inputs={"time_999"})
        for field in ("num_frames", "model_channels", "num_head_channels", "max_relative_distance"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"VDMConfig.{field} must be a positive int, got {value!r}")
        widths = [int(m * self.model_channels) for m in self.channel_mult]
        bad = [c for c in widths if c % self.num_head_channels or c % 32]
        if bad:
            raise ValueError(f"VDMConfig: widths {bad} must be multiples of num_head_channels="
                             f"{self.num_head_channels} and of the 32 norm groups")

    @property
    def data_shape(self) -> tuple[int, int, int, int]:
        """Shape (C, F, H, W) of one video at the configured size (any frame count works)."""
        return (self.in_channels, self.num_frames, self.image_size, self.image_size)

    @property
    def cond_inputs(self) -> dict[str, str]:
        """Keyword inputs beyond (x, noise, y): what each holds."""
        return {"temporal_mask": "bool (F, F) or (B, F, F), True where frame i may attend to frame j, diagonal True; "
                                 "None: all frames attend to all (joint_training_mask builds the paper's mask)"}

    def layout(self) -> UNetLayout:
        """The image U-Net whose layers run on every frame."""
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
            qkv_layout="qkv_first",
            time_embedding="ddpm",
        )

    def build(self) -> VDMUNet:
        """Construct the network."""
        return VDMUNet(self)

    def tiny_overrides(self) -> dict[str, Any]:
        """A three-level, 32-channel version over 4 frames of 16×16, keeping this configuration's options."""
        tiny: dict[str, Any] = dict(image_size=16, num_frames=4, model_channels=32, channel_mult=(1, 1, 2),
                                    num_res_blocks=1, attention_resolutions=(8, 4), num_head_channels=16,
                                    dropout=0.0)
        if self.num_classes is not None:
            tiny["num_classes"] = 5
        return tiny


class VDMUNet(nn.Module):
    """Factorised space-time U-Net; ``forward(x, noise, y=None, temporal_mask=None)`` on videos (B, C, F, H, W)."""

    def __init__(self, config: VDMConfig) -> None:
        super().__init__()
        self.config = config
        layout = config.layout()
        self.layout = layout
        self.embed = EMBEDDINGS[layout.time_embedding]
        self.time_embed = TimestepMLP(layout.model_channels, layout.emb_dim)
        self.label_embed = nn.Embedding(config.num_classes, layout.emb_dim) if config.num_classes is not None else None

        def attention(channels: int) -> list[nn.Module]:
            temporal = TemporalAttention(channels, num_heads=channels // config.num_head_channels,
                                         relative_position=config.relative_position,
                                         max_distance=config.max_relative_distance)
            return [layout.attention(channels), temporal]

        ch = layout.level_channels(0)
        self.encoder = nn.ModuleList([_Stage([_Conv(conv3x3(layout.in_channels, ch))])])
        skips = [ch]
        levels = len(layout.channel_mult)
        for level in range(levels):
            for _ in range(layout.num_res_blocks):
                out_ch = layout.level_channels(level)
                layers: list[nn.Module] = [layout.res_block(ch, out_ch)]
                ch = out_ch
                if layout.has_attention(level):
                    layers += attention(ch)
                self.encoder.append(_Stage(layers))
                skips.append(ch)
            if level != levels - 1:
                self.encoder.append(_Stage([layout.downsample(ch)]))
                skips.append(ch)
        self.middle = _Stage([layout.res_block(ch, ch), *attention(ch), layout.res_block(ch, ch)])
        self.decoder = nn.ModuleList()
        for level in reversed(range(levels)):
            for i in range(layout.num_res_blocks + 1):
                out_ch = layout.level_channels(level)
                layers = [layout.res_block(ch + skips.pop(), out_ch)]
                ch = out_ch
                if layout.has_attention(level):
                    layers += attention(ch)
                if level and i == layout.num_res_blocks:
                    layers.append(layout.upsample(ch))
                self.decoder.append(_Stage(layers))
        self.out = nn.Sequential(layout.norm(ch), nn.SiLU(), zero_(conv3x3(ch, config.in_channels)))

    def forward(self, x: Tensor, noise: Tensor, y: Tensor | None = None, *, temporal_mask: Tensor | None = None) -> Tensor:
        layout = self.layout
        check_inputs(self, x, noise, y, channels=layout.in_channels, num_classes=self.config.num_classes,
                     size_multiple=layout.size_multiple, dims=3)
        b, c, frames, height, width = x.shape
        mask = check_temporal_mask(temporal_mask, b, frames)
        if mask is not None:
            mask = mask.to(x.device)
        emb = self.time_embed(self.embed(noise, layout.model_channels))
        if self.label_embed is not None:
            emb = emb + self.label_embed(y)
        emb = emb.repeat_interleave(frames, dim=0)

        # Frames folded into the batch: (B·F, C, H, W), frame-major within each sample.
        h = x.transpose(1, 2).reshape(b * frames, c, height, width)
        skips = []
        for stage in self.encoder:
            h = stage(h, emb, frames, mask)
            skips.append(h)
        h = self.middle(h, emb, frames, mask)
        for stage in self.decoder:
            h = stage(torch.cat([h, skips.pop()], dim=1), emb, frames, mask)
        out = self.out(h)
        return out.reshape(b, frames, -1, height, width).transpose(1, 2)


class _Conv(nn.Module):
    """A convolution that ignores the embedding, so that it can sit in a stage."""

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        return self.conv(x)


__all__ = ["VDMConfig", "VDMUNet", "TemporalAttention", "joint_training_mask", "check_temporal_mask"]
