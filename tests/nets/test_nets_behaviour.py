"""Behaviour of the tiny versions of every named network: shapes, conditioning, gradients, numerics, errors.

The official networks start some layers at zero (ADM, iDDPM) or at 1e-10 scale (NCSN++, DDPM++), so at
initialisation their output ignores the noise level and upstream parameters get zero gradient. Tests of
conditioning and of gradient reachability therefore first perturb every trainable parameter by a small
random amount (``perturbed``); the zero start itself is checked on the unperturbed networks.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from diffcheck import nets

NAMES = nets.names("image")
CONDITIONAL = [n for n in NAMES if nets.config(n).label_classes is not None]
ZERO_START = ["iddpm_cifar10", "adm_64", "adm_256"]


def tiny(name: str, *, seed: int = 0, **overrides: object) -> nn.Module:
    """The tiny version of a named network in eval mode."""
    return nets.build(name, seed=seed, **{**nets.tiny_overrides(name), **overrides}).eval()


@torch.no_grad()
def perturbed(net: nn.Module, seed: int = 1, scale: float = 0.05) -> nn.Module:
    """Add N(0, scale²) noise to every trainable parameter, so that zero-initialised layers pass signal."""
    g = torch.Generator().manual_seed(seed)
    for p in net.parameters():
        if p.requires_grad:
            p.add_(scale * torch.randn(p.shape, generator=g))
    return net


def noise_values(cfg: nets.NetConfig, batch: int, g: torch.Generator) -> Tensor:
    """Draw valid noise inputs of the kind the network expects."""
    if cfg.noise_input == "sigma_index":
        return torch.randint(0, cfg.num_classes, (batch,), generator=g)  # type: ignore[attr-defined]
    if cfg.noise_input == "sigma":
        return torch.exp(torch.empty(batch).uniform_(math.log(0.01), math.log(50.0), generator=g))
    if cfg.noise_input == "timestep_1000":
        return torch.rand(batch, generator=g) * 1000
    return torch.rand(batch, generator=g) * 999


def other_noise(cfg: nets.NetConfig, noise: Tensor) -> Tensor:
    """A different valid noise input for every sample."""
    if cfg.noise_input == "sigma_index":
        return (noise + 1) % cfg.num_classes  # type: ignore[attr-defined]
    if cfg.noise_input == "sigma":
        return 2 * noise
    return (noise + 250) % 999


def inputs(cfg: nets.NetConfig, batch: int, size: int | None = None, seed: int = 2
           ) -> tuple[Tensor, Tensor, Tensor | None]:
    """An image batch, noise inputs and (for class-conditional networks) labels."""
    g = torch.Generator().manual_seed(seed)
    channels, height, _ = cfg.data_shape
    size = height if size is None else size
    x = torch.randn(batch, channels, size, size, generator=g)
    noise = noise_values(cfg, batch, g)
    y = None if cfg.label_classes is None else torch.randint(0, cfg.label_classes, (batch,), generator=g)
    return x, noise, y


def expected_shape(cfg: nets.NetConfig, batch: int, size: int) -> tuple[int, ...]:
    """Logits for the classifier; an image with the ε (and variance) channels otherwise."""
    if cfg.prediction == "logits":
        return (batch, cfg.num_classes)  # type: ignore[attr-defined]
    channels = cfg.data_shape[0] * (2 if cfg.learn_sigma else 1)
    return (batch, channels, size, size)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("size", [16, 32])
def test_output_shape(name: str, batch: int, size: int) -> None:
    # The attention-pooling classifier has a positional embedding per position: build it for each size.
    net = tiny(name, image_size=size) if nets.config(name).prediction == "logits" else tiny(name)
    x, noise, y = inputs(net.config, batch, size)
    with torch.no_grad():
        out = net(x, noise, y)
    assert out.shape == expected_shape(net.config, batch, size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_noise_input_changes_output(name: str) -> None:
    net = perturbed(tiny(name))
    x, noise, y = inputs(net.config, 2)
    other = other_noise(net.config, noise)
    assert torch.all(other != noise)
    with torch.no_grad():
        a, b = net(x, noise, y), net(x, other, y)
    assert (a - b).abs().amax() > 1e-3 * a.abs().amax()


@pytest.mark.parametrize("name", CONDITIONAL)
def test_label_changes_output(name: str) -> None:
    net = perturbed(tiny(name))
    x, noise, y = inputs(net.config, 2)
    assert y is not None
    with torch.no_grad():
        a, b = net(x, noise, y), net(x, noise, (y + 1) % net.config.label_classes)
    assert (a - b).abs().amax() > 1e-3 * a.abs().amax()


@pytest.mark.parametrize("name", ZERO_START)
def test_zero_initialised_output(name: str) -> None:
    """iDDPM/ADM zero the last conv of each block, the attention output and the output conv."""
    net = tiny(name)
    x, noise, y = inputs(net.config, 2)
    with torch.no_grad():
        assert torch.equal(net(x, noise, y), torch.zeros(expected_shape(net.config, 2, 16)))


@pytest.mark.parametrize("name", ["ncsnpp_cifar10_ve", "ddpmpp_cifar10_vp"])
def test_score_sde_output_starts_near_zero(name: str) -> None:
    """score_sde initialises the output conv at variance scale 1e-10: outputs ~1e-5 of a unit-scale net."""
    net = tiny(name)
    x, noise, y = inputs(net.config, 2)
    with torch.no_grad():
        start = net(x, noise, y).abs().amax()
        after = perturbed(net)(x, noise, y).abs().amax()
    assert 0 < start < 1e-3 * after


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_gets_a_gradient(name: str) -> None:
    net = perturbed(tiny(name)).train()
    x, noise, y = inputs(net.config, 3)
    out = net(x, noise, y)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
    (out * weights).sum().backward()
    trainable = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    missing = [n for n, p in trainable if p.grad is None or not torch.any(p.grad != 0)]
    assert trainable and not missing


def test_zero_start_blocks_gradients_without_perturbation() -> None:
    """Why the gradient test perturbs: with ADM's zero start, everything before the output conv gets no gradient."""
    net = tiny("adm_64")
    x, noise, y = inputs(net.config, 2)
    net(x, noise, y).sum().backward()
    first_conv = next(p for n, p in net.named_parameters() if n.endswith("weight") and p.dim() == 4)
    assert first_conv.grad is None or torch.all(first_conv.grad == 0)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_for_a_seed(name: str) -> None:
    a, b, c = tiny(name, seed=11), tiny(name, seed=11), tiny(name, seed=12)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
    x, noise, y = inputs(a.config, 2)
    with torch.no_grad():
        assert torch.equal(perturbed(a)(x, noise, y), perturbed(b)(x, noise, y))


