"""MCVD: masks, the loss, the exact predictor in each mask state, MCVD's grid convention and rollout."""

import pytest
import torch

import toy
from diffcheck import process as P
from diffcheck import samplers as S
from diffcheck.exact import ExactModel
from diffcheck.testing import stats as st
from diffcheck.video import Blocks, MCVDExact, conditioning, mcvd_grid, mcvd_loss, mcvd_masks, mcvd_objective, rollout

BLOCKS = Blocks(past=2, current=2, future=1)
WIN = toy.ar1_video(5, 2, rho=0.9)
DDPM = P.DiscreteVP.linear()


def test_each_block_is_kept_with_probability_one_minus_p_independently():
    gen = torch.Generator().manual_seed(0)
    n = 40000
    s = mcvd_masks(n, gen, p_mask=0.5, p_future=0.3)
    counts = [int((~s[:, 0] & ~s[:, 1]).sum()), int((s[:, 0] & ~s[:, 1]).sum()), int((~s[:, 0] & s[:, 1]).sum()), int((s[:, 0] & s[:, 1]).sum())]
    assert st.proportions_test(counts, [0.5 * 0.3, 0.5 * 0.3, 0.5 * 0.7, 0.5 * 0.7], alpha=1e-3).passed
    assert not mcvd_masks(100, gen, p_mask=1.0, p_future=1.0).any()
    assert mcvd_masks(100, gen, p_mask=0.0, p_future=0.0).all()


def test_conditioning_zeroes_the_masked_blocks_only(gen):
    w = WIN.sample(4, gen).reshape(4, 5, 2)
    past, _, fut = BLOCKS.split(w)
    state = torch.tensor([[False, False], [True, False], [False, True], [True, True]])
    c = conditioning(BLOCKS, past, fut, state)
    assert c.shape == (4, 3, 2)
    for i, (kp, kf) in enumerate(state.tolist()):
        assert torch.equal(c[i, :2], past[i] if kp else torch.zeros_like(past[i]))
        assert torch.equal(c[i, 2:], fut[i] if kf else torch.zeros_like(fut[i]))


def test_loss_is_half_the_summed_squared_eps_error_of_the_noised_current_block(gen):
    seen = {}

    class Probe:
        prediction = "eps"

        def __call__(self, z, t, cond=None, cond_mask=None):
            seen.update(z=z, t=t, cond=cond, mask=cond_mask)
            return 0.25 * z

    w = WIN.sample(6, gen).reshape(6, 5, 2)
    t = torch.full((6,), 0.37, dtype=torch.float64)
    eps = torch.randn(6, 2, 2, generator=gen, dtype=torch.float64)
    state = torch.tensor([[True, False]] * 3 + [[False, True]] * 3)
    loss = mcvd_loss(Probe(), DDPM, w, BLOCKS, gen, t=t, state=state, eps=eps)
    a, s = DDPM.alpha(t[0]), DDPM.sigma(t[0])
    z = a * w[:, 2:4] + s * eps
    assert torch.allclose(seen["z"], z, atol=1e-14)
    assert torch.equal(seen["mask"], state)
    assert torch.equal(seen["cond"][:3, 2:], torch.zeros(3, 1, 2, dtype=torch.float64))
    assert torch.allclose(loss, 0.5 * ((eps - 0.25 * z) ** 2).sum((1, 2)), atol=1e-14)


def test_exact_model_in_every_state_and_in_mcvds_own_mask_format(gen):
    exact = MCVDExact(WIN, DDPM, BLOCKS)
    w = WIN.sample(3, gen).reshape(3, 5, 2)
    past, cur, fut = BLOCKS.split(w)
    z = torch.randn(3, 2, 2, generator=gen, dtype=torch.float64)
    cov, mu = WIN.covs[0], WIN.means[0]
    for st_ in ([False, False], [True, False], [False, True], [True, True]):
        state = torch.tensor([st_]).expand(3, 2)
        got = exact(z, 0.6, cond=conditioning(BLOCKS, past, fut, state), cond_mask=state)
        keep = [4, 5, 6, 7] + ([0, 1, 2, 3] if st_[0] else []) + ([8, 9] if st_[1] else [])
        for i in range(3):
            sub = toy.single_gaussian(mu[keep], cov[keep][:, keep])
            if len(keep) > 4:
                sub = sub.condition(list(range(4, len(keep))), w[i].reshape(-1)[keep[4:]])
            want = ExactModel(sub, DDPM, "eps")(z[i : i + 1].reshape(1, -1), 0.6)
            assert torch.allclose(got[i].reshape(1, -1), want, atol=1e-12)
    # MCVD passes the past bit alone as cond_mask (B,): the future block then counts as masked
    one_bit = exact(z, 0.6, cond=conditioning(BLOCKS, past, fut, torch.tensor([[True, False]]).expand(3, 2)), cond_mask=torch.ones(3, 1))
    two_bits = exact(z, 0.6, cond=conditioning(BLOCKS, past, fut, torch.tensor([[True, False]]).expand(3, 2)), cond_mask=torch.tensor([[1, 0]] * 3))
    assert torch.equal(one_bit, two_bits)


