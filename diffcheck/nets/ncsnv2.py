"""NCSNv2 and NCSNv2Deeper of Song & Ermon 2020 (ermongroup/ncsnv2 `models/ncsnv2.py`).

Noise input ("sigma"): the official network takes an integer index k into its own geometric ladder
(CIFAR-10: σ_1 = 50, σ_L = 0.01, L = 232; CelebA 64: σ_1 = 90, L = 500) only to look up σ_k and divide
the unconditional output by it — Song & Ermon 2020, technique 3, s_θ(x, σ) = s_θ(x)/σ. The index enters nowhere else, so
this network takes σ_k itself: ``net(x, σ_k)`` here is the official ``net(x, k)``.

Output ("score"): s_θ(x, σ) ≈ ∇_x log q_σ(x).

Data range: as in NCSN the official data lie in [0, 1] and the network maps them to 2x − 1
(``rescaled: false``); ``centered=True`` skips that map.

Architecture facts kept here: unconditional InstanceNorm++ (γ, α, β per channel) in residual blocks and at
the output — the official code passes ``num_classes`` as the ``bias`` flag of the output norm, which is
truthy, so it has β too; no normalisation inside RefineBlocks; CRP pools by 5×5 *max*; every conv has a bias
except those in RCU and CRP. NCSNv2Deeper (64–128 px) pools twice and widens the dilated stages to 4·ngf.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from torch import Tensor, nn

from .base import ConfigDefaults, check_choice, check_metadata
from .common import check_inputs
from .refinenet import NCSN_STAGES, NCSNV2_DEEPER_STAGES, InstanceNormPlus, NoNorm, RefineNet

STAGES = {"standard": NCSN_STAGES, "deeper": NCSNV2_DEEPER_STAGES}


@dataclasses.dataclass(frozen=True)
class NCSNv2Config(ConfigDefaults):
    """NCSNv2 hyperparameters in the names of ermongroup/ncsnv2 `configs/*.yml`; ``depth`` picks NCSNv2 or NCSNv2Deeper."""

    image_size: int = 32
    channels: int = 3
    ngf: int = 128
    depth: Literal["standard", "deeper"] = "standard"
    centered: bool = False
    prediction: str = "score"
    noise_input: str = "sigma"

    def __post_init__(self) -> None:
        check_metadata(self, predictions={"score"}, noise_inputs={"sigma"})
        check_choice(self, "depth", tuple(STAGES))

    def build(self) -> NCSNv2:
        """Construct the network."""
        return NCSNv2(self)

    def tiny_overrides(self) -> dict[str, Any]:
        """An 8-channel version for fast tests."""
        return dict(image_size=16, ngf=8)


class NCSNv2(nn.Module):
    """Unconditional RefineNet whose output is divided by σ; ``forward(x, noise)`` with ``noise`` = σ."""

    def __init__(self, config: NCSNv2Config) -> None:
        super().__init__()
        self.config = config
        self.net = RefineNet(channels=config.channels, ngf=config.ngf, stages=STAGES[config.depth],
                             norm=InstanceNormPlus, refine_norm=NoNorm, pool="max")

    def forward(self, x: Tensor, noise: Tensor, y: Tensor | None = None) -> Tensor:
        check_inputs(self, x, noise, y, channels=self.config.channels, num_classes=None,
                     size_multiple=self.net.size_multiple)
        h = x if self.config.centered else 2 * x - 1
        return self.net(h, None) / noise.to(x.dtype)[:, None, None, None]
