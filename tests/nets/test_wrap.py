"""Networks wrapped as models: each noise-input mapping against the official codes' formulas, written here
independently; the change of variables for σ-conditioned networks against exact mixture scores; and every named
configuration's tiny version, wrapped, for shapes, labels and variance channels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import toy
from diffcheck import nets
from diffcheck import process as P
from diffcheck.exact import ExactModel
from diffcheck.nets.wrap import as_classifier, wrap_net


@dataclasses.dataclass(frozen=True)
class FakeConfig:
    """The metadata a wrapped network must carry."""

    prediction: str
    noise_input: str
    data_shape: tuple[int, int, int] = (1, 2, 2)
    data_range: tuple[float, float] = (-1.0, 1.0)
    learn_sigma: bool = False
    label_classes: int | None = None
    num_classes: int | None = None


class Spy(nn.Module):
    """Records the noise input and labels it receives; returns a copy of x (twice over with ``learn_sigma``)."""

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        self.weight = nn.Parameter(torch.ones((), dtype=torch.float64))
        self.noise: Tensor | None = None
        self.y = None
        self.x: Tensor | None = None

    def forward(self, x: Tensor, noise: Tensor, y=None) -> Tensor:
        self.noise, self.y, self.x = noise, y, x
        out = x * self.weight
        return torch.cat([out, -out], 1) if self.config.learn_sigma else out


def fed(config, process, t, **kw) -> Tensor:
    """The noise input a wrapped network receives at times t."""
    spy = Spy(config)
    x = torch.zeros(len(t), *config.data_shape, dtype=torch.float64)
    wrap_net(spy, process, **kw)(x, t)
    return spy.noise


# --------------------------------------------------------------------------- the mappings, formula by formula


def test_ddpm_timestep_is_the_zero_based_index_of_the_official_loop():
    # ermongroup/ddim: betas = linspace(1e-4, 0.02, 1000); at loop index i the input was noised with
    # alphas_cumprod[i] = prod_{j<=i}(1 - beta_j), and the network is called as model(x, i).
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    alphas_cumprod = np.cumprod(1.0 - betas)
    process = P.DiscreteVP.linear()
    code = torch.tensor([0, 1, 2, 17, 499, 998, 999])
    t = (code + 1).double() / 1000
    # the time whose noise is the code's step i: alpha(t)^2 = alphas_cumprod[i]
    np.testing.assert_allclose(process.alpha(t).numpy() ** 2, alphas_cumprod[code.numpy()], rtol=1e-12)
    cfg = FakeConfig("eps", "timestep_1000")
    assert torch.equal(fed(cfg, process, t), code.double())
    # float32 times carry rounding; the network still sees the code's integers
    assert torch.equal(fed(cfg, process, t.float()), code.double())


def test_iddpm_rescales_the_original_index_by_1000_over_T_also_on_a_respaced_grid():
    # improved-diffusion: _WrappedModel maps respaced indices to the original ones (timestep_map) and
    # with rescale_timesteps feeds timestep_map[i] * 1000 / num_timesteps.
    T = 4000
    process = P.DiscreteVP.cosine(T)
    kept = P.iddpm_steps(T, "50")  # 1-based original steps kept by respacing
    timestep_map = kept - 1
    cfg = FakeConfig("eps", "timestep_1000")
    t = kept.double() / T
    assert torch.equal(fed(cfg, process, t), timestep_map.double() * (1000.0 / T))
    assert torch.equal(fed(cfg, process, t, rescale_timesteps=False), timestep_map.double())
    assert torch.equal(fed(cfg, P.DiscreteVP.linear(), torch.tensor([0.5]), rescale_timesteps=True), torch.tensor([499.0],
                                                                                                                dtype=torch.float64))


def test_timestep_needs_a_step_count_off_a_discrete_table():
    cfg = FakeConfig("eps", "timestep_1000")
    with pytest.raises(ValueError, match="T="):
        fed(cfg, P.VP(), torch.tensor([0.5]))
    assert torch.equal(fed(cfg, P.VP(), torch.tensor([0.5, 1.0]), T=1000), torch.tensor([499.0, 999.0], dtype=torch.float64))


def test_ddpmpp_time_999():
    # score_sde: labels = t * 999 for the continuous VP SDE, t in [eps, 1]
    t = torch.tensor([1e-3, 0.25, 0.5, 1.0], dtype=torch.float64)
    assert torch.equal(fed(FakeConfig("eps", "time_999"), P.VP(), t), 999.0 * t)


def test_ncsnpp_sigma_is_the_ve_marginal_std():
    # score_sde VESDE.marginal_prob: std = sigma_min * (sigma_max / sigma_min) ** t, fed to the network as is
    t = torch.tensor([1e-5, 0.1, 0.5, 1.0], dtype=torch.float64)
    official = 0.01 * (50.0 / 0.01) ** t
    cfg = FakeConfig("score", "sigma", data_range=(0.0, 1.0))
    torch.testing.assert_close(fed(cfg, P.VE(0.01, 50.0, kernel="official"), t), official, rtol=1e-14, atol=0)
    # the exact kernel's std is sqrt(sigma(t)^2 - sigma_min^2)
    torch.testing.assert_close(fed(cfg, P.VE(0.01, 50.0, kernel="exact"), t), (official**2 - 0.01**2).sqrt(),
                               rtol=1e-12, atol=0)


def test_ncsnv2_sigma_on_its_ladder_and_sigma_over_alpha_on_vp():
    # ncsnv2: sigmas = exp(linspace(log 50, log 0.01, 232)); the network divides by sigmas[k] at label k
    ladder = torch.from_numpy(np.exp(np.linspace(np.log(50.0), np.log(0.01), 232)))
    process = P.VE(0.01, 50.0, kernel="official")
    t = P.sigma_grid(process, ladder)
    cfg = FakeConfig("score", "sigma", data_range=(0.0, 1.0))
    torch.testing.assert_close(fed(cfg, process, t), ladder, rtol=1e-12, atol=0)
    # on a VP process the network sees the noise of x / alpha: sigma / alpha
    vp = P.VP()
    tv = torch.tensor([0.01, 0.3, 0.9], dtype=torch.float64)
    b = 0.1 * tv + 0.5 * 19.9 * tv**2
    torch.testing.assert_close(fed(cfg, vp, tv), torch.sqrt(torch.expm1(b)), rtol=1e-12, atol=0)


def test_ncsn_sigma_index_nearest_level_or_error():
    # ermongroup/ncsn anneal.yml: sigmas = exp(linspace(log 1, log 0.01, 10)); label k means sigmas[k]
    sigmas = np.exp(np.linspace(np.log(1.0), np.log(0.01), 10))
    cfg = FakeConfig("score", "sigma_index", data_range=(0.0, 1.0), num_classes=10)
    # the exact kernel's σ(1) = sqrt(σ_max² − σ_min²) must reach the top level: σ_max = 2 there
    for process in (P.VE(0.01, 1.0, kernel="official"), P.VE(0.005, 2.0, kernel="exact")):
        t = P.sigma_grid(process, torch.from_numpy(sigmas))
        assert torch.equal(fed(cfg, process, t), torch.arange(10))
        assert torch.equal(fed(cfg, process, t.float()), torch.arange(10))
    process = P.VE(0.01, 1.0, kernel="official")
    with pytest.raises(ValueError, match="not on the network's σ ladder"):
        fed(cfg, process, torch.tensor([0.5 / 9], dtype=torch.float64))  # half-way between two levels
    with pytest.raises(ValueError, match="levels"):
        fed(cfg, process, torch.tensor([1.0]), sigmas=torch.ones(3))
    # an explicit ladder of the right length is used as given
    custom = torch.from_numpy(np.exp(np.linspace(np.log(0.5), np.log(0.05), 10)))
    t = P.sigma_grid(P.VE(0.05, 0.5, kernel="official"), custom)
    assert torch.equal(fed(cfg, P.VE(0.05, 0.5, kernel="official"), t, sigmas=custom), torch.arange(10))


def test_sigma_index_networks_receive_integer_indices():
    net = nets.build("ncsn_cifar10", seed=0, **nets.tiny_overrides("ncsn_cifar10")).eval()
    process = P.VE(0.01, 1.0, kernel="official")
    model = wrap_net(net, process)
    t = P.sigma_grid(process, P.geometric_sigmas(1.0, 0.01, net.config.num_classes))
    x = torch.rand(len(t), *net.config.data_shape)
    with torch.no_grad():
        torch.testing.assert_close(model(x, t), net(x, torch.arange(len(t))), rtol=0, atol=0)


# --------------------------------------------------------------------------- change of variables, against exact scores


def random_mixture(dim: int, seed: int) -> toy.GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    means = 0.4 * torch.randn(3, dim, generator=g, dtype=torch.float64)
    a = torch.randn(3, dim, dim, generator=g, dtype=torch.float64) * 0.15
    covs = a @ a.transpose(-1, -2) + 0.02 * torch.eye(dim, dtype=torch.float64)
    return toy.GaussianMixture(torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64), means, covs)


def affine(m: toy.GaussianMixture, a: float, b: float) -> toy.GaussianMixture:
    """The law of a X + b."""
    return toy.GaussianMixture(m.weights, a * m.means + b, a * a * m.covs)


class SigmaScoreNet(nn.Module):
    """The exact score of ``mixture`` + σ z in the network's units, conditioned on σ or on a ladder index."""

    def __init__(self, mixture, config, sigmas: Tensor | None = None) -> None:
        super().__init__()
        self.mixture, self.config, self.sigmas = mixture, config, sigmas

    def forward(self, x: Tensor, noise: Tensor, y=None) -> Tensor:
        sigma = self.sigmas[noise] if self.sigmas is not None else noise
        law = self.mixture.noised(torch.ones_like(sigma), sigma)
        return law.score(x.reshape(x.shape[0], -1)).reshape(x.shape)


