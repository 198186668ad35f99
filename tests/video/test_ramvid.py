"""RaMViD: the random masks, the loss on the free frames, the exact denoiser and the resetting sampler."""

import pytest
import torch

import toy
from diffcheck import process as P
from diffcheck import samplers as S
from diffcheck.exact import ExactModel
from diffcheck.testing import stats as st
from diffcheck.video import RaMViDExact, frame_coords, put_frames, ramvid_loss, ramvid_masks, ramvid_objective, ramvid_sample

AR1 = toy.ar1_video(6, 2, rho=0.9)
DDPM = P.DiscreteVP.linear()


def test_masks_follow_ramvids_draw():
    """Unconditional with probability p; else r ~ U{1..max_cond} frames, uniform without replacement among the candidates."""
    gen = torch.Generator().manual_seed(0)
    n = 30000
    cand = [1, 2, 3, 4, 5]
    m = ramvid_masks(n, 6, gen, p_uncond=0.25, max_cond=4, candidates=cand)
    r = m.sum(1)
    lo, hi = st.binomial_interval(int((r == 0).sum()), n, alpha=1e-3)
    assert lo <= 0.25 <= hi
    cond = r[r > 0]
    assert st.proportions_test(torch.bincount(cond, minlength=5)[1:].tolist(), [0.25] * 4, alpha=1e-3).passed
    assert not m[:, 0].any()  # frame 0 is not a candidate
    # given r, each candidate is chosen with probability r / 5: overall E[count_f] = sum_r P(r) r / 5, the same for all
    assert st.proportions_test(m[:, 1:].sum(0).tolist(), [0.2] * 5, alpha=1e-3).passed
    pairs = m[r == 2][:, 1:]  # and all subsets of one size are equally likely: the 10 pairs for r = 2
    codes = (pairs.to(torch.int64) * (2 ** torch.arange(5))).sum(1)
    counts = torch.bincount(codes, minlength=32)[[c for c in range(32) if bin(c).count("1") == 2]]
    assert st.proportions_test(counts.tolist(), [0.1] * 10, alpha=1e-3).passed


def test_loss_keeps_conditioning_frames_clean_and_averages_over_the_free_values(gen):
    seen = {}

    class Probe:
        prediction = "eps"

        def __call__(self, x, t, mask=None):
            seen.update(x=x, mask=mask)
            out = 0.3 * x
            return put_frames(out, torch.full_like(out, 100.0), mask)  # wild outputs on the conditioning frames

    video = AR1.sample(5, gen).reshape(5, 6, 2)
    mask = torch.zeros(5, 6, dtype=torch.bool)
    mask[:, [0, 3]] = True
    mask[4] = False  # one unconditional clip
    t = torch.full((5,), 0.6, dtype=torch.float64)
    eps = torch.randn(5, 6, 2, generator=gen, dtype=torch.float64)
    loss = ramvid_loss(Probe(), DDPM, video, gen, mask=mask, t=t, eps=eps)
    a, s = DDPM.alpha(t[0]), DDPM.sigma(t[0])
    x_t = a * video + s * eps
    x_t[:4, [0, 3]] = video[:4, [0, 3]]
    assert torch.allclose(seen["x"], x_t, atol=1e-14) and torch.equal(seen["mask"], mask)
    keep = (~mask)[:, :, None].expand(5, 6, 2).to(torch.float64)
    err = (eps * keep - 0.3 * x_t) ** 2 * keep
    want = err.sum((1, 2)) / keep.sum((1, 2))
    assert torch.allclose(loss, want, atol=1e-13)  # the outputs of 100 on conditioning frames never enter


