"""The toy networks and their wrapping into models of a process: shapes, conditioning, scalings, argument checks."""

import math

import pytest
import torch

from diffcheck.learned import ToyClassifierModel, ToyModel, noise_input
from diffcheck.nets.toy import ToyClassifierConfig, ToyNetConfig, parameter_count
from diffcheck.process import VE, VP, DiscreteVP
from diffcheck.variance import split_output


def _net(**kw):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return ToyNetConfig(**kw).build()


def test_denoiser_shapes_and_learned_variance_layout():
    x, noise = torch.randn(5, 3), torch.rand(5)
    assert _net(dim=3)(x, noise).shape == (5, 3)
    assert _net(dim=3, learn_sigma=True)(x, noise).shape == (5, 6)
    clf = ToyClassifierConfig(dim=3, classes=4).build()
    assert clf(x, noise).shape == (5, 4)


def test_null_label_is_the_unconditional_model():
    net = _net(label_classes=3)
    x, noise = torch.randn(6, 2), torch.rand(6)
    assert torch.equal(net(x, noise), net(x, noise, y=torch.full((6,), 3)))
    assert not torch.equal(net(x, noise, y=torch.zeros(6, dtype=torch.int64)), net(x, noise))
    assert net.null_label == 3


def test_fourier_features_are_fixed():
    net = _net(embedding="fourier", noise_input="log_sigma")
    frozen = [name for name, p in net.named_parameters() if not p.requires_grad]
    assert frozen == ["embed.fourier.frequencies"]
    assert parameter_count(net) == sum(p.numel() for p in net.parameters()) - net.embed.fourier.frequencies.numel()


@pytest.mark.parametrize("kw, name", [
    (dict(embedding="wavelet"), "embedding"), (dict(noise_input="sigma"), "noise_input"), (dict(embed_dim=7), "embed_dim"),
    (dict(prediction="v"), "prediction"), (dict(label_classes=0), "label_classes"), (dict(hidden=0), "hidden"),
    (dict(embed_scale=-1.0), "embed_scale"),
])
def test_config_errors_name_the_argument(kw, name):
    with pytest.raises((ValueError, TypeError), match=name):
        ToyNetConfig(**kw)


def test_input_errors_name_the_argument():
    net = _net(label_classes=2)
    with pytest.raises(ValueError, match="x must have shape"):
        net(torch.randn(4, 3), torch.rand(4))
    with pytest.raises(ValueError, match="noise"):
        net(torch.randn(4, 2), torch.rand(3))
    with pytest.raises(ValueError, match="y must lie"):
        net(torch.randn(4, 2), torch.rand(4), y=torch.full((4,), 5))
    with pytest.raises(ValueError, match="y must be integer"):
        net(torch.randn(4, 2), torch.rand(4), y=torch.zeros(4))
    with pytest.raises(ValueError, match="unconditional"):
        _net()(torch.randn(4, 2), torch.rand(4), y=torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="takes no labels"):
        ToyClassifierConfig().build()(torch.randn(4, 2), torch.rand(4), y=torch.zeros(4, dtype=torch.int64))


def test_model_scalings_match_their_formulas():
    # c_in = 1/sqrt(alpha^2 s_d^2 + sigma^2), c_out = 1/sigma for a score, noise input t: written out independently
    vp = VP()
    net = _net(prediction="score")
    model = ToyModel(net, vp, data_std=2.0)
    x = torch.randn(7, 2, dtype=torch.float64)
    t = torch.linspace(0.05, 0.95, 7, dtype=torch.float64)
    log_mean = -0.25 * t**2 * (20.0 - 0.1) - 0.5 * t * 0.1
    a, s = torch.exp(log_mean), torch.sqrt(1.0 - torch.exp(2.0 * log_mean))
    c_in = 1.0 / torch.sqrt(4.0 * a * a + s * s)
    want = net((c_in[:, None] * x).float(), t.float()).double() / s[:, None]
    assert torch.allclose(model(x, t), want, rtol=1e-5, atol=0)
    assert model(x, t).dtype == torch.float64
    # a scalar time is every sample's time
    assert torch.equal(model(x, 0.3), model(x, torch.full((7,), 0.3, dtype=torch.float64)))


def test_log_sigma_input_is_log_of_the_noise_level():
    ve = VE(sigma_min=0.01, sigma_max=10.0)
    t = torch.tensor([0.2, 0.7], dtype=torch.float64)
    sigma = 0.01 * torch.sqrt(torch.expm1(2.0 * t * math.log(1000.0)))  # exact VE kernel
    assert torch.allclose(noise_input("log_sigma", ve, t), torch.log(sigma), rtol=1e-12, atol=0)
    assert torch.equal(noise_input("time", ve, t), t)
    with pytest.raises(ValueError, match="noise_input"):
        noise_input("sigma", ve, t)


def test_learned_variance_model_is_read_by_split_output():
    model = ToyModel(_net(learn_sigma=True), DiscreteVP.cosine(), data_std=1.0)
    x = torch.randn(4, 2, dtype=torch.float64)
    mean, v_raw = split_output(model, x, 0.5)
    assert torch.equal(mean, model(x, 0.5))
    assert torch.equal(torch.cat([mean, v_raw], 1), model.forward_full(x, 0.5))


def test_model_argument_errors():
    model = ToyModel(_net(), VP(), data_std=1.0)
    with pytest.raises(ValueError, match="t must lie"):
        model(torch.randn(3, 2), 1.5)
    with pytest.raises(ValueError, match="t must be a scalar"):
        model(torch.randn(3, 2), torch.rand(2))
    with pytest.raises(TypeError, match="x must be"):
        model(torch.randn(3), 0.5)
    with pytest.raises(ValueError, match="data_std"):
        ToyModel(_net(), VP(), data_std=0.0)
    with pytest.raises(TypeError, match="ToyDenoiser"):
        ToyModel(ToyClassifierConfig().build(), VP(), 1.0)
    with pytest.raises(TypeError, match="ToyClassifier"):
        ToyClassifierModel(_net(), VP(), 1.0)
    clf = ToyClassifierModel(ToyClassifierConfig().build(), VP(), 1.0)
    assert torch.allclose(clf.log_probs(torch.randn(3, 2), 0.5).exp().sum(-1), torch.ones(3, dtype=torch.float32))