class DDPMEpsNet(nn.Module):
    """The exact ε of ``mixture`` at the official code's 0-based step index, from its own alphas_cumprod."""

    def __init__(self, mixture, config) -> None:
        super().__init__()
        self.mixture, self.config = mixture, config
        self.alphas_cumprod = torch.from_numpy(np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000)))

    def forward(self, x: Tensor, noise: Tensor, y=None) -> Tensor:
        assert torch.equal(noise, noise.round())
        ab = self.alphas_cumprod[noise.long()]
        law = self.mixture.noised(ab.sqrt(), (1 - ab).sqrt())
        return (-(1 - ab).sqrt()[:, None] * law.score(x.reshape(x.shape[0], -1))).reshape(x.shape)


def test_sigma_network_in_unit_range_wrapped_on_vp_in_symmetric_range_gives_the_exact_score(gen):
    # A network trained on [0, 1] data with x = x_0 + σ z, used as a model of x_t = α x_0 + σ ε with x_0 in [−1, 1]:
    # x_0' = (x_0 + 1)/2, so the model's score must be the exact score of the [−1, 1] mixture under VP.
    m = random_mixture(4, 0)
    cfg = FakeConfig("score", "sigma", data_range=(0.0, 1.0))
    net = SigmaScoreNet(affine(m, 0.5, 0.5), cfg)
    for process in (P.VP(), P.VE(0.01, 50.0), P.CosineVP()):
        model = wrap_net(net, process, data_range=(-1.0, 1.0))
        assert model.data_range == (-1.0, 1.0)
        exact = ExactModel(m, process, "score")
        t = torch.rand(64, generator=gen, dtype=torch.float64) * 0.98 + 0.01
        x = process.marginal(m, t).sample(64, gen).reshape(64, 1, 2, 2)
        torch.testing.assert_close(model(x, t), exact(x, t), rtol=1e-10, atol=1e-10)
        # the default keeps the network's own range: then it is the exact score of the [0, 1] mixture
        own = wrap_net(net, process)
        x01 = process.marginal(affine(m, 0.5, 0.5), t).sample(64, gen).reshape(64, 1, 2, 2)
        torch.testing.assert_close(own(x01, t), ExactModel(affine(m, 0.5, 0.5), process, "score")(x01, t),
                                   rtol=1e-10, atol=1e-10)


