"""Training objectives: exact values on models with closed-form answers, gradient flow, validation."""

import math

import pytest
import torch

import toy
from diffcheck import losses, vlb
from diffcheck.exact import ExactModel
from diffcheck.param import function_model
from diffcheck.process import VE, VP, DiscreteVP, discretize, geometric_sigmas
from diffcheck.variance import WithVariance


def _schedule(T=100):
    p = DiscreteVP.linear(T, rescale=True)
    return discretize(p, torch.arange(T + 1, dtype=torch.float64) / T)


# -- t-samplers ------------------------------------------------------------------------------


def test_uniform_steps_cover_the_range(gen):
    s = losses.uniform_steps(5, 4000, gen)
    assert s.dtype == torch.int64 and int(s.min()) == 1 and int(s.max()) == 5
    assert set(s.tolist()) == {1, 2, 3, 4, 5}


def test_uniform_times_stay_in_range(gen):
    t = losses.uniform_times(1000, gen, 0.2, 0.3)
    assert t.dtype == torch.float64 and float(t.min()) >= 0.2 and float(t.max()) <= 0.3


@pytest.mark.parametrize("kwargs", [dict(t_min=0.5, t_max=0.4), dict(t_min=-0.1), dict(t_max=1.5)])
def test_uniform_times_rejects_bad_ranges(kwargs, gen):
    with pytest.raises(ValueError, match="t_m"):
        losses.uniform_times(3, gen, **kwargs)


# -- DSM family --------------------------------------------------------------------------------


def test_dsm_weights_relate_exactly(gen):
    m, p = toy.anisotropic(), VP()
    model = ExactModel(m, p, "score")
    x0 = m.sample(50, gen)
    eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    t = losses.uniform_times(50, gen, 0.01, 1.0)
    none = losses.denoising_score_matching(model, p, x0, t, eps=eps, weight="none")
    s2 = losses.denoising_score_matching(model, p, x0, t, eps=eps, weight="sigma2")
    g2 = losses.denoising_score_matching(model, p, x0, t, eps=eps, weight="g2")
    torch.testing.assert_close(s2, none * p.sigma(t) ** 2, rtol=1e-14, atol=0)
    torch.testing.assert_close(g2, none * p.g2(t), rtol=1e-14, atol=0)
    # by hand: 1/2 |s(x_t) + eps/sigma|^2
    xt = p.alpha(t)[:, None] * x0 + p.sigma(t)[:, None] * eps
    hand = 0.5 * (m.noised(p.alpha(t), p.sigma(t)).score(xt) + eps / p.sigma(t)[:, None]).pow(2).sum(-1)
    torch.testing.assert_close(none, hand, rtol=1e-12, atol=0)


def test_dsm_rejects_unknown_weight_and_bad_eps(gen):
    m, p = toy.two_modes(), VP()
    x0 = m.sample(4, gen)
    with pytest.raises(ValueError, match="weight"):
        losses.denoising_score_matching(ExactModel(m, p, "score"), p, x0, 0.5, weight="lambda")
    with pytest.raises(ValueError, match="eps"):
        losses.denoising_score_matching(ExactModel(m, p, "score"), p, x0, 0.5, eps=torch.zeros(3, 2, dtype=torch.float64))


def test_ncsn_loss_is_sigma2_dsm_at_the_ladder_levels(gen):
    m, ve = toy.two_modes(), VE(sigma_min=0.01, sigma_max=50.0)
    sigmas = geometric_sigmas(20.0, 1.0, 10)
    times = ve.t_of_edm_sigma(sigmas)
    torch.testing.assert_close(ve.sigma(times), sigmas, rtol=1e-12, atol=0)
    model = ExactModel(m, ve, "score")
    x0 = m.sample(64, gen)
    eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    idx = torch.randint(0, 10, (64,), generator=gen)
    got = losses.ncsn_loss(model, ve, x0, sigmas, eps=eps, index=idx)
    # NCSN's code: 1/2 |s(x + sigma z) + z/sigma|^2 sigma^2 at the drawn level
    s = sigmas[idx][:, None]
    want = 0.5 * ((m.noised(1.0, sigmas[idx]).score(x0 + s * eps) + eps / s) ** 2).sum(-1) * sigmas[idx] ** 2
    torch.testing.assert_close(got, want, rtol=1e-10, atol=0)
    drawn = losses.ncsn_loss(model, ve, x0, sigmas, gen)
    assert drawn.shape == (64,) and bool(torch.isfinite(drawn).all())


