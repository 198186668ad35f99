"""MCVD's conditional score network (Voleti et al. 2022, voletiv/mcvd-pytorch `models/better/ncsnpp_more.py`, "unetmore").

Layout, MCVD's own: frames are stacked on the channel axis, frame-major. The network denoises ``x`` of shape
(B, F·C, H, W), channel f·C + c holding channel c of frame f, given ``cond`` (B, (F_past + F_future)·C, H, W): the
past frames, then any future frames, in the same frame-major order. :func:`frames_to_channels` and
:func:`channels_to_frames` convert from and to the (B, C, F, H, W) layout of the other video networks. The two
are concatenated on channels before the first convolution (MCVD's "concat" conditioning).

Masking: MCVD trains one network for prediction, interpolation and generation by zeroing the conditioning
frames of a sample with probability p_mask. ``cond_mask`` (B,) holds 1 where a sample's conditioning is kept and
0 where it is masked; masked samples have their conditioning frames zeroed here (as the official
``conditioning_fn`` does before the call; zeroing twice changes nothing), and with ``cond_emb`` the mask state is
also embedded (a 2-entry embedding of width ngf/2 appended to the time embedding). Passing zeroed ``cond``
without a mask is the official masked input as well.

Noise input ("timestep_1000"): the 0-based DDPM step index i of the linear 1000-step schedule (β from 10⁻⁴
to 0.02), i = 0 the least noisy. MCVD's code stores ᾱ reversed, label k = 0 the noisiest, and feeds k to the
network; this network computes k = 999 − i itself, so a checkpoint of the official code computes the same
function of (x, i). k goes through DDPM's [sin, cos] sinusoids (width ngf) and a Linear–SiLU–Linear MLP (4·ngf).

Output ("eps"): ε for the F frames being denoised, in the input's layout (MCVD's loss is ½‖ε − ε_θ‖²).

Architecture facts kept here (score_sde's NCSN++ family as MCVD modifies it): BigGAN residual blocks with FIR
[1, 3, 3, 1] resampling whose *both* norms are adaptive — GroupNorm without affine parameters (eps 1e-5) scaled
and shifted by a linear map of the time embedding, norm(h)·(1 + s) + b, as in ADM — and a 1×1 skip whenever the
width changes or the block resamples; sums divided by √2; attention with 64-channel heads (one head below 64
channels), separate q, k, v and output maps, GroupNorm eps 1e-6, after every block at its resolutions on the way
down and once per level on the way up; GroupNorm groups min(C/4, 32), lowered until they divide C; output
GroupNorm (affine, eps 1e-5)–SiLU–3×3 conv; DDPM's variance-scaling initialisation with the last conv of every
block, the attention output and the output conv at scale 1e-10 and q, k, v at 0.1. Attention placement is fixed
at construction from ``image_size``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import ConfigDefaults, check_metadata
from .common import (
    SQRT2,
    GroupNorm,
    Resample,
    SelfAttention2d,
    TimestepMLP,
    check_inputs,
    conv1x1,
    conv3x3,
    ddpm_timestep_embedding,
    variance_scaling_,
)

STEPS = 1000
"""Length of MCVD's DDPM schedule (its ``model.num_classes``)."""


def frames_to_channels(video: Tensor) -> Tensor:
    """(B, C, F, H, W) → (B, F·C, H, W), frame-major as MCVD stacks frames (`conditioning_fn`)."""
    if video.dim() != 5:
        raise ValueError(f"video must have shape (B, C, F, H, W), got {tuple(video.shape)}")
    b, c, f, h, w = video.shape
    return video.transpose(1, 2).reshape(b, f * c, h, w)


