"""Improved DDPM's learned variance in the ancestral samplers: one mapping for loss and sampler, exact on Gaussians."""

import math

import pytest
import torch
from torch import nn

import toy
from diffcheck import process as P
from diffcheck import samplers as S
from diffcheck.checks import learned_variance as checks
from diffcheck.exact import ExactModel
from diffcheck.guidance import ExactClassifier, classifier_guided_ancestral
from diffcheck.param import NetModel
from diffcheck.samplers.loop import Counted
from diffcheck.variance import ExactLearnedVariance, WithVariance, learned_range


class _TwoHead(nn.Module):
    """A network with Improved DDPM's output layout: C prediction channels, then C variance channels (a constant)."""

    def __init__(self, v_raw: float) -> None:
        super().__init__()
        self.v_raw = v_raw

    def forward(self, x, noise):
        eps = 0.3 * x + 0.01 * noise.reshape(-1, *([1] * (x.ndim - 1)))
        return torch.cat([eps, torch.full_like(x, self.v_raw)], dim=1)


def _net_model(v_raw: float) -> NetModel:
    return NetModel(_TwoHead(v_raw), "eps", lambda t: 1000.0 * t, out_channels=3)


@pytest.mark.parametrize("v_raw, fixed", [(-1.0, "beta_tilde"), (1.0, "beta")])
def test_learned_range_ends_are_the_fixed_variances_for_image_shaped_nets(v_raw, fixed):
    """v = 0 gives beta_tilde and v = 1 beta (Nichol & Dhariwal 2021, Eq. 15): the learned chain is then the fixed one."""
    p = P.DiscreteVP.cosine()
    grid = P.iddpm_grid(p, [20])
    x = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model = _net_model(v_raw)
    learned = S.ddpm_ancestral(model, p, x, grid, generator=torch.Generator().manual_seed(1), variance="learned", full=True)
    plain = S.ddpm_ancestral(model, p, x, grid, generator=torch.Generator().manual_seed(1), variance=fixed)
    assert torch.allclose(learned.samples, plain, rtol=1e-12, atol=1e-12)
    assert learned.nfe == 20  # one evaluation per step: the mean and the variance come from one forward pass


def test_sampler_and_loss_map_v_through_the_same_numbers():
    """On a respaced VP grid the sampler's Sigma for a v_raw equals the loss's learned_range at the matching Schedule step."""
    p = P.DiscreteVP.cosine()
    grid = P.iddpm_grid(p, [50])
    sched = P.discretize(p, grid.flip(0))
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    v_raw = 3.0 * torch.rand(6, 2, generator=gen, dtype=torch.float64) - 1.5
    model = WithVariance(ExactModel(toy.anisotropic(), p, "eps"), lambda y, t: v_raw)
    for j in range(len(grid) - 2):  # every step but the one into the data (no noise there)
        _, var = S.ancestral_moments(model, p, x, grid[j], grid[j + 1], variance="learned")
        step = sched.num_steps - j
        want = learned_range(v_raw, sched, step).exp()
        assert torch.allclose(var, want, rtol=1e-11, atol=0.0), j


