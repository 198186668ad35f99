"""The answer key: GaussianMixture API, numerics at extremes, invariances and bad input."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as hst

import toy
from diffcheck.testing.strategies import mixtures

# -- presets --------------------------------------------------------------------------------


def test_ncsn_two_modes_matches_the_paper():
    m = toy.two_modes()
    assert m.weights.tolist() == [0.2, 0.8]
    assert m.means.tolist() == [[-5.0, -5.0], [5.0, 5.0]]
    assert torch.equal(m.covs, torch.eye(2, dtype=torch.float64).expand(2, 2, 2))


@pytest.mark.parametrize("name", sorted(toy.PRESETS))
def test_every_preset_builds_samples_and_scores(name, gen):
    m = toy.preset(name)
    x = m.sample(50, gen)
    assert x.shape == (50, m.dim) and x.dtype == torch.float64
    assert torch.isfinite(m.score(x)).all() and torch.isfinite(m.log_prob(x)).all()
    assert float(m.weights.sum()) == pytest.approx(1.0, abs=1e-12)


def test_preset_sizes():
    assert toy.ring().num_components == 8
    assert toy.grid().num_components == 25
    assert toy.three_classes().classes.tolist() == [0, 1, 2]
    v = toy.ar1_video(frames=5, frame_dim=3)
    assert v.dim == 15 and v.frames == 5 and v.frame_dim == 3
    assert v.frame_coords([1]).tolist() == [3, 4, 5]


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        toy.preset("nope")


def test_ar1_video_covariance_is_exact():
    v = toy.ar1_video(frames=4, frame_dim=2, rho=0.7, std=2.0)
    c = v.covs[0]
    assert float(c[0, 2]) == pytest.approx(4.0 * 0.7)  # frame 0 vs frame 1, same coordinate
    assert float(c[0, 6]) == pytest.approx(4.0 * 0.7**3)
    assert float(c[0, 1]) == 0.0  # different coordinates are independent


# -- moments and sampling ---------------------------------------------------------------------


def test_mixture_mean_and_covariance_closed_form():
    m = toy.two_modes()
    # mean 0.2 (-5,-5) + 0.8 (5,5) = (3, 3); between-component variance 0.2*0.8*10^2 = 16 per axis
    assert m.mean().tolist() == pytest.approx([3.0, 3.0])
    assert torch.allclose(m.covariance(), torch.tensor([[17.0, 16.0], [16.0, 17.0]], dtype=torch.float64), atol=1e-12)


def test_sample_component_frequencies(gen):
    m = toy.two_modes()
    _, comps = m.sample(20000, gen, return_components=True)
    share = float((comps == 1).double().mean())
    # 4-sigma binomial band around 0.8
    assert abs(share - 0.8) < 4 * math.sqrt(0.8 * 0.2 / 20000)


def test_noised_per_sample_sampling_shapes(gen):
    m = toy.anisotropic()
    a = torch.linspace(0.1, 1.0, 7, dtype=torch.float64)
    law = m.noised(a, 1 - a + 0.01)
    assert law.sample(generator=gen).shape == (7, 2)
    with pytest.raises(ValueError, match="n must equal"):
        law.sample(3, gen)
    with pytest.raises(ValueError, match="n is required"):
        m.noised(0.5, 0.5).sample(generator=gen)


def test_noised_composition_is_the_law_of_the_composed_map():
    m = toy.anisotropic()
    x = torch.randn(10, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    twice = m.noised(0.8, 0.3).noised(0.5, 0.4)
    once = m.noised(0.4, math.sqrt(0.25 * 0.09 + 0.16))
    assert torch.allclose(twice.log_prob(x), once.log_prob(x), atol=1e-13)


# -- numerics at extremes ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scores_finite_far_away(dtype):
    m = toy.ring()
    x = torch.tensor([[1e4, -1e4], [-1e4, 0.0], [3e3, 2e3]], dtype=dtype)
    for law in (m, m.noised(0.5, 0.5), m.noised(1.0, 1e3)):
        s = law.score(x)
        assert s.dtype == dtype and torch.isfinite(s).all()
        assert torch.isfinite(law.log_prob(x)).all()
        assert torch.isfinite(law.posterior_mean(x) if hasattr(law, "posterior_mean") else s).all()


@pytest.mark.parametrize("sigma", [1e-30, 1e-12, 1e-6, 1e3, 1e5])
def test_float32_noised_law_is_finite_at_extreme_sigma(sigma):
    m = toy.narrow().to(torch.float32)
    law = m.noised(1.0, sigma)
    x = m.sample(64, torch.Generator().manual_seed(0)).to(torch.float32) + 0.01
    for out in (law.score(x), law.log_prob(x), law.posterior_mean(x), law.posterior_cov(x), law.responsibilities(x)):
        assert torch.isfinite(out).all()


def test_float32_agrees_with_float64_where_well_conditioned():
    m = toy.anisotropic()
    x = torch.randn(100, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    law = m.noised(0.7, 0.5)
    s64 = law.score(x)
    s32 = law.score(x.float())
    assert s32.dtype == torch.float32
    assert torch.allclose(s32.double(), s64, rtol=1e-4, atol=1e-4)


def test_singular_component_density_at_zero_noise_is_a_clear_error():
    point = toy.GaussianMixture([1.0], [[0.0, 0.0]], 0.0)
    with pytest.raises(ValueError, match="singular"):
        point.log_prob(torch.zeros(1, 2))
    # once noised it is a proper Gaussian
    assert torch.isfinite(point.noised(1.0, 0.5).log_prob(torch.zeros(1, 2))).all()


def test_large_batches_are_chunked_consistently():
    m = toy.grid()
    x = torch.randn(70000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    full = m.score(x)
    assert torch.allclose(full[:1000], m.score(x[:1000]), atol=0, rtol=0)
    assert torch.allclose(full[-1000:], m.score(x[-1000:]), atol=0, rtol=0)


# -- invariances (property tests) ---------------------------------------------------------------


@given(mixtures(), hst.integers(0, 10_000), hst.floats(0.05, 1.0), hst.floats(0.0, 2.0))
def test_permuting_components_changes_nothing(m, seed, a, s):
    order = torch.randperm(m.num_components, generator=torch.Generator().manual_seed(seed))
    p = m.permuted(order)
    x = torch.randn(16, m.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * 3
    for law, plaw in ((m.noised(a, s + 0.01), p.noised(a, s + 0.01)),):
        assert torch.allclose(law.log_prob(x), plaw.log_prob(x), atol=1e-10, rtol=1e-10)
        assert torch.allclose(law.score(x), plaw.score(x), atol=1e-9, rtol=1e-9)
        assert torch.allclose(law.posterior_mean(x), plaw.posterior_mean(x), atol=1e-9, rtol=1e-9)
        assert torch.allclose(law.responsibilities(x)[:, order], plaw.responsibilities(x), atol=1e-12)


@given(mixtures(), hst.floats(0.0, 1.0), hst.floats(1e-3, 10.0))
def test_noised_scores_finite_and_posteriors_psd(m, a, s):
    law = m.noised(a, s)
    x = torch.cat([law.sample(8, torch.Generator().manual_seed(0)), torch.full((2, m.dim), 1e4, dtype=torch.float64)])
    assert torch.isfinite(law.score(x)).all()
    cov = law.posterior_cov(x)
    assert float(torch.linalg.eigvalsh(cov).min()) >= -1e-9 * (1 + float(cov.abs().max()))


@given(mixtures(labelled=True), hst.floats(0.1, 1.0), hst.floats(0.05, 2.0))
def test_class_posterior_sums_to_one(m, a, s):
    law = m.noised(a, s)
    x = law.sample(8, torch.Generator().manual_seed(1))
    assert torch.allclose(law.class_posterior(x).sum(-1), torch.ones(8, dtype=torch.float64), atol=1e-12)


@given(mixtures(dim=2, components=2))
def test_kl_is_nonnegative_and_zero_on_itself(m):
    kl = toy.kl_gaussian(m.means[0], m.covs[0], m.means[1], m.covs[1])
    assert float(kl) >= -1e-12
    assert abs(float(toy.kl_gaussian(m.means[0], m.covs[0], m.means[0], m.covs[0]))) < 1e-10


def test_kl_gaussian_closed_form_1d():
    # KL(N(0, 1) || N(1, 4)) = log 2 + (1 + 1)/8 - 1/2
    f64 = dict(dtype=torch.float64)
    kl = toy.kl_gaussian(torch.zeros(1, **f64), torch.eye(1, **f64), torch.ones(1, **f64), 4 * torch.eye(1, **f64))
    assert float(kl) == pytest.approx(math.log(2) + 2 / 8 - 0.5, abs=1e-14)
    assert float(toy.kl_diagonal(torch.zeros(1, **f64), torch.ones(1, **f64), torch.ones(1, **f64), 4 * torch.ones(1, **f64))) == pytest.approx(float(kl), abs=1e-14)


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(weights=[0.5, 0.6], means=[[0, 0], [1, 1]], covs=1.0), "weights must sum to 1"),
        (dict(weights=[-0.5, 1.5], means=[[0, 0], [1, 1]], covs=1.0), "weights must be non-negative"),
        (dict(weights=[0.5, 0.5], means=[[0, 0]], covs=1.0), "weights must have one entry per component"),
        (dict(weights=[1.0], means=[[0, 0]], covs=[[[1.0, 2.0], [2.0, 1.0]]]), "covs must be positive semi-definite"),
        (dict(weights=[1.0], means=[[0, 0]], covs=[[[1.0, 0.5], [0.0, 1.0]]]), "covs must be symmetric"),
        (dict(weights=[1.0], means=[[0, float("nan")]], covs=1.0), "means contains NaN"),
        (dict(weights=[1.0], means=[[0, 0]], covs=[[[1.0, 0.0], [0.0, float("inf")]]]), "covs contains inf"),
        (dict(weights=[1.0], means=[[0, 0]], covs=-1.0), "covs must be positive semi-definite"),
        (dict(weights=[1.0], means=[[0, 0]], covs=[[[1.0, 0, 0], [0, 1, 0], [0, 0, 1]]]), "covs must have shape"),
        (dict(weights=[1.0], means=[0, 0], covs=1.0), "means must have 2 dimensions"),
        (dict(weights=[1.0], means=[[0, 0]], covs=1.0, labels=[0, 1]), "labels must have one entry per component"),
        (dict(weights=[1.0], means=[[0, 0]], covs=1.0, labels=[0.5]), "labels must be integers"),
        (dict(weights="a", means=[[0, 0]], covs=1.0), "weights must be a number"),
    ],
)
def test_bad_mixture_arguments_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        toy.GaussianMixture(**kwargs)


def test_bad_call_arguments_are_named():
    m = toy.anisotropic()
    with pytest.raises(ValueError, match="x must have trailing dimension 2"):
        m.score(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="x contains NaN"):
        m.log_prob(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="sigma must be non-negative"):
        m.noised(1.0, -0.1)
    with pytest.raises(ValueError, match="alpha contains NaN"):
        m.noised(float("nan"), 0.1)
    with pytest.raises(ValueError, match="do not broadcast"):
        m.noised(torch.ones(3), torch.ones(3)).score(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="label must be one of"):
        m.given(7)
    with pytest.raises(ValueError, match="no class labels"):
        toy.GaussianMixture([1.0], [[0.0]], 1.0).class_posterior(torch.zeros(1, 1))
    with pytest.raises(ValueError, match="y holds labels outside"):
        m.score(torch.zeros(2, 2), y=torch.tensor([0, 9]))
    with pytest.raises(ValueError, match="observed must leave at least one coordinate free"):
        m.condition([0, 1], torch.zeros(2))
    with pytest.raises(ValueError, match="observed coordinates must lie in"):
        m.condition([5], torch.zeros(1))
    with pytest.raises(ValueError, match="values must have shape"):
        m.condition([0], torch.zeros(2))
    with pytest.raises(TypeError, match="n must be an integer"):
        m.sample(2.5)
    with pytest.raises(ValueError, match="rho must lie in"):
        toy.ar1_video(rho=1.0)


@given(hst.lists(hst.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=4))
def test_fuzzed_weights_raise_value_or_type_errors_only(ws):
    try:
        toy.GaussianMixture(ws, [[0.0]] * len(ws), 1.0)
    except (ValueError, TypeError):
        pass


# -- claims that single-point changes of the mixture code must break (see docs/mutation.md) ------------------------


def _two_class_mixture() -> toy.GaussianMixture:
    """Class 0 holds two components, class 1 one: p(y=0) = 0.3 + 0.2, p(y=1) = 0.5."""
    means = [[-2.0, 0.0], [0.0, 2.0], [2.5, -1.0]]
    covs = torch.stack([torch.tensor([[1.0, 0.3], [0.3, 0.5]]), torch.eye(2) * 0.7, torch.tensor([[0.4, -0.1], [-0.1, 0.9]])]).double()
    return toy.GaussianMixture([0.3, 0.2, 0.5], means, covs, labels=[0, 0, 1])


@pytest.mark.parametrize("engine", ["reference", "dense"])
def test_the_class_conditional_log_density_is_the_renormalised_class_mixture(engine):
    """log p(x | y) = log sum_{k in y} pi_k N_k(x) - log sum_{k in y} pi_k, against scipy's Gaussian densities, at a
    noise level (alpha, sigma) = (0.8, 0.6) where each component is N(alpha m_k, alpha^2 S_k + sigma^2 I)."""
    from scipy import stats as sps

    m = _two_class_mixture()
    a, s = 0.8, 0.6
    law = m.noised(a, s)
    x = torch.randn(10000, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2.0
    for y, members in ((0, [0, 1]), (1, [2])):
        dens = sum(float(m.weights[k]) * sps.multivariate_normal(a * m.means[k].numpy(), a * a * m.covs[k].numpy() + s * s * np.eye(2)).pdf(x.numpy())
                   for k in members)
        expected = np.log(dens) - math.log(sum(float(m.weights[k]) for k in members))
        got = law.log_prob(x, torch.full((10000,), y), engine=engine).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_a_label_of_shape_one_broadcasts_and_a_label_batch_of_another_length_is_refused():
    m = _two_class_mixture()
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert torch.equal(m.log_prob(x, torch.tensor([1])), m.log_prob(x, 1))
    with pytest.raises(ValueError, match="y of shape"):
        m.log_prob(x, torch.tensor([0, 1]))


def test_responsibilities_of_a_batch_of_batches_are_those_of_each_point():
    """The per-component path on points of shape (2, 5, D) gives each point's own responsibilities, score and mean."""
    m = _two_class_mixture()
    x = torch.randn(2, 5, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 3.0
    law = m.noised(0.9, 0.4)
    for kind in ("responsibilities", "score", "posterior_mean"):
        batched = getattr(law, kind)(x)
        flat = torch.stack([getattr(law, kind)(x[i, j][None])[0] for i in range(2) for j in range(5)]).reshape(batched.shape)
        torch.testing.assert_close(batched, flat, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("means, weights", [(torch.zeros(2, 0), [0.5, 0.5]), (torch.zeros(0, 2), [])])
def test_a_mixture_without_components_or_coordinates_is_refused_naming_means(means, weights):
    with pytest.raises(ValueError, match="means must be a non-empty"):
        toy.GaussianMixture(weights, means.double(), 1.0)
