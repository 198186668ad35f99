"""RefineNet score trunk with dilated convolutions, shared by NCSN (Song & Ermon 2019) and NCSNv2 (Song & Ermon 2020).

After RefineNet (Lin et al. 2017) as built in ermongroup/ncsn `models/cond_refinenet_dilated.py` and
ermongroup/ncsnv2 `models/ncsnv2.py`, `layers.py`, `normalization.py`. The encoder is a list of stages of
two pre-activation residual blocks (ELU); a stage either keeps the resolution, halves it by a convolution
followed by 2×2 mean pooling, or — in the later stages — replaces the halving by dilated convolutions (the
"downsampling" block then still changes its first convolution's role and always has a shortcut conv).
The decoder is a chain of RefineBlocks from the coarsest stage up: residual conv units (RCU) adapt each
input, a multi-resolution fusion (MSF) sums 3×3 convs of them bilinearly resized to the finer size, a
chained residual pooling (CRP) of two pool→conv stages follows, then an output RCU (three units at the
last block). A block refining stage i outputs the channels of stage i−1.

The two models differ in options: NCSN conditions every normalisation on the noise-level index
(conditional InstanceNorm++) and pools by 5×5 average in CRP; NCSNv2 is unconditional, has no
normalisation inside RefineBlocks, pools by 5×5 max, and divides the output by σ.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Callable, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import conv1x1, conv3x3

CondNorm = Callable[[int], nn.Module]
"""A factory of normalisation layers whose forward is ``(x, cond)``; ``cond`` may be None."""


def _instance_norm_plus(x: Tensor) -> tuple[Tensor, Tensor]:
    """Instance-normalised x and its channel means standardised across channels (InstanceNorm++, Song & Ermon 2019, §4.2)."""
    means = x.mean(dim=(2, 3))
    centred = (means - means.mean(dim=-1, keepdim=True)) / torch.sqrt(means.var(dim=-1, keepdim=True) + 1e-5)
    return F.instance_norm(x, eps=1e-5), centred[:, :, None, None]


class InstanceNormPlus(nn.Module):
    """InstanceNorm++ with learned γ, α, β: γ(IN(x) + α·m̃) + β (Song & Ermon 2019, §4.2; NCSNv2 `InstanceNorm2dPlus`)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.empty(channels).normal_(1.0, 0.02))
        self.alpha = nn.Parameter(torch.empty(channels).normal_(1.0, 0.02))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        h, m = _instance_norm_plus(x)
        return self.gamma[:, None, None] * (h + m * self.alpha[:, None, None]) + self.beta[:, None, None]


class ConditionalInstanceNormPlus(nn.Module):
    """InstanceNorm++ whose γ, α, β are looked up by the noise-level index (Song & Ermon 2019, §4.2)."""

    def __init__(self, channels: int, num_levels: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_levels, 3 * channels)
        with torch.no_grad():
            self.embed.weight[:, : 2 * channels].normal_(1.0, 0.02)
            self.embed.weight[:, 2 * channels :].zero_()

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        if cond is None:
            raise ValueError("ConditionalInstanceNormPlus needs the noise-level index")
        h, m = _instance_norm_plus(x)
        gamma, alpha, beta = self.embed(cond)[:, :, None, None].chunk(3, dim=1)
        return gamma * (h + m * alpha) + beta


class NoNorm(nn.Module):
    """The identity, standing where a RefineBlock of NCSNv2 has no normalisation."""

    def __init__(self, channels: int) -> None:
        super().__init__()

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        return x


