"""Reconstruction guidance and replacement (Ho et al. 2022, Sec. 3.1) against closed forms on a Gaussian video."""

import pytest
import torch

import toy
from diffcheck import process as P
from diffcheck import samplers as S
from diffcheck.exact import ExactModel
from diffcheck.impute import replacement
from diffcheck.video import ReconstructionGuided, conditional_kl, conditional_law, conditional_sample

AR1 = toy.ar1_video(6, 2, rho=0.9)
DDPM = P.DiscreteVP.linear()
KNOWN = AR1.frame_coords([0, 1])
FREE = toy.gaussian.complement(KNOWN, AR1.dim)


def test_guided_x0_is_the_closed_form_correction_on_a_gaussian(gen):
    """x_hat(z) = mu + G (z − alpha mu) with G = alpha S (alpha² S + sigma² I)^-1, so
    grad_{z^b} ||x^a − x_hat^a||² = −2 G_ab^T (x^a − x_hat^a) and x~^b = x_hat^b + w_r alpha G_ab^T (x^a − x_hat^a)."""
    mu, cov = AR1.means[0], AR1.covs[0]
    z = torch.randn(16, 12, generator=gen, dtype=torch.float64)
    x_a = torch.randn(16, 4, generator=gen, dtype=torch.float64)
    for t in (0.05, 0.4, 0.8):
        tt = torch.tensor(t, dtype=torch.float64)
        a, s = DDPM.alpha(tt), DDPM.sigma(tt)
        g = a * cov @ torch.linalg.inv(a * a * cov + s * s * torch.eye(12, dtype=torch.float64))
        x_hat = mu + (z - a * mu) @ g.T
        for w in (0.0, 1.0, 3.5):
            want = x_hat[:, FREE] + w * a * (x_a - x_hat[:, KNOWN]) @ g[KNOWN][:, FREE]
            got = ReconstructionGuided(ExactModel(AR1, DDPM, "eps"), DDPM, KNOWN, x_a, w)(z, tt)
            assert got.shape == z.shape
            assert (got[:, FREE] - want).abs().max() < 1e-12 * (1 + float(want.abs().max()))
            assert torch.allclose(got[:, KNOWN], x_hat[:, KNOWN], atol=1e-12)


@pytest.mark.parametrize("prediction", ["score", "eps", "x0", "v"])
def test_guidance_is_the_same_whatever_the_model_predicts(prediction, gen):
    z = torch.randn(8, 6, 2, generator=gen, dtype=torch.float64)  # videos shaped (B, F, d)
    x_a = torch.randn(4, generator=gen, dtype=torch.float64)  # shared by the batch
    ref = ReconstructionGuided(ExactModel(AR1, DDPM, "x0"), DDPM, KNOWN, x_a, 2.0)(z, 0.3)
    got = ReconstructionGuided(ExactModel(AR1, DDPM, prediction), DDPM, KNOWN, x_a, 2.0)(z, 0.3)
    assert torch.allclose(got, ref, atol=1e-11)


def test_replacement_here_is_imputes_replacement():
    grid = P.iddpm_grid(DDPM, [20])
    x_T = DDPM.prior_sample((8, 12), torch.Generator().manual_seed(1))
    x_a = AR1.sample(8, torch.Generator().manual_seed(2))[:, KNOWN]
    model = ExactModel(AR1, DDPM)
    a = conditional_sample(model, DDPM, x_a, KNOWN, x_T, grid, step=S.ancestral_step, generator=torch.Generator().manual_seed(3))
    b = replacement(model, DDPM, x_a, KNOWN, x_T, grid, step=S.ancestral_step, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(a[:, KNOWN], x_a)


@pytest.mark.parametrize("step", [S.ancestral_step, S.ddim_step], ids=["ddpm", "ddim"])
def test_guided_sampling_with_an_exact_gaussian_model_is_affine_and_zero_weight_is_replacement(step):
    """The guided model of an exact Gaussian model is affine in (z, x^a), so the sampler law is exactly Gaussian
    (the second probe of ``conditional_law`` verifies it); at w_r = 0 it is replacement's law."""
    grid = P.iddpm_grid(DDPM, [25])
    model = ExactModel(AR1, DDPM)
    runs = {w: (lambda x_T, x_a, noise, w=w: conditional_sample(model, DDPM, x_a, KNOWN, x_T, grid, step=step, generator=noise, w_r=w))
            for w in (None, 0.0, 3.0)}
    laws = {w: conditional_law(run, AR1, DDPM, KNOWN, verify=True) for w, run in runs.items()}
    assert torch.allclose(laws[0.0][0], laws[None][0], atol=1e-10) and torch.allclose(laws[0.0][1], laws[None][1], atol=1e-10)
    kl = {w: conditional_kl(run, AR1, DDPM, KNOWN, verify=False) for w, run in runs.items()}
    assert kl[3.0] < kl[None]


def test_bad_input_names_the_argument():
    model = ExactModel(AR1, DDPM)
    with pytest.raises(ValueError, match="w_r"):
        ReconstructionGuided(model, DDPM, KNOWN, torch.zeros(4), -1.0)
    with pytest.raises(ValueError, match="x_a"):
        ReconstructionGuided(model, DDPM, KNOWN, torch.zeros(3), 1.0)
    with pytest.raises(ValueError, match="known"):
        ReconstructionGuided(model, DDPM, [], torch.zeros(0), 1.0)
    with pytest.raises(ValueError, match="x_a"):
        ReconstructionGuided(model, DDPM, KNOWN, torch.tensor([0.0, float("nan"), 0.0, 0.0]), 1.0)
    with pytest.raises(TypeError, match="process"):
        ReconstructionGuided(model, "ddpm", KNOWN, torch.zeros(4), 1.0)
    guided = ReconstructionGuided(model, DDPM, KNOWN, torch.zeros(3, 4), 1.0)
    with pytest.raises(ValueError, match="x_a holds 3 rows"):
        guided(torch.zeros(5, 12, dtype=torch.float64), 0.5)
