"""The masking schemes' training steps with the reference video networks, on tiny moving-blob videos made here."""

import math

import pytest
import torch

from diffcheck import process as P
from diffcheck import nets
from diffcheck.training import TrainConfig, train
from diffcheck.video import Blocks, mcvd_loss, mcvd_objective, ramvid_loss, ramvid_objective
from diffcheck.video.netmodels import MCVDNetModel, RaMViDNetModel, step_index

DDPM = P.DiscreteVP.linear()


def moving_blobs(n: int, frames: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    """(n, frames, 1, size, size) videos in [-1, 1]: a Gaussian blob of random width moving at a random constant velocity."""
    g = torch.Generator().manual_seed(seed)
    start = 3 + (size - 6) * torch.rand(n, 2, generator=g)
    velocity = 2 * torch.rand(n, 2, generator=g) - 1
    width = 1.5 + torch.rand(n, generator=g)
    ij = torch.arange(size, dtype=torch.float32)
    f = torch.arange(frames, dtype=torch.float32)
    centre = start[:, None, :] + velocity[:, None, :] * f[None, :, None]  # (n, F, 2)
    d2 = (ij[None, None, :, None] - centre[..., 0, None, None]) ** 2 + (ij[None, None, None, :] - centre[..., 1, None, None]) ** 2
    blob = torch.exp(-d2 / (2 * width[:, None, None, None] ** 2))
    return (2 * blob - 1)[:, :, None]


def test_moving_blobs_move():
    v = moving_blobs(4, 5)
    assert v.shape == (4, 5, 1, 16, 16) and float(v.min()) >= -1 and float(v.max()) <= 1
    peaks = v[:, :, 0].flatten(2).argmax(2)
    assert bool((peaks[:, 0] != peaks[:, -1]).any())


def _changed(before, model):
    return any(not torch.equal(a, b) for a, b in zip(before, [p.detach() for p in model.parameters()]))


def test_mcvd_masked_training_step_with_mcvds_network():
    blocks = Blocks(past=2, current=2, future=1)
    net = nets.build("mcvd_smmnist", seed=0, **nets.tiny_overrides("mcvd_smmnist"), num_frames_future=1, cond_emb=True)
    model = MCVDNetModel(net, DDPM)
    window = moving_blobs(4, blocks.total)
    gen = torch.Generator().manual_seed(1)
    state = torch.tensor([[False, False], [True, False], [False, True], [True, True]])
    with torch.no_grad():
        loss = mcvd_loss(model, DDPM, window, blocks, gen, state=state)
    assert loss.shape == (4,) and bool(torch.isfinite(loss).all())
    # MCVD's output layers start at scale 1e-10, so eps_theta ~ 0: the loss is ½||eps||² over k = 2·16·16 values,
    # mean k/2 and standard deviation sqrt(k/2) per sample
    k = 2 * 16 * 16
    assert abs(float(loss.mean()) - k / 2) < 6 * math.sqrt(k / 2) / 2
    before = [p.detach().clone() for p in model.parameters()]
    res = train(model, mcvd_objective(DDPM, blocks), window, TrainConfig(steps=1, batch_size=4, lr=1e-3, progress=False),
                generator=torch.Generator().manual_seed(2))
    assert res.step == 1 and all(math.isfinite(r["loss"]) for r in res.records)
    assert _changed(before, model)


def test_ramvid_random_mask_training_step_with_ramvids_network():
    net = nets.build("ramvid_bair", seed=0, **nets.tiny_overrides("ramvid_bair"), in_channels=1)
    model = RaMViDNetModel(net, DDPM)
    video = moving_blobs(4, 6)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        loss = ramvid_loss(model, DDPM, video, gen, p_uncond=0.25, max_cond=4)
    assert loss.shape == (4,) and bool(torch.isfinite(loss).all())
    # the output convolution starts at zero, so eps_theta = 0: the loss is the mean of eps² over the free values
    assert abs(float(loss.mean()) - 1.0) < 0.2  # 6 standard errors: >= 512 free values per sample, 4 samples
    before = [p.detach().clone() for p in model.parameters()]
    res = train(model, ramvid_objective(DDPM, p_uncond=0.25, max_cond=4), video,
                TrainConfig(steps=1, batch_size=4, lr=1e-3, progress=False), generator=torch.Generator().manual_seed(4))
    assert res.step == 1 and all(math.isfinite(r["loss"]) for r in res.records)
    assert _changed(before, model)


def test_step_index_maps_grid_times_to_the_networks_steps():
    t = DDPM.times(torch.tensor([1, 500, 1000]))
    assert step_index(DDPM, t, 3).tolist() == [0, 499, 999]
    with pytest.raises(ValueError, match="step times"):
        step_index(DDPM, torch.tensor([0.0005, 0.5, 1.0], dtype=torch.float64), 3)
    with pytest.raises(TypeError, match="DiscreteVP"):
        step_index(P.VP(), 0.5, 1)