@pytest.mark.parametrize("sigmas, index, match", [
    (torch.tensor([]), None, "sigmas"),
    (torch.tensor([1.0, -1.0]), None, "sigmas"),
    (torch.tensor([2.0, 1.0]), torch.tensor([0, 2, 0, 0]), "index"),
])
def test_ncsn_loss_validates(sigmas, index, match, gen):
    m, ve = toy.two_modes(), VE()
    with pytest.raises(ValueError, match=match):
        losses.ncsn_loss(ExactModel(m, ve, "score"), ve, m.sample(4, gen), sigmas.double(), index=index)


def test_eps_mse_and_simple_loss(gen):
    m = toy.anisotropic()
    sched = _schedule()
    p = sched.process
    model = ExactModel(m, p, "eps")
    x0 = m.sample(40, gen)
    eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    steps = losses.uniform_steps(100, 40, gen)
    t = sched.t[steps]
    got = losses.simple_loss(model, sched, x0, steps=steps, eps=eps)
    xt = sched.alpha[steps][:, None] * x0 + sched.sigma[steps][:, None] * eps
    want = (eps - model.eps(xt, t)).pow(2).sum(-1)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    mean = losses.simple_loss(model, sched, x0, steps=steps, eps=eps, reduce="mean")
    torch.testing.assert_close(mean, got / 2, rtol=1e-14, atol=0)
    # any parameterization gives the same loss for the same function
    as_x0 = losses.eps_mse(ExactModel(m, p, "x0"), p, x0, t, eps=eps)
    torch.testing.assert_close(as_x0, got, rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match="step"):
        losses.simple_loss(model, sched, x0, steps=torch.full((40,), 101))
    with pytest.raises(ValueError, match="reduce"):
        losses.eps_mse(model, p, x0, t, reduce="max")


def test_score_sde_loss_draws_times_and_weights(gen):
    m, p = toy.anisotropic(), VP()
    model = ExactModel(m, p, "score")
    x0 = m.sample(30, gen)
    eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    t = losses.uniform_times(30, gen, 0.1, 1.0)
    lik = losses.score_sde_loss(model, p, x0, weighting="likelihood", t=t, eps=eps)
    torch.testing.assert_close(lik, losses.denoising_score_matching(model, p, x0, t, eps=eps, weight="g2"))
    # the official sigma^2 form: 1/2 |s sigma + z|^2
    xt = p.alpha(t)[:, None] * x0 + p.sigma(t)[:, None] * eps
    hand = 0.5 * (model(xt, t) * p.sigma(t)[:, None] + eps).pow(2).sum(-1)
    torch.testing.assert_close(losses.score_sde_loss(model, p, x0, t=t, eps=eps), hand, rtol=1e-10, atol=0)
    drawn = losses.score_sde_loss(model, p, x0, gen, t_eps=0.5)
    assert drawn.shape == (30,)
    with pytest.raises(ValueError, match="weighting"):
        losses.score_sde_loss(model, p, x0, weighting="g2")


# -- sliced and implicit score matching ---------------------------------------------------------


def _linear_score(A):
    return function_model(lambda x, t: -x @ A.T, "score")


def test_implicit_score_matching_of_a_linear_score_is_exact(gen):
    A = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    x0 = torch.randn(20, 3, generator=gen, dtype=torch.float64)
    got = losses.implicit_score_matching(_linear_score(A), VP(), x0, 0.0)
    want = -torch.trace(A) + 0.5 * (x0 @ A.T).pow(2).sum(-1)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_implicit_trace_matches_the_jacobian_of_a_nonlinear_score(gen):
    W = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    fn = lambda x: torch.tanh(x @ W) * x
    x0 = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    got = losses.implicit_score_matching(function_model(lambda x, t: fn(x), "score"), VP(), x0, 0.0)
    jac = torch.stack([torch.autograd.functional.jacobian(lambda z: fn(z[None])[0], x) for x in x0])
    want = jac.diagonal(dim1=-2, dim2=-1).sum(-1) + 0.5 * fn(x0).pow(2).sum(-1)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("distribution", ["gaussian", "rademacher", "sphere"])
