"""Guidance and imputation: every sampler takes guidance alike, checks fail on wrong answers, bad input."""

import pytest
import torch

import toy
from diffcheck import process as P
from diffcheck import samplers as S
from diffcheck.checks import guidance as checks
from diffcheck.exact import ExactModel
from diffcheck.guidance import ClassifierFree, ClassifierGuided, ExactClassifier, classifier_grad, classifier_guided_ancestral, tilted_log_density
from diffcheck.impute import exact_conditional, replacement
from diffcheck.testing.gaussian_law import affine_law

M = toy.three_classes()


@pytest.mark.parametrize("pname", ["VP", "DDPM"])
@pytest.mark.parametrize("run", ["ddpm", "ddim", "euler_maruyama", "heun", "reverse_diffusion"])
def test_guidance_at_scale_one_is_the_conditional_model_in_every_sampler(pname, run):
    """Each class is one Gaussian, so the guided model is affine and the exact output laws can be compared."""
    p = P.VP() if pname == "VP" else P.DiscreteVP.linear()
    grid = torch.linspace(0.95, 0.02, 16, dtype=torch.float64)
    runs = {
        "ddpm": lambda m, x, nz: S.ddpm_ancestral(m, p, x, grid, generator=nz, y=1),
        "ddim": lambda m, x, nz: S.ddim(m, p, x, grid, eta=0.4, generator=nz, y=1),
        "euler_maruyama": lambda m, x, nz: S.euler_maruyama(m, p, x, grid, generator=nz, y=1),
        "heun": lambda m, x, nz: S.heun_ode(m, p, x, grid, y=1),
        "reverse_diffusion": lambda m, x, nz: S.reverse_diffusion(m, p, x, grid, generator=nz, y=1),
    }
    start = ExactModel(M.given(1), p).law(grid[0])
    guided = ClassifierGuided(ExactModel(M, p, "x0"), ExactClassifier(M, p), p, 1.0)
    conditional = ExactModel(M.given(1), p, "eps")
    cfg = ClassifierFree(ExactModel(M, p, "v"), p, 0.0)
    laws = [affine_law(lambda x, nz: runs[run](model, x, nz), start.mean(), start.covariance())
            for model in (guided, cfg, _drop_y(conditional))]
    for mean, cov in laws[:2]:
        assert torch.allclose(mean, laws[2][0], atol=1e-9) and torch.allclose(cov, laws[2][1], atol=1e-9)


def _drop_y(model):
    class NoLabel:
        prediction = model.prediction

        def __call__(self, x, t, y=None):
            return model(x, t)

    return NoLabel()


def test_autograd_classifier_gradient_matches_closed_form(gen):
    p = P.VP()
    clf = ExactClassifier(M, p)
    x = p.marginal(M, 0.3).sample(32, gen)
    auto = classifier_grad(lambda z, t: clf(z, t), x, 0.3, 2)
    assert torch.allclose(auto, clf.grad(x, 0.3, 2), atol=1e-10)


def test_guided_not_tilted_check_fails_when_samplers_do_sample_the_tilt(monkeypatch):
    def tilted_samples(model, p, x, grid, generator=None, y=None, **kw):
        w = model.w
        pts, d, h = checks._grid_density(M, p, 0.0, 0, w)
        return checks._sample_grid(pts, d, h, x.shape[0], torch.Generator().manual_seed(int(10 * w) + 1))

    monkeypatch.setattr(checks.S, "euler_maruyama", tilted_samples)
    monkeypatch.setattr(checks.S, "heun_ode", tilted_samples)
    assert not checks.guided_is_not_tilted(n=2000).passed


def test_unguided_limit_fails_for_real_guidance():
    assert not checks.unguided_limit(scale=3.0, w=2.0, n=500).passed  # every one of its 8 tests rejects at n = 500


def test_replacement_check_fails_if_the_exact_sampler_conditions_on_the_wrong_value(monkeypatch):
    real = checks.exact_conditional
    monkeypatch.setattr(checks, "exact_conditional", lambda m, p, value, *a, **k: real(m, p, value + 0.5, *a, **k))
    assert not checks.replacement_bias().passed


def test_figure2_check_fails_if_the_tilt_exponent_is_ignored(monkeypatch):
    monkeypatch.setattr(checks, "tilted_log_density", lambda m, p, t, x, c, w: tilted_log_density(m, p, t, x, c, 0.0))
    assert not checks.figure2().passed


def test_algorithm1_with_beta_variance_and_guided_ddpm_run(gen):
    p = P.DiscreteVP.linear()
    ex = ExactModel(M, p)
    x = p.prior_sample((64, 2), gen)
    out = classifier_guided_ancestral(ex, ExactClassifier(M, p), p, x, P.iddpm_grid(p, [20]), 0, scale=2.0, generator=gen, variance="beta")
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_exact_conditional_and_replacement_shapes(gen):
    m = toy.anisotropic()
    p = P.DiscreteVP.linear()
    grid = P.iddpm_grid(p, [20])
    out = replacement(ExactModel(m, p), p, torch.zeros(8, 1, dtype=torch.float64), [1], p.prior_sample((8, 2), gen), grid,
                      step=S.ddim_step, generator=gen)
    assert out.shape == (8, 2) and torch.all(out[:, 1] == 0)
    ex = exact_conditional(m, p, torch.tensor([0.3], dtype=torch.float64), [0], p.prior_sample((8, 1), gen), grid,
                           sampler=S.ddim)
    assert torch.all(ex[:, 0] == 0.3) and torch.isfinite(ex).all()


def test_bad_guidance_input(gen):
    p = P.VP()
    ex = ExactModel(M, p)
    x = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="needs the class labels"):
        ClassifierGuided(ex, ExactClassifier(M, p), p)(x, 0.5)
    with pytest.raises(ValueError, match="needs the class labels"):
        ClassifierFree(ex, p, 1.0)(x, 0.5)
    with pytest.raises(ValueError, match="w must be >= -1"):
        ClassifierFree(ex, p, -2.0)
    with pytest.raises(ValueError, match="scale must be >= 0"):
        ClassifierGuided(ex, ExactClassifier(M, p), p, -1.0)
    with pytest.raises(TypeError, match="class labels"):
        ExactClassifier(toy.GaussianMixture([1.0], [[0.0, 0.0]], 1.0), p)
    with pytest.raises(ValueError, match="c must be one of"):
        tilted_log_density(M, p, 0.0, x, 7, 1.0)
    with pytest.raises(ValueError, match="known must be distinct"):
        replacement(ex, p, torch.zeros(4, 1), [5], x, P.uniform_grid(3), step=S.ddim_step, generator=gen)
    with pytest.raises(ValueError, match="x_known must have shape"):
        replacement(ex, p, torch.zeros(3, 1), [0], x, P.uniform_grid(3), step=S.ddim_step, generator=gen)


def test_the_exact_classifier_takes_one_label_or_one_per_sample_and_refuses_others_naming_y():
    """grad log p(y | x_t) of one label for the batch equals that of the label repeated per sample; labels of another
    length are refused by the law with an error naming y (not a torch expand failure)."""
    clf = ExactClassifier(toy.three_classes(), P.VP())
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    torch.testing.assert_close(clf.grad(x, 0.4, 2), clf.grad(x, 0.4, torch.full((5,), 2)), rtol=0.0, atol=0.0)
    with pytest.raises(ValueError, match="y of shape"):
        clf.grad(x, 0.4, torch.tensor([0, 1, 2]))
