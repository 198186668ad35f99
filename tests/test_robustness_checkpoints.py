"""Checkpoints under faults: garbage and truncated files are named, leftovers are cleaned, and a run killed at any
moment (SIGKILL, in real processes) resumes from its last complete checkpoint bit for bit."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from diffcheck import process as P
from diffcheck.gan.checkpoint import load_checkpoint as load_gan_checkpoint
from diffcheck.gan.checkpoint import save_checkpoint as save_gan_checkpoint
from diffcheck.training import CheckpointError, TrainConfig, eps_mse_objective, latest_checkpoint, load_checkpoint, train
from diffcheck.training import checkpoint as ckpt_mod


class Denoiser(nn.Module):
    prediction = "eps"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = nn.Sequential(nn.Linear(3, 32), nn.SiLU(), nn.Dropout(0.2), nn.Linear(32, 2))

    def forward(self, x, t):
        t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])
        return self.net(torch.cat([x, t[:, None]], 1))


DATA = torch.randn(64, 2, generator=torch.Generator().manual_seed(1)) * 0.3
STEPS = 12


def _config(steps: int = STEPS) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=16, lr=3e-3, warmup_steps=2, ema_rate=0.8, progress=False,
                       checkpoint_every=1, keep_checkpoints=2)


def _run(out: Path, steps: int = STEPS):
    return train(Denoiser(), eps_mse_objective(P.VP()), DATA, _config(steps), generator=torch.Generator().manual_seed(7), out_dir=out)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run: final weights, EMA and per-step losses."""
    out = tmp_path_factory.mktemp("whole")
    start = time.perf_counter()
    r = _run(out)
    return r.model.state_dict(), r.ema.state_dict(), [x["loss"] for x in r.records], time.perf_counter() - start


def _assert_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _finish_and_compare(out: Path, reference) -> None:
    """Resume in this process to the end: the result equals the uninterrupted run bit for bit, no leftovers remain."""
    found = latest_checkpoint(out / "checkpoints")
    assert found is None or load_checkpoint(found).step <= STEPS  # a complete checkpoint, or a clean start
    r = _run(out)
    model, ema, losses, _ = reference
    _assert_equal(r.model.state_dict(), model)
    _assert_equal(r.ema.state_dict(), ema)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in log] == list(range(1, STEPS + 1))
    assert [x["loss"] for x in log] == losses
    assert not [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]


# -- killed by SIGKILL at chosen moments of a save, in a forked process --------------------------------------


def _child(out: str, where: str, nth: int) -> None:
    """Train, and SIGKILL this process at the nth call of the save step named by ``where``."""
    torch.set_num_threads(1)
    calls = {"n": 0}

    def killer(fn):
        def wrapped(*a, **kw):
            calls["n"] += 1
            if where.endswith(":before") and calls["n"] == nth:
                os.kill(os.getpid(), signal.SIGKILL)
            result = fn(*a, **kw)
            if where.endswith(":after") and calls["n"] == nth:
                os.kill(os.getpid(), signal.SIGKILL)
            return result
        return wrapped

    name = where.split(":")[0]
    if name == "save_file":
        ckpt_mod.save_file = killer(ckpt_mod.save_file)
    elif name == "torch.save":
        ckpt_mod.torch.save = killer(torch.save)
    elif name == "replace":  # os.replace: the checkpoint's rename, the pointer's rename, the pruning's rename
        ckpt_mod.os.replace = killer(os.replace)
    elif name == "rmtree":
        ckpt_mod.shutil.rmtree = killer(ckpt_mod.shutil.rmtree)
    _run(Path(out))
    os._exit(0)


def _listing(root: Path) -> dict[str, list[str] | str]:
    return {q.name: sorted(x.name for x in q.iterdir()) if q.is_dir() else json.loads(q.read_text() or "null")
            for q in sorted(root.iterdir())}


def _hidden(listing: dict, prefix: str) -> list:
    return [v for k, v in listing.items() if k.startswith(prefix)]