def channels_to_frames(x: Tensor, channels: int) -> Tensor:
    """(B, F·C, H, W) → (B, C, F, H, W), undoing :func:`frames_to_channels` for ``channels`` = C."""
    if x.dim() != 4 or channels < 1 or x.shape[1] % channels:
        raise ValueError(f"x must have shape (B, F·C, H, W) with F·C a multiple of channels={channels}, "
                         f"got {tuple(x.shape)}")
    b, fc, h, w = x.shape
    return x.reshape(b, fc // channels, channels, h, w).transpose(1, 2)


def mcvd_groups(channels: int) -> int:
    """min(C/4, 32) groups, lowered until they divide C (MCVD `get_norm`, `AttnBlockpp`)."""
    groups = max(min(channels // 4, 32), 1)
    while channels % groups:
        groups -= 1
    return groups


@dataclasses.dataclass(frozen=True)
class MCVDConfig(ConfigDefaults):
    """MCVD hyperparameters in the names of its `configs/smmnist_DDPM_big5.yml` (Voleti et al. 2022)."""

    image_size: int = 64
    channels: int = 1
    num_frames: int = 5
    num_frames_cond: int = 5
    num_frames_future: int = 0
    ngf: int = 64
    ch_mult: tuple[int, ...] = (1, 2, 3, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (8, 16, 32)
    n_head_channels: int = 64
    dropout: float = 0.1
    cond_emb: bool = False
    fir_kernel: tuple[float, ...] = (1, 3, 3, 1)
    prediction: str = "eps"
    noise_input: str = "timestep_1000"

    def __post_init__(self) -> None:
        check_metadata(self, predictions={"eps"}, noise_inputs={"timestep_1000"})
        for field in ("channels", "num_frames", "ngf", "num_res_blocks", "n_head_channels"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MCVDConfig.{field} must be a positive int, got {value!r}")
        for field in ("num_frames_cond", "num_frames_future"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"MCVDConfig.{field} must be a non-negative int, got {value!r}")
        if self.cond_emb and self.cond_frames == 0:
            raise ValueError("MCVDConfig: cond_emb embeds the mask of conditioning frames, but there are none")
        widths = [self.ngf * m for m in self.ch_mult]
        bad = [c for c in widths if c >= self.n_head_channels and c % self.n_head_channels]
        if bad:
            raise ValueError(f"MCVDConfig: widths {bad} are not multiples of n_head_channels={self.n_head_channels}")

    @property
    def cond_frames(self) -> int:
        """Conditioning frames: past, then future."""
        return self.num_frames_cond + self.num_frames_future

    @property
    def data_shape(self) -> tuple[int, int, int]:
        """Shape (F·C, H, W) of the frames being denoised, stacked frame-major on channels."""
        return (self.num_frames * self.channels, self.image_size, self.image_size)

    @property
    def cond_shape(self) -> tuple[int, int, int]:
        """Shape ((F_past + F_future)·C, H, W) of the conditioning frames ``cond``."""
        return (self.cond_frames * self.channels, self.image_size, self.image_size)

    @property
    def cond_inputs(self) -> dict[str, str]:
        """Keyword inputs beyond (x, noise): what each holds."""
        if self.cond_frames == 0:
            return {}
        return {
            "cond": f"(B, {self.cond_frames}·C, H, W): {self.num_frames_cond} past then {self.num_frames_future} "
                    "future clean frames, frame-major on channels; zeros where masked (required)",
            "cond_mask": "(B,) 1 where a sample's conditioning is kept, 0 where masked (zeroed here; embedded "
                         "with cond_emb); optional, all kept by default",
        }

    def build(self) -> MCVDNet:
        """Construct the network."""
        return MCVDNet(self)

    def tiny_overrides(self) -> dict[str, Any]:
        """A three-level, 16-channel version over 2 + 2 frames of 16×16, keeping this configuration's options."""
        return dict(image_size=16, num_frames=2, num_frames_cond=2, ngf=16, ch_mult=(1, 2, 2), num_res_blocks=1,
                    attn_resolutions=(8,), n_head_channels=16, dropout=0.0)


class AdaGroupNorm(nn.Module):
    """GroupNorm without affine parameters, scaled and shifted by the embedding: norm(h)·(1 + s) + b (MCVD `get_act_norm`)."""

    def __init__(self, channels: int, emb_dim: int) -> None:
        super().__init__()
        self.norm = GroupNorm(mcvd_groups(channels), channels, eps=1e-5, affine=False)
        self.emb_proj = nn.Linear(emb_dim, 2 * channels)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        scale, shift = self.emb_proj(emb)[:, :, None, None].chunk(2, dim=1)
        return self.norm(x) * (1 + scale) + shift


class MCVDResBlock(nn.Module):
    """BigGAN residual block with adaptive GroupNorm before both convolutions (MCVD `ResnetBlockBigGANppGN`)."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, *, dropout: float,
                 resample: Literal["up", "down"] | None = None, fir_kernel: tuple[float, ...] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.norm1 = AdaGroupNorm(in_ch, emb_dim)
        self.resample = Resample(resample, fir_kernel) if resample else nn.Identity()
        self.conv1 = conv3x3(in_ch, out_ch)
        self.norm2 = AdaGroupNorm(out_ch, emb_dim)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv3x3(out_ch, out_ch)
        self.skip = conv1x1(in_ch, out_ch) if in_ch != out_ch or resample else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        emb = F.silu(emb)
        h = F.silu(self.norm1(x, emb))
        h, x = self.resample(h), self.resample(x)
        h = F.silu(self.norm2(self.conv1(h), emb))
        h = self.conv2(self.dropout(h))
        return (self.skip(x) + h) / SQRT2


class _Level(nn.Module):
    """The blocks of one resolution, their attentions (Identity where none) and the resampling block (or None)."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        self.attentions = nn.ModuleList()
        self.resample: MCVDResBlock | None = None


class MCVDNet(nn.Module):
    """MCVD's score network; ``forward(x, noise, cond=..., cond_mask=None)`` on frames stacked on channels (B, F·C, H, W)."""

    def __init__(self, config: MCVDConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        levels = len(c.ch_mult)
        emb_dim = 4 * c.ngf + (c.ngf // 2 if c.cond_emb else 0)
        self.size_multiple = 2 ** (levels - 1)

        def block(in_ch: int, out_ch: int | None = None, resample: Literal["up", "down"] | None = None) -> MCVDResBlock:
            return MCVDResBlock(in_ch, in_ch if out_ch is None else out_ch, emb_dim, dropout=c.dropout,
                                resample=resample, fir_kernel=c.fir_kernel)

        def attention(channels: int) -> SelfAttention2d:
            heads = 1 if channels < c.n_head_channels else channels // c.n_head_channels
            return SelfAttention2d(channels, norm=lambda ch: GroupNorm(mcvd_groups(ch), ch, eps=1e-6),
                                   num_heads=heads, layout="qkv_first", skip_rescale=True)

        def has_attention(level: int) -> bool:
            return c.image_size // 2**level in c.attn_resolutions

        self.time_mlp = TimestepMLP(c.ngf, 4 * c.ngf)
        self.mask_embed = nn.Embedding(2, c.ngf // 2) if c.cond_emb else None
        self.conv_in = conv3x3(c.channels * (c.num_frames + c.cond_frames), c.ngf)

        skips = [c.ngf]
        in_ch = c.ngf
        self.down = nn.ModuleList()
        for level in range(levels):
            stage = _Level()
            for _ in range(c.num_res_blocks):
                stage.blocks.append(block(in_ch, c.ngf * c.ch_mult[level]))
                in_ch = c.ngf * c.ch_mult[level]
                stage.attentions.append(attention(in_ch) if has_attention(level) else nn.Identity())
                skips.append(in_ch)
            if level != levels - 1:
                stage.resample = block(in_ch, resample="down")
                skips.append(in_ch)
            self.down.append(stage)

        self.middle = nn.ModuleList([block(in_ch), attention(in_ch), block(in_ch)])

        self.up = nn.ModuleList()
        for level in reversed(range(levels)):
            stage = _Level()
            for _ in range(c.num_res_blocks + 1):
                stage.blocks.append(block(in_ch + skips.pop(), c.ngf * c.ch_mult[level]))
                in_ch = c.ngf * c.ch_mult[level]
            stage.attentions.append(attention(in_ch) if has_attention(level) else nn.Identity())
            if level != 0:
                stage.resample = block(in_ch, resample="up")
            self.up.append(stage)

        self.norm_out = GroupNorm(mcvd_groups(in_ch), in_ch, eps=1e-5)
        self.conv_out = conv3x3(in_ch, c.channels * c.num_frames)
        self._initialise()

    @torch.no_grad()
    def _initialise(self) -> None:
        """DDPM's variance scaling with zero biases; block outputs, attention output and output conv at 1e-10; q, k, v at 0.1."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                variance_scaling_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, MCVDResBlock):
                variance_scaling_(module.conv2.weight, 0.0)
            elif isinstance(module, SelfAttention2d):
                for projection in module.qkv.weight.chunk(3):
                    variance_scaling_(projection, 0.1)
                variance_scaling_(module.proj.weight, 0.0)
        variance_scaling_(self.conv_out.weight, 0.0)

    def _conditioning(self, x: Tensor, cond: Tensor | None, cond_mask: Tensor | None) -> tuple[Tensor | None, Tensor]:
        """Checked conditioning frames (masked ones zeroed) and the mask as integers (B,)."""
        c = self.config
        batch = x.shape[0]
        if c.cond_frames == 0:
            if cond is not None or cond_mask is not None:
                raise ValueError("MCVDNet: this network has no conditioning frames, but cond or cond_mask was given")
            return None, torch.ones(batch, dtype=torch.long, device=x.device)
        if cond is None:
            raise ValueError(f"MCVDNet: pass cond, the {c.cond_frames} conditioning frames of shape "
                             f"({batch}, {c.cond_frames * c.channels}, H, W) (zeros where masked)")
        expected = (batch, c.cond_frames * c.channels, *x.shape[2:])
        if tuple(cond.shape) != expected:
            raise ValueError(f"MCVDNet: cond must have shape {expected}, got {tuple(cond.shape)}")
        if cond_mask is None:
            return cond, torch.ones(batch, dtype=torch.long, device=x.device)
        if cond_mask.shape != (batch,) or cond_mask.dtype.is_floating_point or cond_mask.is_complex():
            raise ValueError(f"MCVDNet: cond_mask must be an integer or bool tensor of shape ({batch},), "
                             f"got {cond_mask.dtype} {tuple(cond_mask.shape)}")
        mask = cond_mask.long()
        if bool(((mask != 0) & (mask != 1)).any()):
            raise ValueError("MCVDNet: cond_mask must hold 0 (masked) or 1 (kept)")
        return cond * mask.to(cond.dtype)[:, None, None, None], mask

    def forward(self, x: Tensor, noise: Tensor, y: Tensor | None = None, *, cond: Tensor | None = None,
                cond_mask: Tensor | None = None) -> Tensor:
        c = self.config
        check_inputs(self, x, noise, y, channels=c.channels * c.num_frames, num_classes=None,
                     size_multiple=self.size_multiple)
        cond, mask = self._conditioning(x, cond, cond_mask)
        temb = self.time_mlp(ddpm_timestep_embedding((STEPS - 1) - noise, c.ngf))
        if self.mask_embed is not None:
            temb = torch.cat([temb, self.mask_embed(mask).to(temb.dtype)], dim=1)

        h = x if cond is None else torch.cat([x, cond.to(x.dtype)], dim=1)
        skips = [self.conv_in(h)]
        for stage in self.down:
            for block, attention in zip(stage.blocks, stage.attentions):
                skips.append(attention(block(skips[-1], temb)))
            if stage.resample is not None:
                skips.append(stage.resample(skips[-1], temb))

        h = self.middle[0](skips[-1], temb)
        h = self.middle[1](h)
        h = self.middle[2](h, temb)

        for stage in self.up:
            for block in stage.blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), temb)
            h = stage.attentions[0](h)
            if stage.resample is not None:
                h = stage.resample(h, temb)
        return self.conv_out(F.silu(self.norm_out(h)))


__all__ = ["MCVDConfig", "MCVDNet", "MCVDResBlock", "AdaGroupNorm", "frames_to_channels", "channels_to_frames",
           "mcvd_groups"]
