"""Building blocks shared by the image networks: embeddings, norms, attention, residual blocks, resampling.

Every block here is written once and configured by its callers (DDPM, iDDPM/ADM, NCSN++/DDPM++),
so that the families differ only in their wiring and options, as they do in the papers.
"""

from __future__ import annotations

import math
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Norm = Callable[[int], nn.Module]
"""A factory mapping a channel count to a normalisation layer."""

QKVLayout = Literal["heads_first", "qkv_first"]

SQRT2 = math.sqrt(2.0)


class GroupNorm(nn.GroupNorm):
    """GroupNorm evaluated in at least float32 and cast back (GroupNorm32 of openai/improved-diffusion `nn.py`)."""

    def forward(self, x: Tensor) -> Tensor:
        dtype = torch.promote_types(x.dtype, torch.float32)
        weight = None if self.weight is None else self.weight.to(dtype)
        bias = None if self.bias is None else self.bias.to(dtype)
        return F.group_norm(x.to(dtype), self.num_groups, weight, bias, self.eps).to(x.dtype)


def _conv(dims: int) -> type[nn.Conv2d] | type[nn.Conv3d]:
    """The convolution class for 2D images or 3D (frames × height × width) videos."""
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 (images) or 3 (videos), got {dims!r}")
    return nn.Conv2d if dims == 2 else nn.Conv3d


def conv3x3(in_ch: int, out_ch: int, *, stride: int | tuple[int, ...] = 1, padding: int = 1, dilation: int = 1,
            bias: bool = True, dims: int = 2) -> nn.Conv2d | nn.Conv3d:
    """3×3 convolution (3×3×3 with ``dims=3``, as openai `conv_nd`), 'same' padding by default."""
    return _conv(dims)(in_ch, out_ch, 3, stride=stride, padding=padding, dilation=dilation, bias=bias)


def conv1x1(in_ch: int, out_ch: int, *, bias: bool = True, dims: int = 2) -> nn.Conv2d | nn.Conv3d:
    """1×1 convolution (the 'network-in-network' layer of DDPM's TF code); 1×1×1 with ``dims=3``."""
    return _conv(dims)(in_ch, out_ch, 1, bias=bias)


def spatial_factor(dims: int) -> int | tuple[int, int, int]:
    """The 2× resampling factor of a U-Net level: both sides of an image, or height and width of a video (frames kept)."""
    _conv(dims)  # validates dims
    return 2 if dims == 2 else (1, 2, 2)


# --------------------------------------------------------------------------- embeddings


def _embedding_dtype(t: Tensor) -> torch.dtype:
    """Embeddings are computed in float32, or in float64 for a float64 input (so that a float64 network is exact)."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _sinusoidal(t: Tensor, dim: int, *, shift: int, cos_first: bool, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal features of a scalar per sample with frequencies max_period^(−i/(half−shift))."""
    half = dim // 2
    dtype = _embedding_dtype(t)
    exponent = torch.arange(half, dtype=dtype, device=t.device) / (half - shift)
    args = t.to(dtype)[:, None] * torch.exp(-math.log(max_period) * exponent)[None, :]
    pair = (torch.cos(args), torch.sin(args)) if cos_first else (torch.sin(args), torch.cos(args))
    emb = torch.cat(pair, dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def ddpm_timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """[sin, cos] features, frequencies 10⁴^(−i/(half−1)) (Ho et al. 2020, tensor2tensor; ddim `get_timestep_embedding`)."""
    return _sinusoidal(t, dim, shift=1, cos_first=False)


def adm_timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """[cos, sin] features, frequencies 10⁴^(−i/half) (openai/improved-diffusion `timestep_embedding`)."""
    return _sinusoidal(t, dim, shift=0, cos_first=True)


class GaussianFourierEmbedding(nn.Module):
    """Fixed random Fourier features [sin 2πWs, cos 2πWs], W ~ N(0, scale²) (Tancik et al. 2020; NCSN++ of Song et al. 2021)."""

    def __init__(self, size: int, scale: float) -> None:
        super().__init__()
        # A parameter that is never trained, as in score_sde: it is saved with the model and counted.
        self.frequencies = nn.Parameter(torch.randn(size) * scale, requires_grad=False)

    def forward(self, s: Tensor) -> Tensor:
        proj = s.to(_embedding_dtype(s))[:, None] * self.frequencies[None, :] * (2 * math.pi)
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=1)