class ResidualBlock(nn.Module):
    """Pre-activation residual block: norm→ELU→conv twice (NCSN `ConditionalResidualBlock`, NCSNv2 `ResidualBlock`).

    ``resample`` marks the first block of a stage that halves the resolution — by 3×3 conv then 2×2 mean
    pooling when ``dilation == 1``, by dilated convolutions (resolution kept) otherwise; such a block keeps
    its input width through the first conv and always has a shortcut convolution.
    """

    def __init__(self, in_ch: int, out_ch: int, *, norm: CondNorm, resample: bool = False, dilation: int = 1) -> None:
        super().__init__()
        self.pool = resample and dilation == 1
        conv = partial(conv3x3, padding=dilation, dilation=dilation)
        mid = in_ch if resample else out_ch
        self.norm1 = norm(in_ch)
        self.conv1 = conv(in_ch, mid)
        self.norm2 = norm(mid)
        self.conv2 = conv(mid, out_ch)
        self.shortcut: nn.Module | None
        if self.pool:
            self.shortcut = conv1x1(in_ch, out_ch)
        elif resample or in_ch != out_ch:
            self.shortcut = conv(in_ch, out_ch) if dilation > 1 else conv1x1(in_ch, out_ch)
        else:
            self.shortcut = None

    def forward(self, x: Tensor, cond: Tensor | None) -> Tensor:
        h = self.conv1(F.elu(self.norm1(x, cond)))
        h = self.conv2(F.elu(self.norm2(h, cond)))
        skip = x if self.shortcut is None else self.shortcut(x)
        if self.pool:  # ConvMeanPool: convolve, then average 2×2 blocks
            h, skip = F.avg_pool2d(h, 2), F.avg_pool2d(skip, 2)
        return skip + h


class RCU(nn.Module):
    """Residual conv units: ``units`` × (x + (norm→ELU→conv)²(x)), convs without bias (RefineNet's RCU)."""

    def __init__(self, channels: int, units: int, *, norm: CondNorm) -> None:
        super().__init__()
        self.norms = nn.ModuleList(norm(channels) for _ in range(2 * units))
        self.convs = nn.ModuleList(conv3x3(channels, channels, bias=False) for _ in range(2 * units))

    def forward(self, x: Tensor, cond: Tensor | None) -> Tensor:
        for i in range(0, len(self.convs), 2):
            h = self.convs[i](F.elu(self.norms[i](x, cond)))
            x = x + self.convs[i + 1](F.elu(self.norms[i + 1](h, cond)))
        return x


class MSF(nn.Module):
    """Multi-resolution fusion: sum of biased 3×3 convs of each input, resized bilinearly (align_corners) to the finest."""

    def __init__(self, in_channels: Sequence[int], features: int, *, norm: CondNorm) -> None:
        super().__init__()
        self.norms = nn.ModuleList(norm(c) for c in in_channels)
        self.convs = nn.ModuleList(conv3x3(c, features) for c in in_channels)

    def forward(self, xs: Sequence[Tensor], cond: Tensor | None, size: tuple[int, int]) -> Tensor:
        total: Tensor | None = None
        for x, norm, conv in zip(xs, self.norms, self.convs):
            h = F.interpolate(conv(norm(x, cond)), size=size, mode="bilinear", align_corners=True)
            total = h if total is None else total + h
        assert total is not None
        return total


class CRP(nn.Module):
    """Chained residual pooling: ELU, then ``stages`` × (path ← conv(pool(norm(path))); x += path), 5×5 pools, stride 1."""

    def __init__(self, channels: int, stages: int, *, norm: CondNorm, pool: Literal["avg", "max"]) -> None:
        super().__init__()
        self.norms = nn.ModuleList(norm(channels) for _ in range(stages))
        self.convs = nn.ModuleList(conv3x3(channels, channels, bias=False) for _ in range(stages))
        self.pool: nn.Module = nn.AvgPool2d(5, stride=1, padding=2) if pool == "avg" \
            else nn.MaxPool2d(5, stride=1, padding=2)

    def forward(self, x: Tensor, cond: Tensor | None) -> Tensor:
        x = F.elu(x)
        path = x
        for norm, conv in zip(self.norms, self.convs):
            path = conv(self.pool(norm(path, cond)))
            x = x + path
        return x