# (kill point, the call of it, what the checkpoint folder holds when the process dies); os.replace is called, per
# save, for the checkpoint's rename, then latest.json's, then (from the third save on) the pruned folder's
KILLS = {
    "inside the temporary folder: the model's weights written, not the EMA's": (
        "save_file:after", 5, lambda ls: _hidden(ls, ".step_00000003.") == [["model.safetensors"]]),
    "the weights written, the optimizer state not": (
        "torch.save:before", 4, lambda ls: _hidden(ls, ".step_00000004.") == [["ema.safetensors", "model.safetensors"]]),
    "the checkpoint renamed into place, latest.json not yet pointing at it": (
        "replace:after", 3, lambda ls: "step_00000002" in ls and ls["latest.json"]["dir"] == "step_00000001"),
    "latest.json's temporary file written, not yet renamed": (
        "replace:before", 6, lambda ls: _hidden(ls, ".latest.json.") == [{"step": 3, "dir": "step_00000003"}]
        and ls["latest.json"]["step"] == 2),
    "an old checkpoint renamed aside for deletion, not yet deleted": (
        "replace:after", 7, lambda ls: ".step_00000001.deleting" in ls and "step_00000001" not in ls),
    "an old checkpoint being deleted": (
        "rmtree:before", 1, lambda ls: ".step_00000001.deleting" in ls),
}


@pytest.mark.parametrize("moment", list(KILLS))
def test_a_run_killed_during_a_checkpoint_write_resumes_bit_for_bit(tmp_path, reference, moment):
    where, nth, expected = KILLS[moment]
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=_child, args=(str(tmp_path), where, nth))
    p.start()
    p.join(120)
    assert p.exitcode == -signal.SIGKILL, p.exitcode
    assert expected(_listing(tmp_path / "checkpoints")), _listing(tmp_path / "checkpoints")
    _finish_and_compare(tmp_path, reference)


def _steps_done(out: Path) -> int:
    found = latest_checkpoint(out / "checkpoints")
    return 0 if found is None else load_checkpoint(found).step


def _kill_at_random_moments(start_run, rounds: int, seed: int, out: Path, timing: Path) -> int:
    """Start a run ``rounds`` times, each killed (SIGKILL) at a random moment within the time its remaining steps
    take (measured by one whole run into ``timing``); return how many were killed mid-run."""
    _, wait_whole = start_run(timing)
    t0 = time.perf_counter()
    wait_whole(None)
    whole = time.perf_counter() - t0
    rng = random.Random(seed)
    killed = 0
    for _ in range(rounds):
        left = STEPS - _steps_done(out)
        if left == 0:
            break
        kill, wait = start_run(out)
        if not wait(rng.uniform(0.1, 0.7) * whole * left / STEPS):
            kill()
            killed += 1
    return killed


def _forked(out: Path):
    p = multiprocessing.get_context("fork").Process(target=_child, args=(str(out), "none", 0))
    p.start()

    def wait(timeout):
        p.join(timeout)
        return not p.is_alive()

    def kill():
        os.kill(p.pid, signal.SIGKILL)
        p.join(60)

    return kill, wait


def _attempts(start_run, rounds: int, need: int, tmp_path: Path) -> Path:
    """A run folder in which at least ``need`` runs were killed mid-run (timing decides: up to 5 fresh tries)."""
    for attempt in range(5):
        out = tmp_path / f"cut{attempt}"
        if _kill_at_random_moments(start_run, rounds, attempt, out, tmp_path / f"timing{attempt}") >= need:
            return out
    raise AssertionError(f"fewer than {need} of {rounds} runs were killed mid-run in 5 tries")


def test_a_run_killed_at_random_moments_resumes_bit_for_bit(tmp_path, reference):
    _finish_and_compare(_attempts(_forked, 6, 2, tmp_path), reference)


