"""The T controller and the optimal discriminator: the official update reproduced, closed forms, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import toy
from diffcheck.gan.controller import AdaptiveT, discriminator_rd, official_step
from diffcheck.gan.noise import InstanceNoise
from diffcheck.gan.optimal import (
    gaussian_logit,
    gaussian_separation,
    optimal_discriminator,
    optimal_logit,
    rd_gaussians,
    rd_gaussians_mixed,
)
from diffcheck.gan.timesteps import t_probs


def _official_T_sequence(signs, t_min=10, t_max=1000, batch=64, interval=4, ada_kimg=100, target=0.6):
    """The official training loop's p update and update_T, written out (training_loop.py, diffusion.py)."""
    p, out = 0.0, []
    for rd in signs:
        adjust = np.sign(rd - target) * (batch * interval) / (ada_kimg * 1000)
        p = float(np.clip(p + adjust, 0.0, 1.0))
        t_adjust = round(p * (t_max - t_min))
        out.append(int(np.clip(int(t_min + t_adjust), t_min, t_max)))
    return out


def test_controller_reproduces_the_official_p_parameterisation():
    rng = np.random.default_rng(0)
    # long climbs, plateaus and descents, including the clamps at both ends
    rds = np.concatenate([np.ones(500), rng.uniform(-1, 1, 2000), -np.ones(600), rng.choice([0.59, 0.61], 900)])
    ctrl = AdaptiveT(step=official_step(64))
    level, ours = ctrl.start, []
    for rd in rds:
        level = ctrl.update(level, float(rd))
        ours.append(ctrl.T(level))
    assert ours == _official_T_sequence(rds)
    assert max(ours) == 1000 and min(ours) == 10


def test_official_step_and_rounding():
    assert official_step(64) == pytest.approx(990 * 256 / 100_000, rel=1e-15)
    ctrl = AdaptiveT(t_min=10, t_max=1000, step=1.0)
    # Python's round takes halves to even on level - t_min, as the official code rounds p * (t_max - t_min)
    assert ctrl.T(10.5) == 10 and ctrl.T(11.5) == 12 and ctrl.T(2000.0) == 1000 and ctrl.T(-5.0) == 10
    assert ctrl.update(500.0, 0.7) == 501.0 and ctrl.update(500.0, 0.1) == 499.0


def test_controller_holds_when_r_d_equals_the_target():
    ctrl = AdaptiveT(step=2.0)
    assert ctrl.update(100.0, ctrl.target) == 100.0


def test_settle_point_interpolates_a_decreasing_curve():
    ctrl = AdaptiveT(target=0.6, t_min=10, t_max=1000)
    assert ctrl.settle_point(lambda T: 1.0 - T / 1000.0) == pytest.approx(400.0, abs=1e-9)
    assert ctrl.settle_point(lambda T: 0.9) == 1000.0
    assert ctrl.settle_point(lambda T: 0.1) == 10.0


def test_rd_is_the_mean_sign_of_the_logits():
    assert discriminator_rd(torch.tensor([2.0, -1.0, 0.0, 3.0])) == 0.25
    with pytest.raises(ValueError, match="logits"):
        discriminator_rd(torch.tensor([]))


@pytest.mark.parametrize("kwargs, word", [
    ({"target": 1.5}, "target"), ({"t_min": 0}, "t_min"), ({"t_min": 20, "t_max": 10}, "t_max"),
    ({"step": -1.0}, "step"), ({"interval": 0}, "interval"),
])
def test_controller_errors_name_the_argument(kwargs, word):
    with pytest.raises(ValueError, match=word):
        AdaptiveT(**kwargs)
    with pytest.raises(ValueError, match="r_d"):
        AdaptiveT().update(100.0, 1.5)
    with pytest.raises(ValueError, match="batch_size"):
        official_step(0)


# -- optimal discriminator ------------------------------------------------------------------


def test_optimal_discriminator_is_the_density_ratio():
    real, fake = toy.two_modes(), toy.three_classes()
    y = torch.randn(50, 2, dtype=torch.float64) * 3
    pr, pg = real.log_prob(y).exp(), fake.log_prob(y).exp()
    d = optimal_discriminator(real, fake, y)
    assert torch.allclose(d, pr / (pr + pg), rtol=1e-12, atol=1e-300)
    assert torch.allclose(optimal_logit(real, fake, y), real.log_prob(y) - fake.log_prob(y), atol=0)
    with pytest.raises(TypeError, match="real"):
        optimal_logit(None, fake, y)


def test_gaussian_separation_matches_a_direct_computation():
    f64 = dict(dtype=torch.float64)
    mr, mg, S = torch.tensor([0.5, 1.0], **f64), torch.tensor([-1.0, 0.0], **f64), torch.tensor([[2.0, 0.5], [0.5, 1.0]], **f64)
    a, s = 0.7, 0.3
    C = a * a * S + s * s * torch.eye(2, **f64)
    d = a * (mr - mg)
    assert float(gaussian_separation(mr, mg, S, a, s)) == pytest.approx(math.sqrt(float(d @ torch.linalg.inv(C) @ d)), rel=1e-14)
    # batched scales
    got = gaussian_separation(mr, mg, S, torch.tensor([0.7, 1.0], **f64), torch.tensor([0.3, 0.0], **f64))
    assert got.shape == (2,) and float(got[0]) == pytest.approx(float(gaussian_separation(mr, mg, S, 0.7, 0.3)), rel=1e-14)
    with pytest.raises(ValueError, match="cov"):
        gaussian_separation(mr, mg, torch.eye(3), a, s)
    with pytest.raises(ValueError, match="mean_real and mean_fake"):
        gaussian_separation(mr, torch.zeros(3), S, a, s)


def test_rd_closed_form_against_scipy_by_direct_integration():
    # P(D* > 1/2 | real) by integrating the real density over the half-plane w^T y + b > 0, in 1D along w
    mr, mg, S = [0.3, -0.1], [-0.2, 0.4], [[0.5, 0.1], [0.1, 0.3]]
    noise = InstanceNoise(1000)
    for t in (0, 400, 1000):
        a, s = (float(v) for v in noise.scales(t))
        C = a * a * torch.tensor(S, dtype=torch.float64) + s * s * torch.eye(2, dtype=torch.float64)
        w = torch.linalg.solve(C, a * (torch.tensor(mr, dtype=torch.float64) - torch.tensor(mg, dtype=torch.float64)))
        b = float(gaussian_logit(torch.zeros(2, dtype=torch.float64), mr, mg, S, a, s))
        m = float(w @ (a * torch.tensor(mr, dtype=torch.float64))) + b
        sd = math.sqrt(float(w @ C @ w))
        expected = 2 * stats.norm.sf(0, loc=m, scale=sd) - 1
        assert float(rd_gaussians(mr, mg, S, a, s)) == pytest.approx(expected, abs=1e-13)


def test_mixed_rd_is_the_weighted_sum():
    noise = InstanceNoise(50)
    p = t_probs(50, "priority", "paper")
    mr, mg, S = [0.1, 0.0], [-0.1, 0.0], 0.01
    each = [float(rd_gaussians(mr, mg, S, *noise.scales(t))) for t in range(51)]
    assert rd_gaussians_mixed(noise, p, mr, mg, S) == pytest.approx(sum(float(q) * r for q, r in zip(p, each)), abs=1e-14)
    with pytest.raises(ValueError, match="probs"):
        rd_gaussians_mixed(noise, p[:-1], mr, mg, S)
