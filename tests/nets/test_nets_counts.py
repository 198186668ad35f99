"""Parameter counts of the named image networks against the counts of the official builds (MODELS.md)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from diffcheck import nets
from diffcheck.nets import NOISE_INPUTS, PREDICTIONS

# Counted by building the authors' models (ddim, improved/guided-diffusion, ncsn, ncsnv2, score_sde).
REFERENCE = {
    "ddpm_cifar10": 35_746_307,
    "ddpm_celeba64": 78_700_803,
    "ncsn_cifar10": 30_117_635,
    "ncsn_mnist": 7_638_657,
    "ncsnv2_cifar10": 29_694_083,
    "ncsnv2_deeper": 83_445_379,
    "ncsnpp_cifar10_ve": 62_758_915,
    "ddpmpp_cifar10_vp": 61_804_419,
    "iddpm_cifar10": 52_546_438,
    "adm_64": 295_904_454,
    "adm_256": 553_838_086,
    "adm_classifier_128": 42_568_040,
}


def test_names_are_the_reference_models() -> None:
    assert nets.names("image") == sorted(REFERENCE)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_parameter_count_matches_official(name: str) -> None:
    with torch.device("meta"):
        net = nets.build(name)
    assert sum(p.numel() for p in net.parameters()) == REFERENCE[name]


def test_ddpm_attends_after_every_decoder_block() -> None:
    """Two encoder, one middle and three decoder attentions; with one per decoder level (score_sde's own
    'DDPM') the count would be the 35,218,947 that MODELS.md warns about."""
    from diffcheck.nets.common import SelfAttention2d

    with torch.device("meta"):
        net = nets.build("ddpm_cifar10")
    attentions = [m for m in net.modules() if isinstance(m, SelfAttention2d)]
    assert len(attentions) == 6
    one = sum(p.numel() for p in attentions[-1].parameters())
    assert REFERENCE["ddpm_cifar10"] - 2 * one == 35_218_947


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_metadata_is_in_the_vocabulary(name: str) -> None:
    cfg = nets.config(name)
    assert dataclasses.is_dataclass(cfg)
    assert cfg.prediction in PREDICTIONS and cfg.noise_input in NOISE_INPUTS
    assert isinstance(cfg.learn_sigma, bool)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.prediction = "eps"  # type: ignore[misc]


@pytest.mark.parametrize(("name", "prediction", "noise_input", "learn_sigma"), [
    ("ddpm_cifar10", "eps", "timestep_1000", False),
    ("iddpm_cifar10", "eps", "timestep_1000", True),
    ("adm_64", "eps", "timestep_1000", True),
    ("adm_classifier_128", "logits", "timestep_1000", False),
    ("ncsn_cifar10", "score", "sigma_index", False),
    ("ncsnv2_cifar10", "score", "sigma", False),
    ("ncsnpp_cifar10_ve", "score", "sigma", False),
    ("ddpmpp_cifar10_vp", "eps", "time_999", False),
])
def test_metadata_of_each_family(name: str, prediction: str, noise_input: str, learn_sigma: bool) -> None:
    cfg = nets.config(name)
    assert (cfg.prediction, cfg.noise_input, cfg.learn_sigma) == (prediction, noise_input, learn_sigma)


def test_learned_sigma_doubles_output_channels() -> None:
    with torch.device("meta"):
        net = nets.build("iddpm_cifar10")
    assert net.out[-1].out_channels == 6


def test_unknown_name_is_named() -> None:
    with pytest.raises(ValueError, match="'ddpm_imagenet'"):
        nets.build("ddpm_imagenet")
    with pytest.raises(ValueError, match="unknown network"):
        nets.config("nope")


def test_unknown_field_is_named() -> None:
    with pytest.raises(TypeError, match="'channel_multiplier'"):
        nets.build("ddpm_cifar10", channel_multiplier=(1, 2))


def test_invalid_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="progressive"):
        nets.build("ncsnpp_cifar10_ve", progressive="residual")
    with pytest.raises(ValueError, match="noise_input"):
        nets.build("ncsn_cifar10", noise_input="sigma")
    with pytest.raises(ValueError, match="num_head_channels"):
        nets.build("adm_64", num_head_channels=100)


def test_overrides_replace_fields() -> None:
    with torch.device("meta"):
        net = nets.build("ddpm_cifar10", ch=64)
    assert net.config.ch == 64 and nets.config("ddpm_cifar10").ch == 128