def test_sigma_index_network_gives_the_exact_score_on_its_ladder(gen):
    m = random_mixture(4, 1)
    ladder = torch.from_numpy(np.exp(np.linspace(np.log(1.0), np.log(0.01), 10)))
    cfg = FakeConfig("score", "sigma_index", data_range=(0.0, 1.0), num_classes=10)
    net = SigmaScoreNet(affine(m, 0.5, 0.5), cfg, sigmas=ladder)
    # in [−1, 1] units the noise is twice the ladder's: a VE process from 0.02 to 2 walks it
    process = P.VE(0.02, 2.0, kernel="official")
    model = wrap_net(net, process, data_range=(-1.0, 1.0))
    t = P.sigma_grid(process, 2 * ladder).repeat(4)
    x = process.marginal(m, t).sample(len(t), gen).reshape(len(t), 1, 2, 2)
    torch.testing.assert_close(model(x, t), ExactModel(m, process, "score")(x, t), rtol=1e-10, atol=1e-10)


def test_ddpm_network_gives_the_exact_eps_and_an_off_by_one_would_not(gen):
    m = random_mixture(4, 2)
    net = DDPMEpsNet(m, FakeConfig("eps", "timestep_1000"))
    process = P.DiscreteVP.linear()
    steps = torch.tensor([1, 2, 3, 10, 100, 500, 999, 1000]).repeat(8)
    t = steps.double() / 1000
    x = process.marginal(m, t).sample(len(t), gen).reshape(len(t), 1, 2, 2)
    exact = ExactModel(m, process, "eps")(x, t)
    torch.testing.assert_close(wrap_net(net, process)(x, t), exact, rtol=1e-10, atol=1e-10)
    # fed the 1-based step t·T instead, the same network is measurably wrong
    wrong = net(x, steps.clamp(max=999).double())
    assert (wrong - exact).abs().max() > 1e-3


