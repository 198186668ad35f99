"""NCSN: the noise-conditional CondRefineNetDilated of Song & Ermon 2019 (ermongroup/ncsn).

Noise input ("sigma_index"): the official code trains and samples with an integer label k ∈ {0, …, L−1}
indexing the geometric ladder σ_k = σ_1 (σ_L/σ_1)^{k/(L−1)}, k = 0 the largest (σ_1 = 1, σ_L = 0.01, L = 10):
``scorenet(x, labels)``. The index selects the γ, α, β of every conditional InstanceNorm++; the network
has no other noise input and its output is *not* divided by σ (the loss weights by σ² instead).

Output ("score"): s_θ(x, σ_k) ≈ ∇_x log q_{σ_k}(x).

Data range: the official data lie in [0, 1] and the network maps them to 2x − 1 itself
(``logit_transform: false``); ``centered=True`` skips that map for data already in [−1, 1].

Architecture facts kept here: ELU; residual-block convs have biases, RCU and CRP convs have none, MSF convs
have them; CRP pools by 5×5 *average* (the attribute is called ``maxpool`` in the official code);
dilated stages do not downsample, so a 32×32 input is refined at 32 and 16 only.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from .base import ConfigDefaults, check_metadata
from .common import check_inputs
from .refinenet import NCSN_STAGES, ConditionalInstanceNormPlus, RefineNet


@dataclasses.dataclass(frozen=True)
class NCSNConfig(ConfigDefaults):
    """CondRefineNetDilated hyperparameters in the names of ermongroup/ncsn `configs/anneal.yml`."""

    image_size: int = 32
    channels: int = 3
    ngf: int = 128
    num_classes: int = 10
    centered: bool = False
    prediction: str = "score"
    noise_input: str = "sigma_index"

    def __post_init__(self) -> None:
        check_metadata(self, predictions={"score"}, noise_inputs={"sigma_index"})

    @property
    def label_classes(self) -> int | None:
        """Number of class labels taken as ``y``; None: the network takes no labels (``num_classes`` counts noise levels)."""
        return None

    def build(self) -> NCSN:
        """Construct the network."""
        return NCSN(self)

    def tiny_overrides(self) -> dict[str, Any]:
        """An 8-channel version over 4 noise levels for fast tests."""
        return dict(image_size=16, ngf=8, num_classes=4)


class NCSN(nn.Module):
    """Noise-conditional score network; ``forward(x, noise)`` with ``noise`` the integer σ-ladder index."""

    def __init__(self, config: NCSNConfig) -> None:
        super().__init__()
        self.config = config
        norm = partial(ConditionalInstanceNormPlus, num_levels=config.num_classes)
        self.net = RefineNet(channels=config.channels, ngf=config.ngf, stages=NCSN_STAGES, norm=norm,
                             refine_norm=norm, pool="avg")

    def forward(self, x: Tensor, noise: Tensor, y: Tensor | None = None) -> Tensor:
        check_inputs(self, x, noise, y, channels=self.config.channels, num_classes=None,
                     size_multiple=self.net.size_multiple)
        if noise.dtype.is_floating_point or noise.dtype == torch.bool:
            raise TypeError(f"NCSN: noise must hold integer σ-ladder indices, got dtype {noise.dtype}")
        h = x if self.config.centered else 2 * x - 1
        return self.net(h, noise)