class TimestepMLP(nn.Sequential):
    """Linear → SiLU → Linear applied to a noise-level embedding (Ho et al. 2020, Appendix B).

    The embedding is computed in float32 from the full-precision noise input and cast to the
    weights' dtype here, as openai's code does: a timestep rounded to bfloat16 first would
    lose its last bits (999 becomes 1000).
    """

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__(nn.Linear(in_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, emb: Tensor) -> Tensor:
        return super().forward(emb.to(self[0].weight.dtype))


# --------------------------------------------------------------------------- attention


def multihead_attention(qkv: Tensor, num_heads: int, layout: QKVLayout) -> Tensor:
    """Softmax attention over tokens of packed projections (B, 3C, T) → (B, C, T) (Vaswani et al. 2017).

    ``heads_first`` splits heads before q/k/v (ADM's legacy order, identical to DDPM for one head);
    ``qkv_first`` splits q/k/v before heads (ADM's ``use_new_attention_order``).
    """
    batch, width, length = qkv.shape
    channels = width // 3
    head_dim = channels // num_heads
    if layout == "heads_first":
        q, k, v = qkv.reshape(batch, num_heads, 3 * head_dim, length).split(head_dim, dim=2)
    else:
        q, k, v = qkv.reshape(batch, 3, num_heads, head_dim, length).unbind(1)
    out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
    return out.transpose(-1, -2).reshape(batch, channels, length)


class SelfAttention2d(nn.Module):
    """Residual self-attention: norm → 1×1 qkv → multi-head attention → 1×1 out (Ho et al. 2020; Dhariwal & Nichol 2021).

    The tokens are all positions of the feature map: H·W of an image, or F·H·W of a video with ``dims=3``.
    """

    def __init__(self, channels: int, *, norm: Norm, num_heads: int = 1, layout: QKVLayout = "heads_first",
                 skip_rescale: bool = False, dims: int = 2) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"attention: {channels} channels are not divisible into {num_heads} heads")
        self.num_heads = num_heads
        self.layout: QKVLayout = layout
        self.skip_rescale = skip_rescale
        self.norm = norm(channels)
        self.qkv = conv1x1(channels, 3 * channels, dims=dims)
        self.proj = conv1x1(channels, channels, dims=dims)

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        b, c = x.shape[:2]
        qkv = self.qkv(self.norm(x)).reshape(b, 3 * c, -1)
        out = x + self.proj(multihead_attention(qkv, self.num_heads, self.layout).reshape(x.shape))
        return out / SQRT2 if self.skip_rescale else out


# --------------------------------------------------------------------------- resampling


def upfirdn2d(x: Tensor, kernel: tuple[float, ...], *, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0), gain: float = 1.0) -> Tensor:
    """Zero-insertion upsampling, padding, separable FIR filtering (normalised kernel × gain), decimation (StyleGAN2 `upfirdn2d`)."""
    b, c, h, w = x.shape
    k1 = torch.tensor(kernel, dtype=x.dtype, device=x.device)
    k2 = torch.outer(k1, k1)
    k2 = (k2 / k2.sum() * gain).flip(0, 1)  # flipped so that conv2d computes a true convolution
    if up > 1:
        x = F.pad(x.reshape(b, c, h, 1, w, 1), (0, up - 1, 0, 0, 0, up - 1)).reshape(b, c, h * up, w * up)
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    weight = k2[None, None].expand(c, 1, *k2.shape)
    return F.conv2d(x, weight, stride=down, groups=c)


