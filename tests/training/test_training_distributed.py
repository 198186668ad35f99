"""Two CPU processes on the gloo backend, launched by torchrun: DDP training equals one process on the same global
batch, and sharded sampling equals one process exactly.

Why exact equality is the right tolerance. The global batch is cut into the same two micro-batches either way
(same samples, same noise seeds, same dropout seeds). One process accumulates g0/2 + g1/2 (each backward pass
is linear in its upstream gradient, so halving the loss halves every gradient exactly); DDP averages g0 and
g1 over two ranks, (g0 + g1)/2, also exactly g0/2 + g1/2 since halving is exact in binary floating point and a
sum of two terms does not depend on their order. Everything after the gradient (clipping, Adam, EMA) is the same
code on the same numbers, and both runs use one thread. So the weights must agree to the last bit; the
all-reduce order would matter only from three processes on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = Path(sys.executable).with_name("torchrun")

SCRIPT = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    import torch
    from safetensors.torch import save_file
    from torch import nn
    from diffcheck import process as P
    from diffcheck.training import TrainConfig, eps_mse_objective, init_distributed, sample_sharded, train

    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    w = init_distributed()

    class Denoiser(nn.Module):
        prediction = "eps"
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(3, 32), nn.SiLU(), nn.Dropout(0.2), nn.Linear(32, 2))
        def forward(self, x, t):
            t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])
            return self.net(torch.cat([x, t[:, None]], 1))

    def fresh():
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return Denoiser()

    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(1)) * 0.5 + 1.0
    process = P.VP()
    cfg = TrainConfig(steps=5, batch_size=16, chunks=2, lr=1e-2, ema_rate=0.9, checkpoint_every=2, progress=False,
                      data_seed=3)
    ddp = train(fresh(), eps_mse_objective(process), data, cfg, generator=torch.Generator().manual_seed(7), out_dir=out / "ddp")
    report = {"rank": w.rank, "size": w.size, "losses": [r["loss"] for r in ddp.records]}
    if w.is_main:
        single = train(fresh(), eps_mse_objective(process), data, cfg, generator=torch.Generator().manual_seed(7),
                       distributed=False)
        save_file(ddp.model.state_dict(), str(out / "ddp_model.safetensors"))
        save_file(single.model.state_dict(), str(out / "single_model.safetensors"))
        save_file(ddp.ema.state_dict(), str(out / "ddp_ema.safetensors"))
        save_file(single.ema.state_dict(), str(out / "single_ema.safetensors"))
        report["single_losses"] = [r["loss"] for r in single.records]

    net = fresh().eval()

    def sample_fn(seeds):
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        x = torch.stack([torch.randn(2, generator=g) for g in gens])
        with torch.no_grad():
            for t in (0.9, 0.6, 0.3):
                x = x - 0.1 * net(x, t) + 0.05 * torch.stack([torch.randn(2, generator=g) for g in gens])
        return x

    samples = sample_sharded(sample_fn, 11, base_seed=100, batch_size=3)
    report["got_samples"] = samples is not None
    if samples is not None:
        save_file({"samples": samples}, str(out / "sharded.safetensors"))
    (out / f"report{w.rank}.json").write_text(json.dumps(report))
''')


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """Run the script once under torchrun with two processes; return its output folder."""
    out = tmp_path_factory.mktemp("ddp")
    script = out / "run.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    cmd = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", str(script), str(out)]
    proc = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return out


def test_ddp_training_equals_one_process_on_the_same_global_batch(launched):
    reports = [json.loads((launched / f"report{r}.json").read_text()) for r in (0, 1)]
    assert [(r["rank"], r["size"]) for r in reports] == [(0, 2), (1, 2)]
    ddp, single = load_file(str(launched / "ddp_model.safetensors")), load_file(str(launched / "single_model.safetensors"))
    assert ddp.keys() == single.keys()
    for name in ddp:
        assert torch.equal(ddp[name], single[name]), f"{name}: max difference {(ddp[name] - single[name]).abs().max():.3g}"
    ddp_ema, single_ema = load_file(str(launched / "ddp_ema.safetensors")), load_file(str(launched / "single_ema.safetensors"))
    for name in ddp_ema:
        assert torch.equal(ddp_ema[name], single_ema[name])
    # the logged loss is the mean over both ranks' micro-batches: the same numbers on every rank and in one process
    assert reports[0]["losses"] == reports[1]["losses"] == reports[0]["single_losses"]
    # training moved the weights: the losses change from step to step
    assert len(set(reports[0]["losses"])) == len(reports[0]["losses"])


def test_only_rank_zero_writes_logs_and_checkpoints(launched):
    lines = (launched / "ddp" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4, 5]
    ckpts = sorted(p.name for p in (launched / "ddp" / "checkpoints").iterdir())
    assert ckpts == ["latest.json", "step_00000004", "step_00000005"]
    assert json.loads((launched / "ddp" / "checkpoints" / "latest.json").read_text())["step"] == 5


def test_sharded_sampling_on_two_processes_equals_one(launched):
    reports = [json.loads((launched / f"report{r}.json").read_text()) for r in (0, 1)]
    assert reports[0]["got_samples"] and not reports[1]["got_samples"]
    sharded = load_file(str(launched / "sharded.safetensors"))["samples"]
    # the same function in this single process, one thread as in the workers
    from torch import nn

    from diffcheck.training import sample_sharded

    class Denoiser(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(3, 32), nn.SiLU(), nn.Dropout(0.2), nn.Linear(32, 2))

        def forward(self, x, t):
            t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])
            return self.net(torch.cat([x, t[:, None]], 1))

    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = Denoiser().eval()

    def sample_fn(seeds):
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        x = torch.stack([torch.randn(2, generator=g) for g in gens])
        with torch.no_grad():
            for t in (0.9, 0.6, 0.3):
                x = x - 0.1 * net(x, t) + 0.05 * torch.stack([torch.randn(2, generator=g) for g in gens])
        return x

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = sample_sharded(sample_fn, 11, base_seed=100, batch_size=3)
    finally:
        torch.set_num_threads(threads)
    assert one.shape == (11, 2)
    assert torch.equal(sharded, one)
    # and sample i is seed i's alone: drawn on its own, it is the same row
    torch.set_num_threads(1)
    try:
        alone = sample_fn([105])
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(alone[0], one[5], rtol=1e-6, atol=1e-6)