def test_the_data_step_draws_no_noise_with_a_learned_variance():
    p = P.DiscreteVP.linear()
    grid = P.iddpm_grid(p, [10])
    model = _net_model(0.4)
    x = torch.randn(3, 3, 2, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    mean, var = S.ancestral_moments(model, p, x, grid[-2], grid[-1], variance="learned")
    assert var == 0.0
    out, out_mean = S.ancestral_step(model, p, x, grid[-2], grid[-1], lambda like: torch.ones_like(like), variance="learned")
    assert torch.equal(out, out_mean)


def test_counted_proxy_counts_forward_full():
    model = Counted(_net_model(0.0))
    x = torch.zeros(2, 3, 1, 1, dtype=torch.float64)
    model.forward_full(x, 0.5)
    model(x, 0.5)
    assert model.calls == 2
    assert not hasattr(Counted(ExactModel(toy.anisotropic(), P.VP())), "forward_full")


def test_exact_learned_variance_is_the_gaussian_conditional_variance():
    """On a diagonal Gaussian, Var(x_s | x_t) follows from the joint law of (x_s, x_t) by Gaussian conditioning alone."""
    p = P.DiscreteVP.cosine()
    grid = P.iddpm_grid(p, [30])
    c0 = torch.tensor([0.7, 0.02], dtype=torch.float64)
    m = toy.single_gaussian(torch.tensor([0.5, -1.0], dtype=torch.float64), torch.diag(c0))
    model = ExactLearnedVariance(m, p, grid)
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for j in (0, 7, 28):
        t, s = grid[j], grid[j + 1]
        a_t, a_s, s_t, s_s = p.alpha(t), p.alpha(s), p.sigma(t), p.sigma(s)
        var_s, var_t = a_s**2 * c0 + s_s**2, a_t**2 * c0 + s_t**2
        cov_st = a_s * a_t * c0 + (a_t / a_s) * s_s**2  # x_t = (a_t/a_s) x_s + noise independent of x_s
        want = var_s - cov_st**2 / var_t
        got = model.reverse_variance(x, t)
        assert torch.allclose(got, want.expand_as(got), rtol=1e-10, atol=0.0)


def test_exact_learned_variance_answers_only_on_its_grid():
    p = P.DiscreteVP.cosine()
    grid = P.iddpm_grid(p, [10])
    model = ExactLearnedVariance(toy.anisotropic(), p, grid)
    x = torch.zeros(3, 2, dtype=torch.float64)
    assert model.forward_full(x, grid[2]).shape == (3, 4)
    assert model.forward_full(x, grid[2].expand(3)).shape == (3, 4)
    with pytest.raises(ValueError, match="one of the times of the grid"):
        model.forward_full(x, 0.123)
    with pytest.raises(ValueError, match="one of the times of the grid"):
        model.forward_full(x, grid[-1])  # the last time starts no step


def test_classifier_guided_ancestral_takes_the_learned_variance():
    p = P.DiscreteVP.cosine()
    m = toy.three_classes()
    grid = P.iddpm_grid(p, [15])
    exact = ExactModel(m, p, "eps")
    x = exact.law(grid[0]).sample(16, torch.Generator().manual_seed(5))
    y = torch.arange(16) % 3
    clf = ExactClassifier(m, p)
    run = lambda model, variance: classifier_guided_ancestral(model, clf, p, x, grid, y, scale=2.0,
                                                              generator=torch.Generator().manual_seed(6), variance=variance)
    as_beta_tilde = WithVariance(exact, lambda z, t: -torch.ones_like(z))
    assert torch.allclose(run(as_beta_tilde, "learned"), run(exact, "beta_tilde"), rtol=1e-12, atol=1e-12)
    optimal = run(ExactLearnedVariance(m, p, grid), "learned")
    assert optimal.shape == x.shape and bool(torch.isfinite(optimal).all())
    with pytest.raises(TypeError, match="learned-variance model"):
        run(exact, "learned")


def test_hybrid_sampling_reports_a_network_beside_the_exact_variances():
    from diffcheck.learned import DDPMSimple, Hybrid, Recipe, train_toy
    from diffcheck.learned.variance_sampling import hybrid_sampling

    small = dict(steps=12, batch_size=32, n_data=256, hidden=16, blocks=1, embed_dim=8, warmup_steps=2)
    trained = train_toy(Recipe(preset="narrow", objective=Hybrid(T=100), **small), progress=False)
    report = hybrid_sampling(trained, steps=10, n=300, n_boot=20)
    assert set(report["distances"]) == {"network, learned", "network, beta_tilde", "exact, optimal learned",
                                        "exact, one-step optimal v", "exact, beta_tilde", "exact, beta"}
    exact = [v for k, v in report["distances"].items() if k.startswith("exact")]
    assert all(math.isfinite(v["kl"]) and v["se"] > 0 for v in exact)  # 12 training steps: the network may diverge
    plain = train_toy(Recipe(preset="narrow", objective=DDPMSimple(T=100), **small), progress=False)
    with pytest.raises(TypeError, match="learned-variance network"):
        hybrid_sampling(plain)


# -- the checks fail on wrong components -----------------------------------------------------------


def _unrespaced(mixture, process, grid):
    """The respacing bug: the optimal v of the full table's one-step transitions, read with the respaced beta, beta_tilde."""
    return ExactLearnedVariance(mixture, process, P.ddpm_grid(process))


def test_exactness_check_fails_on_a_variance_bound_to_the_unrespaced_table():
    rec = checks.learned_variance_exact(steps=(10,), learned_model=_unrespaced)
    assert not rec.passed
    assert rec.measured["learned relative moment error"][10] > 1e-3


def test_mixture_check_fails_when_the_learned_variance_is_beta():
    as_beta = lambda m, p, g: WithVariance(ExactModel(m, p, "eps"), lambda x, t: torch.ones_like(x))
    rec = checks.learned_variance_mixtures(closer=(("narrow", 25, 4000),), learned_model=as_beta)
    assert not rec.passed
    assert any("beta (z =" in f for f in rec.details["failures"])


# -- the long runs -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_learned_variance_is_exact_at_1000_steps():
    rec = checks.learned_variance_exact(steps=(10, 25, 50, 1000))
    assert rec.passed, rec.details


@pytest.mark.slow
def test_learned_variance_closer_at_100_steps_and_the_three_agree_at_1000():
    rec = checks.learned_variance_mixtures(closer=(("narrow", 100, 4000),), agree=(("two_modes", 1000, 4000),))
    assert rec.passed, rec.details


def test_the_exact_learned_variance_output_is_eps_then_the_v_whose_range_is_the_optimal_variance():
    """forward_full(x, t) = [eps_hat, v_raw] along dimension 1, and Nichol & Dhariwal 2021, Eq. 15 maps v_raw back
    to Var(x_s | x_t) with the beta, beta_tilde of the step that starts at t (per sample, on a per-sample t)."""
    from diffcheck.samplers.loop import coefficients
    from diffcheck.variance import learned_log_variance

    p = P.DiscreteVP.cosine()
    grid = P.iddpm_grid(p, [10])
    model = ExactLearnedVariance(toy.anisotropic(), p, grid)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    steps = torch.tensor([0, 3, 3, 8])
    t = grid[steps]
    assert torch.equal(model.step_index(t, x), steps)
    full = model.forward_full(x, t)
    assert full.shape == (4, 4)
    for b, j in enumerate(steps.tolist()):
        c = coefficients(p, grid[j], grid[j + 1])
        torch.testing.assert_close(full[b, :2], ExactModel(toy.anisotropic(), p)(x[b:b + 1], grid[j])[0], rtol=1e-12, atol=1e-12)
        var = learned_log_variance(full[b, 2:], math.log(c.beta), math.log(c.beta_tilde)).exp()
        torch.testing.assert_close(var, model.reverse_variance(x[b:b + 1], grid[j])[0], rtol=1e-10, atol=0.0)
    with pytest.raises(ValueError, match="t must be a scalar or have shape"):
        model.step_index(grid[:5], x)


def test_a_step_into_the_data_takes_the_step_befores_log_beta_tilde_or_log_beta_on_a_one_step_grid():
    """beta_tilde = 0 on a step into sigma = 0, where Nichol & Dhariwal 2021, Eq. 15 needs a finite log: the step before's
    value (as their code clips it), and log beta where no step comes before."""
    p = P.DiscreteVP.cosine()
    for k in (1, 10):
        model = ExactLearnedVariance(toy.anisotropic(), p, P.iddpm_grid(p, [k]))
        assert bool(torch.isfinite(model.log_beta_tilde).all())
        want = model.log_beta[0] if k == 1 else model.log_beta_tilde[-2]
        assert float(model.log_beta_tilde[-1]) == float(want)