def fir_upsample(x: Tensor, kernel: tuple[float, ...]) -> Tensor:
    """2× upsampling with an FIR filter (StyleGAN2 `upsample_2d`, gain 4 so that constants are preserved)."""
    p = len(kernel) - 2
    return upfirdn2d(x, kernel, up=2, pad=((p + 1) // 2 + 1, p // 2), gain=4.0)


def fir_downsample(x: Tensor, kernel: tuple[float, ...]) -> Tensor:
    """2× downsampling with an FIR filter (StyleGAN2 `downsample_2d`)."""
    p = len(kernel) - 2
    return upfirdn2d(x, kernel, down=2, pad=((p + 1) // 2, p // 2))


class Resample(nn.Module):
    """Parameter-free 2× resampling: nearest/average, or FIR when a kernel is given (BigGAN blocks of NCSN++ and ADM)."""

    def __init__(self, direction: Literal["up", "down"], fir_kernel: tuple[float, ...] | None = None) -> None:
        super().__init__()
        self.direction = direction
        self.fir_kernel = fir_kernel

    def forward(self, x: Tensor) -> Tensor:
        if self.direction == "up":
            return F.interpolate(x, scale_factor=2.0, mode="nearest") if self.fir_kernel is None \
                else fir_upsample(x, self.fir_kernel)
        return F.avg_pool2d(x, 2) if self.fir_kernel is None else fir_downsample(x, self.fir_kernel)


class Upsample(nn.Module):
    """Nearest-neighbour 2× upsampling followed by an optional 3×3 convolution (Ho et al. 2020).

    With ``dims=3`` only height and width are doubled and the convolution is 3×3×3 (RaMViD's 3D U-Net).
    """

    def __init__(self, channels: int, *, with_conv: bool, dims: int = 2) -> None:
        super().__init__()
        self.scale = spatial_factor(dims)
        self.conv = conv3x3(channels, channels, dims=dims) if with_conv else None

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        x = F.interpolate(x, scale_factor=self.scale, mode="nearest")
        return x if self.conv is None else self.conv(x)


class Downsample(nn.Module):
    """2× downsampling by a stride-2 3×3 convolution or average pooling; FIR-filtered first when a kernel is given.

    ``padding="asymmetric"`` pads (0, 1) as TF 'SAME' does (DDPM, score_sde); ``"symmetric"`` pads 1 (ADM).
    With an FIR kernel and a convolution this is StyleGAN2's fused `conv_downsample_2d`. With ``dims=3`` (videos)
    only height and width are halved, by a 3×3×3 convolution of stride (1, 2, 2) padded 1 or by (1, 2, 2) average
    pooling (RaMViD's 3D U-Net); only symmetric padding and no FIR filter are offered there.
    """

    def __init__(self, in_ch: int, out_ch: int | None = None, *, with_conv: bool,
                 padding: Literal["symmetric", "asymmetric"] = "symmetric",
                 fir_kernel: tuple[float, ...] | None = None, dims: int = 2) -> None:
        super().__init__()
        out_ch = in_ch if out_ch is None else out_ch
        if not with_conv and out_ch != in_ch:
            raise ValueError("Downsample without a convolution cannot change the channel count")
        if dims == 3 and (padding != "symmetric" or fir_kernel is not None):
            raise ValueError("Downsample with dims=3 takes symmetric padding and no FIR kernel")
        self.padding = padding
        self.fir_kernel = fir_kernel
        self.factor = spatial_factor(dims)
        symmetric = padding == "symmetric" and fir_kernel is None
        self.conv = conv3x3(in_ch, out_ch, stride=self.factor, padding=1 if symmetric else 0,
                            dims=dims) if with_conv else None

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        if self.conv is None:
            if self.fir_kernel is not None:
                return fir_downsample(x, self.fir_kernel)
            return F.avg_pool2d(x, 2) if x.dim() == 4 else F.avg_pool3d(x, self.factor)
        if self.fir_kernel is not None:
            p = len(self.fir_kernel) - 2 + 2  # kernel taps beyond the factor, plus the 3×3 conv's reach
            x = upfirdn2d(x, self.fir_kernel, pad=((p + 1) // 2, p // 2))
        elif self.padding == "asymmetric":
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


# --------------------------------------------------------------------------- residual block


class ResBlock(nn.Module):
    """Pre-activation residual block conditioned on an embedding (Ho et al. 2020), with the options of its successors.

    ``scale_shift``: AdaGN, norm(h)·(1+s)+b (Nichol & Dhariwal 2021); ``resample``: BigGAN up/down inside the
    block (Brock et al. 2019; Song et al. 2021; Dhariwal & Nichol 2021); ``skip_conv_on_resample``: a 1×1 skip
    convolution whenever the block resamples (score_sde) rather than only when channels change (ADM);
    ``skip_rescale``: divide the sum by √2 (score_sde); ``dims=3``: 3×3×3 and 1×1×1 convolutions over videos
    (RaMViD's 3D U-Net; no resampling inside the block there).
    """

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, *, dropout: float, norm: Norm,
                 scale_shift: bool = False, resample: Resample | None = None,
                 skip_conv_on_resample: bool = False, skip_rescale: bool = False, dims: int = 2) -> None:
        super().__init__()
        if dims == 3 and resample is not None:
            raise ValueError("ResBlock with dims=3 does not resample; use Downsample/Upsample between levels")
        self.scale_shift = scale_shift
        self.skip_rescale = skip_rescale
        self.norm1 = norm(in_ch)
        self.resample = resample if resample is not None else nn.Identity()
        self.conv1 = conv3x3(in_ch, out_ch, dims=dims)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_ch if scale_shift else out_ch)
        self.norm2 = norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv3x3(out_ch, out_ch, dims=dims)
        needs_skip_conv = in_ch != out_ch or (resample is not None and skip_conv_on_resample)
        self.skip = conv1x1(in_ch, out_ch, dims=dims) if needs_skip_conv else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = F.silu(self.norm1(x))
        h, x = self.resample(h), self.resample(x)
        h = self.conv1(h)
        e = self.emb_proj(F.silu(emb))
        e = e.reshape(*e.shape, *(1,) * (h.dim() - 2))
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.dropout(F.silu(h)))
        out = self.skip(x) + h
        return out / SQRT2 if self.skip_rescale else out


class EmbedSequential(nn.ModuleList):
    """A chain of layers that all take (x, emb) (ADM's TimestepEmbedSequential without type dispatch)."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        for layer in self:
            x = layer(x, emb)
        return x


# --------------------------------------------------------------------------- initialisation


@torch.no_grad()
def variance_scaling_(tensor: Tensor, scale: float = 1.0) -> Tensor:
    """Uniform fan-avg variance-scaling init; scale 0 means 1e-10 (DDPM TF code, score_sde `default_init`)."""
    scale = 1e-10 if scale == 0 else scale
    receptive = tensor[0, 0].numel() if tensor.dim() > 2 else 1
    fan_avg = (tensor.shape[0] + tensor.shape[1]) * receptive / 2
    bound = math.sqrt(3 * scale / fan_avg)
    return tensor.uniform_(-bound, bound)


@torch.no_grad()
def zero_(module: nn.Module) -> nn.Module:
    """Zero every parameter of a module (`zero_module` of openai/improved-diffusion)."""
    for p in module.parameters():
        p.zero_()
    return module


# --------------------------------------------------------------------------- input checks


def check_inputs(net: nn.Module, x: Tensor, noise: Tensor, y: Tensor | None, *, channels: int,
                 num_classes: int | None, size_multiple: int = 1, dims: int = 2) -> None:
    """Raise a clear error for a batch the network cannot take: (B, C, H, W) image or, with ``dims=3``,
    (B, C, F, H, W) video; (B,) noise; labels iff conditional."""
    name = type(net).__name__
    if x.dim() != dims + 2:
        layout = "an image batch (B, C, H, W)" if dims == 2 else "a video batch (B, C, F, H, W)"
        raise ValueError(f"{name}: expected {layout}, got shape {tuple(x.shape)}")
    batch, c = x.shape[:2]
    h, w = x.shape[-2:]
    if c != channels:
        raise ValueError(f"{name}: expected {channels} input channels, got {c}")
    if h % size_multiple or w % size_multiple:
        raise ValueError(f"{name}: height and width must be multiples of {size_multiple}, got {h}×{w}")
    if noise.shape != (batch,):
        raise ValueError(f"{name}: noise must have shape ({batch},), one value per sample; got {tuple(noise.shape)}")
    if num_classes is None:
        if y is not None:
            raise ValueError(f"{name}: this network is not class-conditional, but labels were given")
        return
    if y is None:
        raise ValueError(f"{name}: this network is class-conditional ({num_classes} classes); pass labels y")
    if y.shape != (batch,) or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"{name}: labels must be an integer tensor of shape ({batch},), got {y.dtype} {tuple(y.shape)}")