def test_ncsnv2_in_unit_range_equals_the_centered_network_with_the_same_weights(gen):
    # NCSNv2's output is s(2x' − 1)/σ'; with x' = (x + 1)/2 and σ' = σ/2 the wrapped score (1/2)·s(x)/(σ/2)
    # equals the centered network's s(x)/σ exactly (the noise level enters only through the division).
    unit = nets.build("ncsnv2_cifar10", seed=3, **nets.tiny_overrides("ncsnv2_cifar10")).eval().double()
    centered = nets.build("ncsnv2_cifar10", seed=3, centered=True, **nets.tiny_overrides("ncsnv2_cifar10")).eval().double()
    process = P.VE(0.01, 50.0)
    t = torch.rand(3, generator=gen, dtype=torch.float64)
    x = torch.randn(3, *unit.config.data_shape, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(wrap_net(unit, process, data_range=(-1, 1))(x, t),
                                   wrap_net(centered, process)(x, t), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- every named configuration


def process_for(cfg) -> tuple[P.Process, Tensor]:
    """A process the network can serve and three times on it."""
    if cfg.noise_input == "timestep_1000":
        return P.DiscreteVP.linear(), torch.tensor([0.001, 0.5, 1.0])
    if cfg.noise_input == "time_999":
        return P.VP(), torch.tensor([0.001, 0.5, 1.0])
    if cfg.noise_input == "sigma_index":
        process = P.VE(0.01, 1.0, kernel="official")
        return process, P.sigma_grid(process, P.geometric_sigmas(1.0, 0.01, cfg.num_classes))[[0, 1, -1]]
    return P.VE(0.01, 50.0), torch.tensor([1e-5, 0.5, 1.0])


@pytest.mark.parametrize("name", nets.names("image"))
def test_every_tiny_named_network_wrapped_predicts_the_input_shape(name, gen):
    net = nets.build(name, seed=0, **nets.tiny_overrides(name)).eval()
    cfg = net.config
    process, t = process_for(cfg)
    x = torch.rand(3, *cfg.data_shape, generator=gen) * 2 - 1
    kw = {} if cfg.label_classes is None else {"y": torch.tensor([0, 1, 2])}
    with torch.no_grad():
        if cfg.prediction == "logits":
            with pytest.raises(ValueError, match="as_classifier"):
                wrap_net(net, process)
            clf = as_classifier(net, process)
            assert clf(x, t).shape == (3, cfg.num_classes)
            assert clf(x, float(t[1])).shape == (3, cfg.num_classes)
            return
        model = wrap_net(net, process)
        assert model.prediction in ("eps", "score") and model.prediction == cfg.prediction
        out_per_sample = model(x, t, **kw)
        out_scalar = model(x, t[1], **kw)
        assert out_per_sample.shape == x.shape and out_scalar.shape == x.shape
        assert torch.isfinite(out_per_sample).all() and torch.isfinite(out_scalar).all()
        # a scalar time is the same as that time for every sample
        torch.testing.assert_close(out_scalar, model(x, t[1].expand(3), **kw), rtol=0, atol=0)
        if cfg.learn_sigma:
            full = model.forward_full(x, t, **kw)
            assert full.shape == (3, 2 * cfg.data_shape[0], *cfg.data_shape[1:])
            torch.testing.assert_close(full[:, : cfg.data_shape[0]], out_per_sample, rtol=0, atol=0)
            torch.testing.assert_close(model.variance_output(x, t, **kw), full[:, cfg.data_shape[0]:], rtol=0, atol=0)
        else:
            with pytest.raises(ValueError, match="no variance output"):
                model.variance_output(x, t, **kw)


def test_labels_and_variance_channels_pass_through():
    cfg = FakeConfig("eps", "timestep_1000", learn_sigma=True, label_classes=5)
    spy = Spy(cfg)
    model = wrap_net(spy, P.DiscreteVP.linear())
    x = torch.randn(2, 1, 2, 2, dtype=torch.float64)
    y = torch.tensor([3, 1])
    out = model(x, 0.5, y=y)
    assert spy.y is y
    torch.testing.assert_close(out, x, rtol=0, atol=0)
    torch.testing.assert_close(model.variance_output(x, 0.5, y=y), -x, rtol=0, atol=0)


def test_wrapping_rejects_bad_input():
    spy = Spy(FakeConfig("eps", "time_999"))
    with pytest.raises(TypeError, match="process"):
        wrap_net(spy, "vp")
    with pytest.raises(TypeError, match="config"):
        wrap_net(nn.Linear(2, 2), P.VP())
    with pytest.raises(ValueError, match="data_range"):
        wrap_net(spy, P.VP(), data_range=(0.0, 1.0))  # a time-conditioned network's range is fixed
    with pytest.raises(ValueError, match="data_range"):
        wrap_net(Spy(FakeConfig("score", "sigma")), P.VE(), data_range=(1.0, 0.0))
    model = wrap_net(spy, P.VP())
    x = torch.zeros(2, 1, 2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model(x, 1.5)
    with pytest.raises(ValueError, match="shape"):
        model(x, torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="wrap_net"):
        as_classifier(spy, P.VP())
    with pytest.raises(ValueError, match="noise_input"):
        wrap_net(Spy(FakeConfig("eps", "log_sigma")), P.VP())