def test_exact_denoiser_for_several_masks_at_once(gen):
    """Rows with different masks in one batch each get the exact model of their own conditional."""
    ram = RaMViDExact(AR1, DDPM, 6)
    video = AR1.sample(4, gen)
    masks = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    z = torch.randn(4, 12, generator=gen, dtype=torch.float64)
    x = torch.where(masks.repeat_interleave(2, 1), video, z)
    got = ram(x, 0.45, mask=masks)
    for i in range(4):
        known = frame_coords(masks[i].nonzero().reshape(-1).tolist(), 2) if masks[i].any() else None
        if known is None:
            want = ExactModel(AR1, DDPM)(x[i : i + 1], 0.45)[0]
        else:
            free = toy.gaussian.complement(known, 12)
            want = torch.zeros(12, dtype=torch.float64)
            want[free] = ExactModel(AR1.condition(known, video[i, known]), DDPM)(x[i : i + 1, free], 0.45)[0]
        assert torch.allclose(got[i], want, atol=1e-12)
    x0 = RaMViDExact(AR1, DDPM, 6, "x0")(x, 0.45, mask=masks)
    assert torch.equal(x0[0, :4], video[0, :4])  # x_0 of a conditioning frame is its clean value


def test_reset_sampler_returns_the_clean_frames_and_a_trajectory(gen):
    ram = RaMViDExact(AR1, DDPM, 6)
    clean = AR1.sample(3, gen).reshape(3, 6, 2)
    mask = torch.tensor([True, False, False, False, False, True])
    x_T = DDPM.prior_sample((3, 6, 2), gen)
    res = ramvid_sample(ram, DDPM, clean, mask, x_T, P.iddpm_grid(DDPM, [20]), step=S.ancestral_step, generator=gen, full=True)
    assert torch.equal(res.samples[:, [0, 5]], clean[:, [0, 5]])
    assert res.nfe == 20 and len(res.trajectory) == 21
    # per-sample masks work as well
    masks = torch.tensor([[1, 0, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    out = ramvid_sample(ram, DDPM, clean, masks, x_T, P.ddim_grid(DDPM, 10), step=S.ddim_step)
    assert torch.equal(out[0, 0], clean[0, 0]) and torch.equal(out[1, 2:4], clean[1, 2:4])


def test_objective_is_the_mean_of_the_per_sample_losses():
    video = AR1.sample(8, torch.Generator().manual_seed(1)).reshape(8, 6, 2)
    ram = RaMViDExact(AR1, DDPM, 6)
    a = ramvid_objective(DDPM, p_uncond=0.5, max_cond=3)(ram, video, torch.Generator().manual_seed(2))
    b = ramvid_loss(ram, DDPM, video, torch.Generator().manual_seed(2), p_uncond=0.5, max_cond=3).mean()
    assert torch.equal(a, b)


def test_bad_input_names_the_argument(gen):
    with pytest.raises(ValueError, match="max_cond"):
        ramvid_masks(4, 6, gen, max_cond=6)
    with pytest.raises(ValueError, match="candidates"):
        ramvid_masks(4, 6, gen, candidates=[0, 6])
    with pytest.raises(ValueError, match="p_uncond"):
        ramvid_masks(4, 6, gen, p_uncond=2.0)
    with pytest.raises(ValueError, match="mask"):
        ramvid_loss(RaMViDExact(AR1, DDPM, 6), DDPM, torch.zeros(2, 6, 2), gen, mask=torch.zeros(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="video"):
        ramvid_loss(RaMViDExact(AR1, DDPM, 6), DDPM, torch.zeros(2, 12), gen)
    with pytest.raises(ValueError, match="prediction"):
        RaMViDExact(AR1, DDPM, 6, "score")
    with pytest.raises(ValueError, match="whole number"):
        RaMViDExact(AR1, DDPM, 5)
    with pytest.raises(ValueError, match="shape"):
        ramvid_sample(RaMViDExact(AR1, DDPM, 6), DDPM, torch.zeros(2, 6, 2), [1, 0, 0, 0, 0, 0], torch.zeros(2, 6, 3),
                      P.ddim_grid(DDPM, 5), step=S.ddim_step)