def test_seeded_build_leaves_global_rng_alone() -> None:
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    tiny("ddpm_cifar10", seed=0)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("name", NAMES)
def test_samples_are_independent_of_the_batch(name: str) -> None:
    """All normalisations are per sample: output i depends on input i alone (eval mode)."""
    net = perturbed(tiny(name))
    x, noise, y = inputs(net.config, 3)
    with torch.no_grad():
        whole = net(x, noise, y)
        one = torch.cat([net(x[i : i + 1], noise[i : i + 1], None if y is None else y[i : i + 1])
                         for i in range(3)])
    torch.testing.assert_close(one, whole, rtol=1e-4, atol=1e-4 * whole.abs().amax().item())


@pytest.mark.parametrize("name", NAMES)
def test_bf16_autocast_runs_and_stays_close(name: str) -> None:
    """bf16 keeps 8 mantissa bits (unit roundoff 2⁻⁹); tiny nets chain a few dozen roundings, so within 10%."""
    net = perturbed(tiny(name))
    x, noise, y = inputs(net.config, 2)
    with torch.no_grad():
        exact = net(x, noise, y)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net(x, noise, y)
    assert torch.isfinite(low).all()
    assert (low.float() - exact).norm() < 0.1 * exact.norm()


@pytest.mark.parametrize("name", NAMES)
def test_wrong_channel_count_is_rejected(name: str) -> None:
    net = tiny(name)
    x, noise, y = inputs(net.config, 2)
    with pytest.raises(ValueError, match="input channels"):
        net(torch.cat([x, x], dim=1), noise, y)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_noise_shape_is_rejected(name: str) -> None:
    net = tiny(name)
    x, noise, y = inputs(net.config, 2)
    with pytest.raises(ValueError, match="noise must have shape"):
        net(x, noise[:1], y)