@pytest.mark.parametrize("variance_reduced", [False, True])
def test_sliced_score_matching_of_a_linear_score_is_exact(distribution, variance_reduced):
    g = torch.Generator().manual_seed(5)
    A = torch.randn(3, 3, generator=g, dtype=torch.float64)
    x0 = torch.randn(50, 3, generator=g, dtype=torch.float64)
    eps = torch.zeros_like(x0)
    got = losses.sliced_score_matching(_linear_score(A), VP(), x0, 0.0, torch.Generator().manual_seed(9), projections=2,
                                       distribution=distribution, variance_reduced=variance_reduced, eps=eps)
    rg = torch.Generator().manual_seed(9)
    want = torch.zeros(50, dtype=torch.float64)
    s = -x0 @ A.T
    for _ in range(2):
        v = torch.randn(x0.shape, generator=rg, dtype=x0.dtype)
        if distribution == "rademacher":
            v = torch.sign(v)
            assert bool((v.abs() == 1).all())
        elif distribution == "sphere":
            v = v / v.norm(dim=-1, keepdim=True) * math.sqrt(3)
        second = 0.5 * s.pow(2).sum(-1) if variance_reduced else 0.5 * (v * s).sum(-1) ** 2
        want += -torch.einsum("bi,ij,bj->b", v, A, v) + second
    torch.testing.assert_close(got, want / 2, rtol=1e-12, atol=1e-12)


def test_sliced_averages_to_implicit_over_projections():
    # at fixed points, the projection average of SSM is ISM (E[v v^T] = I), within 5 standard errors
    g = torch.Generator().manual_seed(7)
    A = torch.randn(2, 2, generator=g, dtype=torch.float64)
    x0 = torch.randn(1, 2, generator=g, dtype=torch.float64).expand(20000, 2).contiguous()
    ism = losses.implicit_score_matching(_linear_score(A), VP(), x0, 0.0).detach()
    for dist in ("gaussian", "rademacher", "sphere"):
        ssm = losses.sliced_score_matching(_linear_score(A), VP(), x0, 0.0, g, distribution=dist).detach()
        se = float(ssm.std()) / math.sqrt(ssm.numel())
        assert abs(float(ssm.mean() - ism[0])) <= 5 * se + 1e-12, dist


def test_score_matching_runs_on_images_and_trains(gen):
    net = torch.nn.Conv2d(1, 1, 3, padding=1, dtype=torch.float64)
    model = function_model(lambda x, t: net(x), "score")
    x0 = torch.randn(4, 1, 3, 3, generator=gen, dtype=torch.float64)
    for loss in (losses.implicit_score_matching(model, VP(), x0, 0.2, gen),
                 losses.sliced_score_matching(model, VP(), x0, 0.2, gen)):
        assert loss.shape == (4,)
        (g,) = torch.autograd.grad(loss.mean(), net.weight)
        assert bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0


def test_sliced_rejects_bad_options(gen):
    m = toy.two_modes()
    with pytest.raises(ValueError, match="distribution"):
        losses.sliced_score_matching(ExactModel(m, VP(), "score"), VP(), m.sample(3, gen), 0.1, distribution="uniform")
    with pytest.raises(ValueError, match="projections"):
        losses.sliced_score_matching(ExactModel(m, VP(), "score"), VP(), m.sample(3, gen), 0.1, projections=0)


# -- Improved DDPM's hybrid loss ------------------------------------------------------------------


class _TwoHeads(torch.nn.Module):
    """A learned-variance model with separate mean and variance heads on points (B, D)."""

    prediction = "eps"

    def __init__(self, d):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.mean = torch.nn.Linear(d + 1, d, dtype=torch.float64)
        self.var = torch.nn.Linear(d + 1, d, dtype=torch.float64)
        for lin in (self.mean, self.var):
            torch.nn.init.normal_(lin.weight, std=0.3, generator=g)

    def _inp(self, x, t):
        return torch.cat([x, torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])[:, None]], -1)

    def forward(self, x, t):
        return self.mean(self._inp(x, t))

    def forward_full(self, x, t):
        inp = self._inp(x, t)
        return torch.cat([self.mean(inp), torch.tanh(self.var(inp))], 1)


