"""What every network configuration records: the meaning of the output and of the noise input.

The parameterization layer reads ``prediction`` and ``noise_input`` to wrap a network into a model; the
vocabularies below are the contract between the two layers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, TypeVar

from torch import nn

PREDICTIONS: dict[str, str] = {
    "eps": "the noise ε in x_t = α x_0 + σ ε (Ho et al. 2020)",
    "score": "the score ∇ log p_σ(x) of the noised data (Song & Ermon 2019)",
    "logits": "unnormalised log-probabilities of the class given the noised image (Dhariwal & Nichol 2021)",
}

NOISE_INPUTS: dict[str, str] = {
    "timestep_1000": (
        "position i ∈ [0, 1000) on a 1000-step DDPM grid, 0-based (i = 0 is the first, least noisy step "
        "β_1); a float is allowed (iDDPM rescales a T-step index by 1000/T)"
    ),
    "time_999": "999·t for the continuous time t ∈ [0, 1] of a VP/sub-VP SDE (score_sde `labels = t * 999`)",
    "sigma_index": "the integer index k of σ_k in the geometric noise ladder, k = 0 the largest σ (NCSN)",
    "sigma": "the noise standard deviation σ itself",
}


class NetConfig(Protocol):
    """A frozen dataclass describing one network; ``build()`` makes the module."""

    @property
    def prediction(self) -> str: ...

    @property
    def noise_input(self) -> str: ...

    @property
    def learn_sigma(self) -> bool: ...

    @property
    def label_classes(self) -> int | None: ...

    @property
    def data_shape(self) -> tuple[int, ...]: ...

    @property
    def data_range(self) -> tuple[float, float]: ...

    def build(self) -> nn.Module: ...

    def tiny_overrides(self) -> dict[str, Any]: ...


class ConfigDefaults:
    """What most configurations share, unless they define it: no learned variance, labels only when
    ``num_classes`` is set, data in [-1, 1] (or [0, 1] when ``centered`` is False), one image of
    ``in_channels`` (or ``channels``) at ``image_size``."""

    @property
    def learn_sigma(self) -> bool:
        """Whether extra output channels hold iDDPM's variance interpolation."""
        return False

    @property
    def label_classes(self) -> int | None:
        """Number of class labels taken as ``y``; None: the network takes no labels."""
        return getattr(self, "num_classes", None)

    @property
    def data_shape(self) -> tuple[int, ...]:
        """Shape (C, H, W) of one sample at the configured resolution."""
        channels = getattr(self, "in_channels", None) or getattr(self, "channels")
        return (channels, self.image_size, self.image_size)  # type: ignore[attr-defined]

    @property
    def data_range(self) -> tuple[float, float]:
        """Range of the data the network expects as ``x``."""
        return (-1.0, 1.0) if getattr(self, "centered", True) else (0.0, 1.0)


C = TypeVar("C")


def replace(config: C, **overrides: Any) -> C:
    """Copy a frozen config with some fields replaced, naming any field that does not exist."""
    fields = {f.name for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"{type(config).__name__} has no field(s) {', '.join(map(repr, unknown))}; "
                        f"fields are: {', '.join(sorted(fields))}")
    return dataclasses.replace(config, **overrides)  # type: ignore[type-var]


def check_metadata(config: Any, *, predictions: set[str], noise_inputs: set[str]) -> None:
    """Validate the metadata fields against the vocabularies and what the family supports."""
    name = type(config).__name__
    if config.prediction not in PREDICTIONS or config.prediction not in predictions:
        raise ValueError(f"{name}: prediction must be one of {sorted(predictions)}, got {config.prediction!r}")
    if config.noise_input not in NOISE_INPUTS or config.noise_input not in noise_inputs:
        raise ValueError(f"{name}: noise_input must be one of {sorted(noise_inputs)}, got {config.noise_input!r}")


def check_choice(config: Any, field: str, allowed: tuple[Any, ...]) -> None:
    """Raise a ValueError naming the field when its value is not one of the allowed options."""
    value = getattr(config, field)
    if value not in allowed:
        raise ValueError(f"{type(config).__name__}.{field} must be one of {allowed}, got {value!r}")