@pytest.mark.parametrize(("name", "size"), [("ddpm_cifar10", 9), ("adm_64", 6), ("ncsnv2_deeper", 6),
                                          ("ncsnpp_cifar10_ve", 6), ("ncsn_cifar10", 9)])
def test_indivisible_size_is_rejected(name: str, size: int) -> None:
    """Sides must halve evenly at every downsampling (2 levels: even; 3 levels or two poolings: ×4)."""
    net = tiny(name)
    x, noise, y = inputs(net.config, 1, size=size)
    with pytest.raises(ValueError, match="multiples of"):
        net(x, noise, y)


@pytest.mark.parametrize("name", CONDITIONAL)
def test_missing_labels_are_rejected(name: str) -> None:
    net = tiny(name)
    x, noise, _ = inputs(net.config, 2)
    with pytest.raises(ValueError, match="pass labels"):
        net(x, noise)
    with pytest.raises(ValueError, match="integer tensor"):
        net(x, noise, torch.zeros(2))


@pytest.mark.parametrize("name", [n for n in NAMES if n not in CONDITIONAL])
def test_labels_to_unconditional_are_rejected(name: str) -> None:
    net = tiny(name)
    x, noise, _ = inputs(net.config, 2)
    with pytest.raises(ValueError, match="not class-conditional"):
        net(x, noise, torch.zeros(2, dtype=torch.long))


def test_ncsn_needs_integer_indices() -> None:
    net = tiny("ncsn_cifar10")
    x, noise, _ = inputs(net.config, 2)
    with pytest.raises(TypeError, match="integer"):
        net(x, noise.float())


def test_classifier_needs_its_image_size() -> None:
    net = tiny("adm_classifier_128")
    x, noise, _ = inputs(net.config, 1, size=32)
    with pytest.raises(ValueError, match="build the classifier for this image size"):
        net(x, noise)


def test_ncsnv2_output_is_divided_by_sigma() -> None:
    """Technique 3 of Song & Ermon 2020: s(x, σ) = s(x)/σ exactly."""
    net = perturbed(tiny("ncsnv2_cifar10"))
    x, _, _ = inputs(net.config, 2)
    with torch.no_grad():
        a = net(x, torch.tensor([1.0, 1.0]))
        b = net(x, torch.tensor([0.5, 4.0]))
    torch.testing.assert_close(b, a / torch.tensor([0.5, 4.0])[:, None, None, None])


@pytest.mark.parametrize("name", ["ncsn_cifar10", "ncsnv2_cifar10", "ncsnpp_cifar10_ve"])
def test_uncentred_input_is_mapped_to_minus_one_one(name: str) -> None:
    """With centered=False the network sees 2x − 1, as the official code for [0, 1] data."""
    raw = perturbed(tiny(name))
    centred = perturbed(tiny(name, centered=True))
    x, noise, y = inputs(raw.config, 2)
    with torch.no_grad():
        torch.testing.assert_close(raw(x, noise, y), centred(2 * x - 1, noise, y))


@pytest.mark.slow
def test_torch_compile_agrees_with_eager() -> None:
    net = perturbed(tiny("ncsnpp_cifar10_ve"))
    x, noise, y = inputs(net.config, 2)
    compiled = torch.compile(net)
    with torch.no_grad():
        eager, fast = net(x, noise, y), compiled(x, noise, y)
    torch.testing.assert_close(fast, eager, rtol=1e-4, atol=1e-4 * eager.abs().amax().item())