def _grads(loss, module):
    return {n: g for n, g in zip([n for n, _ in module.named_parameters()],
                                 torch.autograd.grad(loss, list(module.parameters()), allow_unused=True))}


def test_hybrid_stops_the_mean_gradient_of_the_bound(gen):
    sched = _schedule(100)
    m = toy.anisotropic()
    net = _TwoHeads(2)
    x0 = m.sample(64, gen)
    eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    steps = losses.uniform_steps(100, 64, gen)
    hybrid = losses.hybrid_loss(net, sched, x0, steps, eps=eps)
    simple = losses.simple_loss(net, sched, x0, steps=steps, eps=eps, reduce="mean")
    gh, gs = _grads(hybrid.mean(), net), _grads(simple.mean(), net)
    # the mean head gets exactly L_simple's gradient: L_vlb adds nothing there
    for name in ("mean.weight", "mean.bias"):
        torch.testing.assert_close(gh[name], gs[name], rtol=1e-13, atol=1e-15)
    # the variance head gets L_vlb's gradient only
    for name in ("var.weight", "var.bias"):
        assert gs[name] is None
        assert float(gh[name].abs().sum()) > 0
    # without the stop-gradient (the plain bound term, Improved DDPM's L_vlb objective) the mean head does move
    plain = vlb.vlb_term(net, sched, x0, steps, variance="learned", eps=eps)
    gp = _grads(plain.mean(), net)
    assert float(gp["mean.weight"].abs().sum()) > 1e-6


def test_hybrid_value_is_simple_plus_scaled_bound_in_bits(gen):
    sched = _schedule(100)
    m = toy.anisotropic()
    net = _TwoHeads(2)
    x0 = m.sample(32, gen)
    eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    steps = torch.arange(1, 33)  # includes the decoder step 1
    got = losses.hybrid_loss(net, sched, x0, steps, eps=eps, lam=0.001)
    simple = losses.simple_loss(net, sched, x0, steps=steps, eps=eps, reduce="mean")
    term = vlb.vlb_term(net, sched, x0, steps, variance="learned", eps=eps)
    want = simple + 0.001 * 100 * vlb.bits_per_dim(term, x0)
    torch.testing.assert_close(got.detach(), want.detach(), rtol=1e-13, atol=1e-15)


def test_hybrid_trains_a_reference_net_in_float32(gen):
    from diffcheck import nets
    from diffcheck.param import NetModel

    sched = _schedule(50)
    # a tiny Improved-DDPM network: 2C output channels [eps, v_raw], 8-bit data and the discretized decoder
    net = nets.build("iddpm_cifar10", seed=0, **nets.tiny_overrides("iddpm_cifar10"))
    cfg = nets.config("iddpm_cifar10")
    C, H = cfg.data_shape[0], 8
    model = NetModel(net, "eps", lambda t: t * 1000.0, out_channels=C)
    x0 = torch.randint(0, 256, (2, C, H, H), generator=gen).float() * 2 / 255 - 1
    steps = torch.tensor([1, 30])
    loss = losses.hybrid_loss(model, sched, x0, steps, gen, decoder="discretized")
    assert loss.shape == (2,) and bool(torch.isfinite(loss).all())
    loss.mean().backward()
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in net.parameters() if p.requires_grad)


def test_hybrid_needs_a_learned_variance_model(gen):
    sched = _schedule(50)
    m = toy.anisotropic()
    with pytest.raises(TypeError, match="forward_full"):
        losses.hybrid_loss(ExactModel(m, sched.process, "eps"), sched, m.sample(3, gen), 2)
    bad = WithVariance(ExactModel(m, sched.process, "eps"), lambda x, t: x[:, :1])
    with pytest.raises(ValueError, match="shape"):
        losses.hybrid_loss(bad, sched, m.sample(3, gen), 2)
    with pytest.raises(ValueError, match="lam"):
        losses.hybrid_loss(bad, sched, m.sample(3, gen), 2, lam=-1.0)
