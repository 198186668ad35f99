"""The training loop on one process: bit-exact resume, data order, micro-batches, warmup, clipping, EMA, logging,
checkpoints that cannot run code, and clear errors."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.utils.data.distributed import DistributedSampler

from diffcheck import nets
from diffcheck import process as P
from diffcheck.nets.wrap import wrap_net
from diffcheck.training import EMA, CheckpointError, Shards, TrainConfig, eps_mse_objective, latest_checkpoint, load_checkpoint, train


class Denoiser(nn.Module):
    """A small ε-predictor for 2D points, with dropout so that resume must restore the dropout masks too."""

    prediction = "eps"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = nn.Sequential(nn.Linear(3, 64), nn.SiLU(), nn.Dropout(0.3), nn.Linear(64, 64), nn.SiLU(),
                                     nn.Linear(64, 2))

    def forward(self, x, t):
        t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])
        return self.net(torch.cat([x, t[:, None]], 1))


def points(n: int = 96, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g) * 0.3 + torch.tensor([1.0, -0.5])


def config(**kw) -> TrainConfig:
    base = dict(steps=9, batch_size=16, lr=3e-3, warmup_steps=3, ema_rate=0.8, progress=False, data_seed=5)
    return TrainConfig(**{**base, **kw})


class Interrupt(Exception):
    pass


def stop_at(step: int):
    def on_step(record):
        if record["step"] == step:
            raise Interrupt

    return on_step


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs by {(a[name] - b[name]).abs().max():.3g}"


@pytest.mark.parametrize("chunks", [1, 2])
def test_interrupted_and_resumed_run_equals_the_uninterrupted_run_bit_for_bit(tmp_path, chunks):
    process = P.VP()
    cfg = config(chunks=chunks, checkpoint_every=3)
    whole = train(Denoiser(), eps_mse_objective(process), points(), cfg, generator=torch.Generator().manual_seed(11),
                  out_dir=tmp_path / "whole")
    with pytest.raises(Interrupt):  # dies after step 7; the last checkpoint is step 6
        train(Denoiser(), eps_mse_objective(process), points(), cfg, generator=torch.Generator().manual_seed(11),
              out_dir=tmp_path / "cut", on_step=stop_at(7))
    assert load_checkpoint(latest_checkpoint(tmp_path / "cut" / "checkpoints")).step == 6
    # a fresh process: other initial weights and another generator seed, all replaced by the checkpoint
    resumed = train(Denoiser(seed=99), eps_mse_objective(process), points(), cfg, generator=torch.Generator().manual_seed(0),
                    out_dir=tmp_path / "cut")
    assert resumed.step == whole.step == 9
    assert [r["step"] for r in resumed.records] == [7, 8, 9]
    assert_same_weights(resumed.model.state_dict(), whole.model.state_dict())
    assert_same_weights(resumed.ema.state_dict(), whole.ema.state_dict())
    # the log of the resumed run holds every step once, with the uninterrupted run's losses
    log = [json.loads(line) for line in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    ref = [json.loads(line) for line in (tmp_path / "whole" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 10))
    assert [r["loss"] for r in log] == [r["loss"] for r in ref]
    # training again with steps reached does nothing
    again = train(Denoiser(seed=5), eps_mse_objective(process), points(), cfg, generator=torch.Generator(), out_dir=tmp_path / "cut")
    assert again.records == [] and again.step == 9
    assert_same_weights(again.model.state_dict(), whole.model.state_dict())


def test_resume_of_a_tiny_image_network_with_dropout_is_bit_exact(tmp_path):
    overrides = {**nets.tiny_overrides("ddpm_cifar10"), "image_size": 8, "in_channels": 1, "out_channels": 1,
                 "ch_mult": (1,), "attn_resolutions": (), "dropout": 0.2}
    process = P.DiscreteVP.linear()

    def model():
        return wrap_net(nets.build("ddpm_cifar10", seed=0, **overrides), process)

    data = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
    cfg = config(steps=4, batch_size=8, checkpoint_every=2)
    whole = train(model(), eps_mse_objective(process), data, cfg, generator=torch.Generator().manual_seed(3))
    with pytest.raises(Interrupt):
        train(model(), eps_mse_objective(process), data, cfg, generator=torch.Generator().manual_seed(3), out_dir=tmp_path,
              on_step=stop_at(3))
    resumed = train(model(), eps_mse_objective(process), data, cfg, generator=torch.Generator().manual_seed(3), out_dir=tmp_path)
    assert_same_weights(resumed.model.state_dict(), whole.model.state_dict())
    assert_same_weights(resumed.ema.state_dict(), whole.ema.state_dict())


def test_dropout_and_noise_seeds_differ_per_micro_batch_repeat_per_run_and_leave_the_global_generator():
    def run(seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        masks, noises = [], []

        def loss_fn(model, batch, generator):
            masks.append(torch.nn.functional.dropout(torch.ones(64), 0.5, training=True))  # global RNG, as nn.Dropout
            noises.append(torch.randn(64, generator=generator))
            return model(batch, 0.5).pow(2).mean()

        train(Denoiser(), loss_fn, points(), config(steps=3, chunks=2), generator=torch.Generator().manual_seed(seed))
        return masks, noises

    torch.manual_seed(123)
    before = torch.get_rng_state()
    masks, noises = run(1)
    assert torch.equal(torch.get_rng_state(), before)
    assert len(masks) == 6
    # every micro-batch of every step has its own dropout mask and noise (64 fair coins: a repeat has chance 2^-64)
    assert len({tuple(m.tolist()) for m in masks}) == 6 and len({tuple(z.tolist()) for z in noises}) == 6
    again_masks, again_noises = run(1)
    assert all(torch.equal(a, b) for a, b in zip(masks + noises, again_masks + again_noises))
    other_masks, _ = run(2)
    assert not torch.equal(masks[0], other_masks[0])


def test_shards_match_torch_distributed_sampler():
    class Sized:
        def __len__(self):
            return 37

    for world_size in (1, 2, 3):
        for rank in range(world_size):
            for epoch in (0, 1, 4):
                ref = DistributedSampler(Sized(), num_replicas=world_size, rank=rank, shuffle=True, seed=9)
                ref.set_epoch(epoch)
                ours = Shards(37, world_size=world_size, rank=rank, seed=9).indices(epoch)
                assert ours.tolist() == list(iter(ref))
    # every sample appears once per epoch (37 = 2·18 + 1: one repeat pads the two shards to 19 each)
    both = torch.cat([Shards(37, world_size=2, rank=r, seed=9).indices(0) for r in (0, 1)])
    assert sorted(set(both.tolist())) == list(range(37)) and both.numel() == 38
    assert not torch.equal(Shards(37, seed=9).indices(0), Shards(37, seed=9).indices(1))
    assert Shards(5, shuffle=False).indices(3).tolist() == [0, 1, 2, 3, 4]


def test_each_epoch_visits_every_sample_once_in_strided_micro_batches():
    calls: list[list[int]] = []

    def loss_fn(model, batch, generator):
        x, idx = batch
        calls.append(idx.tolist())
        return model(x, 0.5).pow(2).mean()

    cfg = config(steps=6, batch_size=16, chunks=4)
    train(Denoiser(), loss_fn, (points(48), torch.arange(48)), cfg, generator=torch.Generator().manual_seed(0))
    assert len(calls) == 6 * 4 and all(len(c) == 4 for c in calls)
    order = Shards(48, seed=cfg.data_seed)
    for step in range(6):
        epoch, j = divmod(step, 3)  # 48 samples, batches of 16: three steps per epoch
        batch = order.indices(epoch)[16 * j : 16 * (j + 1)].tolist()
        assert calls[4 * step : 4 * step + 4] == [batch[c::4] for c in range(4)]
    for epoch in range(2):
        visited = sum(calls[12 * epoch : 12 * (epoch + 1)], [])
        assert sorted(visited) == list(range(48))


def test_warmup_schedule_clipping_and_logged_records(tmp_path):
    grads: list[float] = []
    model = Denoiser()

    def grad_norm_after(record):
        grads.append(math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters() if p.grad is not None)))

    cfg = config(steps=6, warmup_steps=4, lr=1e-3, grad_clip=0.05)
    result = train(model, eps_mse_objective(P.VP()), points(), cfg, generator=torch.Generator().manual_seed(0), out_dir=tmp_path,
                   on_step=grad_norm_after)
    lrs = [r["lr"] for r in result.records]
    assert lrs == [1e-3 * min(1.0, (s + 1) / 4) for s in range(6)]
    for record, after in zip(result.records, grads):
        # the logged norm is the norm before clipping; the gradient used is clipped to grad_clip
        assert record["grad_norm"] > 0.05
        assert after == pytest.approx(0.05, rel=1e-5)
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert logged == [json.loads(json.dumps(r)) for r in result.records]
    assert set(logged[0]) == {"step", "epoch", "loss", "lr", "grad_norm", "seconds"}


def test_ema_is_the_exponentially_weighted_sum_of_the_iterates():
    # after updates with θ_1..θ_k from θ_0: ema = r^k θ_0 + (1 − r) Σ_j r^(k−j) θ_j
    g = torch.Generator().manual_seed(0)
    model = nn.Linear(3, 2).double()
    rate = 0.9
    ema = EMA(model, rate)
    thetas = [model.weight.detach().clone()]
    for _ in range(7):
        with torch.no_grad():
            model.weight.copy_(torch.randn(2, 3, generator=g, dtype=torch.float64))
        thetas.append(model.weight.detach().clone())
        ema.update(model)
    k = len(thetas) - 1
    expected = rate**k * thetas[0] + sum((1 - rate) * rate ** (k - j) * thetas[j] for j in range(1, k + 1))
    torch.testing.assert_close(ema.state_dict()["weight"], expected, rtol=1e-14, atol=1e-14)
    fresh = nn.Linear(3, 2).double()
    ema.copy_to(fresh)
    torch.testing.assert_close(fresh.weight, expected, rtol=1e-14, atol=1e-14)
    with pytest.raises(ValueError, match="rate"):
        EMA(model, 1.0)
    with pytest.raises(ValueError, match="missing"):
        ema.load_state_dict({})


def test_checkpoint_files_load_without_pickle_and_a_code_carrying_state_is_refused(tmp_path):
    train(Denoiser(), eps_mse_objective(P.VP()), points(), config(steps=2), generator=torch.Generator().manual_seed(0),
          out_dir=tmp_path)
    path = latest_checkpoint(tmp_path / "checkpoints")
    assert sorted(p.name for p in path.iterdir()) == ["ema.safetensors", "meta.json", "model.safetensors", "state.pt"]
    ckpt = load_checkpoint(path)
    assert ckpt.step == 2 and ckpt.meta["data"] == {"epoch": 0, "batch": 2, "seed": 5}
    assert set(ckpt.state) == {"optimizer", "scaler", "generator"}

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    torch.save({"optimizer": Payload()}, path / "state.pt")
    with pytest.raises(CheckpointError, match="state.pt was refused") as err:
        load_checkpoint(path)
    assert "weights_only" not in str(err.value)
    assert not marker.exists()


def test_resume_refuses_a_changed_config(tmp_path):
    train(Denoiser(), eps_mse_objective(P.VP()), points(), config(steps=2), generator=torch.Generator(), out_dir=tmp_path)
    with pytest.raises(ValueError, match="lr"):
        train(Denoiser(), eps_mse_objective(P.VP()), points(), config(steps=4, lr=1.0), generator=torch.Generator(),
              out_dir=tmp_path)
    # steps may grow
    assert train(Denoiser(), eps_mse_objective(P.VP()), points(), config(steps=3), generator=torch.Generator(),
                 out_dir=tmp_path).step == 3


def test_bf16_autocast_on_cpu_trains():
    result = train(Denoiser(), eps_mse_objective(P.VP()), points(), config(steps=3, precision="bf16"),
                   generator=torch.Generator().manual_seed(0))
    assert all(math.isfinite(r["loss"]) for r in result.records)


def test_progress_bar_goes_to_stderr_and_can_be_switched_off(capsys):
    train(Denoiser(), eps_mse_objective(P.VP()), points(), config(steps=2, progress=True), generator=torch.Generator())
    captured = capsys.readouterr()
    assert "training" in captured.err and captured.out == ""
    train(Denoiser(), eps_mse_objective(P.VP()), points(), config(steps=2, progress=False), generator=torch.Generator())
    assert capsys.readouterr().err == ""


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="chunks"):
        TrainConfig(steps=1, batch_size=10, chunks=3)
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(steps=1, batch_size=10, optimizer="sgd")
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(steps=1, batch_size=10, precision="fp8")
    with pytest.raises(ValueError, match="ema_rate"):
        TrainConfig(steps=1, batch_size=10, ema_rate=1.5)
    with pytest.raises(TypeError, match="steps"):
        TrainConfig(steps=1.5, batch_size=10)
    g = torch.Generator()
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(Denoiser(), eps_mse_objective(P.VP()), points(8), config(batch_size=16), generator=g)
    with pytest.raises(ValueError, match="first dimension"):
        train(Denoiser(), eps_mse_objective(P.VP()), (points(8), torch.arange(7)), config(batch_size=4), generator=g)
    with pytest.raises(TypeError, match="generator"):
        train(Denoiser(), eps_mse_objective(P.VP()), points(), config(), generator=0)
    with pytest.raises(ValueError, match="scalar"):
        train(Denoiser(), lambda m, b, gen: m(b, 0.5), points(), config(), generator=g)
    with pytest.raises(FloatingPointError, match="step 1"):
        train(Denoiser(), lambda m, b, gen: m(b, 0.5).sum() * math.nan, points(), config(), generator=g)
    with pytest.raises(ValueError, match="fp16"):
        train(Denoiser(), eps_mse_objective(P.VP()), points(), config(precision="fp16"), generator=g)
    with pytest.raises(ValueError, match="distributed=True"):
        train(Denoiser(), eps_mse_objective(P.VP()), points(), config(), generator=g, distributed=True)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_on_cuda_trains_and_resumes(tmp_path, precision):
    device = torch.device("cuda")
    process = P.VP()
    data = points().to(device)
    cfg = config(steps=4, precision=precision, checkpoint_every=2)
    first = train(Denoiser().to(device), eps_mse_objective(process), data, cfg,
                  generator=torch.Generator(device=device).manual_seed(0), out_dir=tmp_path)
    assert all(math.isfinite(r["loss"]) for r in first.records)
    state = load_checkpoint(latest_checkpoint(tmp_path / "checkpoints")).state
    assert (precision == "fp16") == bool(state["scaler"])
    more = train(Denoiser().to(device), eps_mse_objective(process), data, config(steps=6, precision=precision, checkpoint_every=2),
                 generator=torch.Generator(device=device), out_dir=tmp_path)
    assert more.step == 6 and [r["step"] for r in more.records] == [5, 6]