def test_exact_predictor_minimises_the_loss_perturbations_raise_it_by_half_their_square(gen):
    """E loss(eps* + delta) = E loss(eps*) + E||delta||² / 2 for any fixed delta; checked with common random numbers."""
    exact = MCVDExact(WIN, DDPM, BLOCKS)
    n = 4000
    w = WIN.sample(n, gen).reshape(n, 5, 2)
    t = torch.rand(n, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    eps = torch.randn(n, 2, 2, generator=gen, dtype=torch.float64)
    state = mcvd_masks(n, gen)

    class Shifted:
        prediction = "eps"

        def __call__(self, z, t, cond=None, cond_mask=None):
            return exact(z, t, cond=cond, cond_mask=cond_mask) + 0.1

    base = mcvd_loss(exact, DDPM, w, BLOCKS, gen, t=t, state=state, eps=eps)
    moved = mcvd_loss(Shifted(), DDPM, w, BLOCKS, gen, t=t, state=state, eps=eps)
    diff = moved - base  # = -0.1 sum(eps - eps*) + 0.02: its mean is 0.02 by orthogonality
    assert st.zero_mean_test(diff - 0.5 * 0.1**2 * 4, alpha=1e-3).passed


def test_mcvd_grid_follows_mcvds_reversed_index():
    """MCVD stores alpha_bar reversed (label k = 0 the noisiest, k = T − 1 the last step); 100 subsampled labels
    k = 0, 10, ..., 990 are DDPM steps 1000, 990, ..., 10."""
    grid = mcvd_grid(DDPM, 100)
    assert grid.shape == (101,)
    steps = torch.round(grid * DDPM.T).long()
    assert steps[:3].tolist() == [1000, 990, 980] and steps[-2:].tolist() == [10, 0]
    labels = torch.arange(0, 1000, 10)
    stored = DDPM.alphas_cumprod[1:].flip(0)  # MCVD's table: stored[k] = alpha_bar of step T − k
    assert torch.allclose(stored[labels], DDPM.alpha(grid[:-1]) ** 2, rtol=1e-12)
    assert torch.equal(mcvd_grid(DDPM, 1000), P.ddpm_grid(DDPM))
    with pytest.raises(TypeError, match="DiscreteVP"):
        mcvd_grid(P.VP(), 100)


def test_rollout_shapes_and_the_conditioning_it_passes(gen):
    calls = []

    class Echo:
        prediction = "x0"

        def __call__(self, z, t, cond=None, cond_mask=None):
            calls.append((cond.clone(), cond_mask.clone()))
            return torch.ones_like(z)

    first = torch.randn(3, 2, 2, generator=gen, dtype=torch.float64)
    grid = torch.tensor([0.5, 0.0], dtype=torch.float64)
    out = rollout(Echo(), DDPM, BLOCKS, grid, sampler=S.ddim, generator=gen, n_blocks=2, first=first)
    assert out.shape == (3, 6, 2)
    assert torch.equal(out[:, :2], first) and torch.allclose(out[:, 2:], torch.ones(3, 4, 2, dtype=torch.float64))
    assert torch.equal(calls[0][0][:, :2], first) and torch.equal(calls[0][0][:, 2:], torch.zeros(3, 1, 2, dtype=torch.float64))
    assert torch.equal(calls[1][0][:, :2], out[:, 2:4])  # the second block is conditioned on the first predicted one
    assert all(torch.equal(m, torch.tensor([[True, False]]).expand(3, 2)) for _, m in calls)
    fresh = rollout(Echo(), DDPM, BLOCKS, grid, sampler=S.ddim, generator=gen, n_blocks=3, batch=2, frame_shape=(2,))
    assert fresh.shape == (2, 6, 2)


def test_exact_rollout_keeps_the_ar1_autocorrelation():
    """The AR(1) video is Markov, so conditioning each block on the last two frames is exact: the exact model's
    rollout (DDPM, 1000 steps) matches rho^k at lags 1-3 within 4 standard errors."""
    from diffcheck.checks.video_trained import autocorrelations

    gen = torch.Generator().manual_seed(5)
    video = rollout(MCVDExact(WIN, DDPM, BLOCKS), DDPM, BLOCKS, P.ddpm_grid(DDPM), sampler=S.ddpm_ancestral, generator=gen,
                    n_blocks=3, batch=1500, frame_shape=(2,))
    for k, (r, se) in autocorrelations(video).items():
        assert abs(r - 0.9**k) < 4 * se


def test_bad_input_names_the_argument(gen):
    with pytest.raises(ValueError, match="current"):
        Blocks(2, 0)
    with pytest.raises(ValueError, match="p_mask"):
        mcvd_masks(4, gen, p_mask=1.5)
    with pytest.raises(ValueError, match="window"):
        BLOCKS.split(torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match="whole number"):
        MCVDExact(toy.ar1_video(3, 2), DDPM, BLOCKS)
    with pytest.raises(ValueError, match="past"):
        rollout(MCVDExact(WIN, DDPM, BLOCKS), DDPM, Blocks(0, 2, 1), mcvd_grid(DDPM, 10), sampler=S.ddim, generator=gen,
                n_blocks=1, batch=2, frame_shape=(2,))
    with pytest.raises(ValueError, match="first"):
        rollout(MCVDExact(WIN, DDPM, BLOCKS), DDPM, BLOCKS, mcvd_grid(DDPM, 10), sampler=S.ddim, generator=gen, n_blocks=1,
                first=torch.zeros(2, 1, 2))
    with pytest.raises(ValueError, match="p_future"):
        mcvd_objective(DDPM, BLOCKS, p_future=-0.1)