class RefineBlock(nn.Module):
    """RefineNet block: RCU per input → MSF (when several inputs) → CRP → output RCU (Lin et al. 2017)."""

    def __init__(self, in_channels: Sequence[int], features: int, *, norm: CondNorm, pool: Literal["avg", "max"],
                 end: bool = False) -> None:
        super().__init__()
        self.adapt = nn.ModuleList(RCU(c, 2, norm=norm) for c in in_channels)
        self.msf = MSF(in_channels, features, norm=norm) if len(in_channels) > 1 else None
        self.crp = CRP(features, 2, norm=norm, pool=pool)
        self.output = RCU(features, 3 if end else 1, norm=norm)

    def forward(self, xs: Sequence[Tensor], cond: Tensor | None, size: tuple[int, int]) -> Tensor:
        hs = [adapt(x, cond) for adapt, x in zip(self.adapt, xs)]
        h = hs[0] if self.msf is None else self.msf(hs, cond, size)
        return self.output(self.crp(h, cond), cond)


@dataclasses.dataclass(frozen=True)
class Stage:
    """One encoder stage: its width as a multiple of ngf and how its first block changes resolution."""

    mult: int
    resample: Literal["none", "pool", "dilate"] = "none"
    dilation: int = 1


NCSN_STAGES = (Stage(1), Stage(2, "pool"), Stage(2, "dilate", 2), Stage(2, "dilate", 4))
"""CondRefineNetDilated (NCSN) and NCSNv2: 32×32 → 16×16, then dilation 2 and 4."""

NCSNV2_DEEPER_STAGES = (Stage(1), Stage(2, "pool"), Stage(2, "pool"), Stage(4, "dilate", 2), Stage(4, "dilate", 4))
"""NCSNv2Deeper for 64–128 px: two poolings, then dilation 2 and 4 at 4·ngf."""


class RefineNet(nn.Module):
    """Encoder of residual stages and a chain of RefineBlocks back to full resolution; ``forward(x, cond)``."""

    def __init__(self, *, channels: int, ngf: int, stages: Sequence[Stage], norm: CondNorm, refine_norm: CondNorm,
                 pool: Literal["avg", "max"]) -> None:
        super().__init__()
        self.size_multiple = 2 ** sum(s.resample == "pool" for s in stages)
        self.begin_conv = conv3x3(channels, ngf)
        self.stages = nn.ModuleList()
        widths = []
        in_ch = ngf
        for stage in stages:
            out_ch = stage.mult * ngf
            resample = stage.resample != "none"
            self.stages.append(nn.ModuleList([
                ResidualBlock(in_ch, out_ch, norm=norm, resample=resample, dilation=stage.dilation),
                ResidualBlock(out_ch, out_ch, norm=norm, dilation=stage.dilation),
            ]))
            widths.append(out_ch)
            in_ch = out_ch
        # Refine from the coarsest stage; the block refining stage i outputs the width of stage i−1.
        self.refines = nn.ModuleList()
        top = len(widths) - 1
        previous: int | None = None
        for i in reversed(range(len(widths))):
            features = widths[i] if i == top else widths[max(i - 1, 0)]
            inputs = [widths[i]] if previous is None else [widths[i], previous]
            self.refines.append(RefineBlock(inputs, features, norm=refine_norm, pool=pool, end=i == 0))
            previous = features
        self.normalizer = norm(ngf)
        self.end_conv = conv3x3(ngf, channels)

    def forward(self, x: Tensor, cond: Tensor | None) -> Tensor:
        h = self.begin_conv(x)
        features = []
        for stage in self.stages:
            for block in stage:
                h = block(h, cond)
            features.append(h)
        refined: Tensor | None = None
        for feature, refine in zip(reversed(features), self.refines):
            inputs = [feature] if refined is None else [feature, refined]
            refined = refine(inputs, cond, tuple(feature.shape[-2:]))
        assert refined is not None
        return self.end_conv(F.elu(self.normalizer(refined, cond)))