@pytest.mark.slow
def test_interpreters_killed_at_random_moments_resume_bit_for_bit(tmp_path, reference):
    """Fresh interpreters (no fork), SIGKILLed ten times at random moments while saving every step."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def interpreter(out: Path):
        script = textwrap.dedent(f"""
            import sys
            sys.path[:0] = [{str(Path(__file__).resolve().parent)!r}]
            import torch
            torch.set_num_threads(1)
            from pathlib import Path
            from test_robustness_checkpoints import _run
            print("ready", flush=True)
            _run(Path({str(out)!r}))
        """)
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
        proc.stdout.readline()  # imports done: training starts

        def wait(timeout):
            try:
                proc.wait(timeout=timeout)
                return True
            except subprocess.TimeoutExpired:
                return False

        def kill():
            proc.send_signal(signal.SIGKILL)
            proc.wait()

        return kill, wait

    _finish_and_compare(_attempts(interpreter, 10, 5, tmp_path), reference)


# -- garbage and truncated files --------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    _run(tmp_path, steps=2)
    return latest_checkpoint(tmp_path / "checkpoints")


@pytest.mark.parametrize("name", ["model.safetensors", "ema.safetensors"])
@pytest.mark.parametrize("cut", ["truncated", "garbage", "empty"])
def test_a_broken_safetensors_file_is_named(saved, name, cut):
    path = saved / name
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x00garbage" * 50, "empty": b""}[cut])
    with pytest.raises(CheckpointError, match=rf"{name} is not a readable safetensors file"):
        load_checkpoint(saved)


@pytest.mark.parametrize("cut", ["truncated", "garbage", "empty", "list", "code"])
def test_a_broken_state_file_is_named_and_never_suggests_unsafe_loading(saved, tmp_path, cut):
    path = saved / "state.pt"
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    if cut == "code":
        torch.save({"optimizer": Payload()}, path)
    elif cut == "list":
        torch.save([1, 2], path)
    else:
        data = path.read_bytes()
        path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"garbage" * 20, "empty": b""}[cut])
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(saved)
    assert "state.pt" in str(err.value)
    assert "weights_only" not in str(err.value)
    assert not marker.exists()


def test_broken_metadata_and_pointer(saved):
    root = saved.parent
    (root / "latest.json").write_text("{not json")  # a garbage pointer: the newest complete folder is used
    assert latest_checkpoint(root) == saved
    (root / "latest.json").write_text(json.dumps({"step": 9, "dir": "step_00000009"}))  # points at nothing
    assert latest_checkpoint(root) == saved
    (root / "latest.json").unlink()
    assert latest_checkpoint(root) == saved
    (saved / "meta.json").write_text("[1, 2")
    with pytest.raises(CheckpointError, match="meta.json is not checkpoint metadata"):
        load_checkpoint(saved)
    assert latest_checkpoint(root) != saved  # an incomplete folder is never chosen


def test_leftovers_of_interrupted_saves_are_cleaned_and_the_run_resumes(tmp_path, reference):
    _run(tmp_path, steps=4)
    root = tmp_path / "checkpoints"
    (root / ".step_00000005.abc123.tmp").mkdir()
    (root / ".step_00000005.abc123.tmp" / "model.safetensors").write_bytes(b"half")
    (root / ".step_00000002.deleting").mkdir()
    (root / ".latest.json.xyz.tmp").write_text("{")
    (root / "notes.txt").write_text("mine")  # anything else is left alone
    _finish_and_compare(tmp_path, reference)
    assert (root / "notes.txt").read_text() == "mine"


def test_resuming_into_another_model_says_so(tmp_path):
    _run(tmp_path, steps=2)

    class Wider(Denoiser):
        def __init__(self):
            super().__init__()
            self.net[0] = nn.Linear(3, 48)
            self.net[3] = nn.Linear(48, 2)

    with pytest.raises(ValueError, match="cannot resume from .*step_00000002: it does not fit this model"):
        train(Wider(), eps_mse_objective(P.VP()), DATA, _config(4), generator=torch.Generator(), out_dir=tmp_path)


@pytest.mark.parametrize("cut", ["truncated", "garbage", "empty"])
def test_a_broken_gan_checkpoint_is_named(tmp_path, cut):
    path = tmp_path / "gan.safetensors"
    save_gan_checkpoint(path, {"G/w": torch.ones(64, 64)}, {"step": 3})
    assert load_gan_checkpoint(path)[1] == {"step": 3}
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"garbage" * 20, "empty": b""}[cut])
    with pytest.raises(ValueError, match="gan.safetensors is not a readable checkpoint"):
        load_gan_checkpoint(path)
