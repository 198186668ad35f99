"""One training loop for toys and images, on one process or many (DistributedDataParallel under torchrun).

``train(model, loss_fn, data, config, generator=...)`` minimises ``loss_fn(model, batch, generator)``, a scalar,
with Adam/AdamW, linear warmup, gradient clipping, an EMA of the weights and optional mixed precision; it logs
every step (a tqdm bar on stderr and ``log.jsonl``) and checkpoints atomically (see ``checkpoint``).

Randomness. Each step draws 2·chunks seeds from ``generator``; micro-batch c gets a fresh generator seeded with
seed c for its loss, and runs its forward pass with the global RNG (dropout) seeded with seed chunks + c inside
``torch.random.fork_rng``, so the caller's global state is untouched. The data order comes from its own seed
(``config.data_seed`` + epoch). All of it is restored on resume, so an interrupted run continues bit for bit on
the CPU, and a run computes the same micro-batches on any number of processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..io import write_text
from .checkpoint import clean_leftovers, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .distributed import Shards, World, world
from .ema import EMA

__all__ = ["LossFn", "TrainResult", "train"]

LossFn = Callable[[nn.Module, Any, torch.Generator], Tensor]
"""``loss_fn(model, batch, generator) -> scalar``; ``batch`` is a tensor or a tuple of tensors, as ``data`` is."""

_SEED_HIGH = 2**62


@dataclasses.dataclass
class TrainResult:
    """What a call to :func:`train` leaves: the steps done, this call's log records, the EMA and the model."""

    step: int
    records: list[dict[str, float]]
    ema: EMA
    model: nn.Module
    out_dir: Path | None
    stopped: bool = False


class _Replicated(DistributedDataParallel):
    """DistributedDataParallel that also answers the wrapped model's plain attributes (``prediction``, ...).

    Call the model itself in a loss: its gradients are averaged only through ``forward``.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":
                raise
            return getattr(self.module, name)


def _as_data(data: Any) -> tuple[tuple[Tensor, ...], bool]:
    """The data as a tuple of tensors with a shared first dimension, and whether it was a single tensor."""
    single = isinstance(data, Tensor)
    tensors = (data,) if single else tuple(data) if isinstance(data, (tuple, list)) else None
    if not tensors or not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError("data must be a tensor (N, ...) or a tuple of tensors sharing their first dimension N")
    n = tensors[0].shape[0] if tensors[0].ndim else 0
    if any(t.ndim == 0 or t.shape[0] != n for t in tensors) or n == 0:
        raise ValueError(f"data tensors must share a non-zero first dimension, got shapes {[tuple(t.shape) for t in tensors]}")
    return tensors, single


def _truncate_log(path: Path, step: int) -> None:
    """Keep the records of steps up to ``step`` (a resumed run rewrites the steps after its checkpoint)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by an interruption
        if isinstance(record, dict) and record.get("step", math.inf) <= step:
            kept.append(line)
    write_text(path, "".join(line + "\n" for line in kept))


def _world(distributed: bool | None) -> World:
    current = world()
    if distributed is None:
        return current
    if distributed and current.size == 1 and not (dist.is_available() and dist.is_initialized()):
        raise ValueError("distributed=True needs an initialised process group (init_distributed under torchrun)")
    return current if distributed else World()


def train(
    model: nn.Module,
    loss_fn: LossFn,
    data: Tensor | Sequence[Tensor],
    config: TrainConfig,
    *,
    generator: torch.Generator,
    out_dir: str | Path | None = None,
    resume: bool = True,
    distributed: bool | None = None,
    on_step: Callable[[dict[str, float]], bool | None] | None = None,
) -> TrainResult:
    """Train ``model`` in place for ``config.steps`` steps (continuing from the latest checkpoint in ``out_dir``).

    ``distributed``: None uses the process group when one is initialised, False trains this process alone.
    ``on_step(record)`` is called on every process after each step; rank 0's True stops training (with a
    checkpoint). Only rank 0 writes ``out_dir``: ``log.jsonl`` and ``checkpoints/``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError("loss_fn must be callable as loss_fn(model, batch, generator)")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    tensors, single = _as_data(data)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    device = params[0].device
    w = _world(distributed)
    chunks = w.size if config.chunks is None else config.chunks
    if chunks % w.size:
        raise ValueError(f"chunks ({chunks}) must be a multiple of the number of processes ({w.size})")
    per_rank_chunks = chunks // w.size
    local_batch = config.batch_size // w.size
    if config.precision == "fp16" and device.type != "cuda":
        raise ValueError("precision='fp16' needs a CUDA device; use 'bf16' or 'fp32' on the CPU")

    shards = Shards(tensors[0].shape[0], world_size=w.size, rank=w.rank, seed=config.data_seed, shuffle=config.shuffle)
    batches_per_epoch = shards.per_rank // local_batch
    if batches_per_epoch == 0:
        raise ValueError(f"data holds {tensors[0].shape[0]} samples, fewer than one batch of {config.batch_size}")

    opt_cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    # foreach: the multi-tensor update (torch's default on CUDA only); on CPU it is the same arithmetic in fewer calls
    optimizer = opt_cls(params, lr=config.lr, betas=tuple(config.adam_betas), eps=config.adam_eps,
                        weight_decay=config.weight_decay, foreach=True)
    scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
    ema = EMA(model, config.ema_rate)
    step, epoch, batch = 0, 0, 0

    out = None if out_dir is None else Path(out_dir)
    ckpt_root = None if out is None else out / "checkpoints"
    log_path = None if out is None else out / "log.jsonl"
    if ckpt_root is not None and w.is_main:
        clean_leftovers(ckpt_root)  # what a run killed while saving left behind
    if ckpt_root is not None and resume:
        found = latest_checkpoint(ckpt_root)
        if found is not None:
            ckpt = load_checkpoint(found)
            diffs = config.differences(ckpt.meta.get("config", {}))
            if diffs:
                raise ValueError(f"cannot resume from {found}: the config differs ({'; '.join(diffs)})")
            try:
                model.load_state_dict(ckpt.model)
                ema.load_state_dict(ckpt.ema)
                optimizer.load_state_dict(ckpt.state["optimizer"])
                if scaler is not None and ckpt.state.get("scaler"):
                    scaler.load_state_dict(ckpt.state["scaler"])
                generator.set_state(ckpt.state["generator"])
                epoch, batch = int(ckpt.meta["data"]["epoch"]), int(ckpt.meta["data"]["batch"])
            except (RuntimeError, KeyError, TypeError, ValueError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise ValueError(f"cannot resume from {found}: it does not fit this model and optimizer ({first})") from None
            step = ckpt.step
    if w.is_main and log_path is not None:
        out.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        _truncate_log(log_path, step)

    replicated = w.size > 1
    net: nn.Module = _Replicated(model, device_ids=[device.index] if device.type == "cuda" else None) if replicated else model
    rng_devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    amp_dtype = torch.bfloat16 if config.precision == "bf16" else torch.float16

    def autocast() -> contextlib.AbstractContextManager:
        if config.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=amp_dtype)

    def checkpoint() -> None:
        if not w.is_main or ckpt_root is None:
            return
        state = {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler is not None else {},
                 "generator": generator.get_state()}
        meta = {"data": {"epoch": epoch, "batch": batch, "seed": config.data_seed}, "config": config.to_json(),
                "world_size": w.size}
        save_checkpoint(ckpt_root, step=step, model=model.state_dict(), ema=ema.state_dict(), state=state, meta=meta,
                        keep=config.keep_checkpoints)

    records: list[dict[str, float]] = []
    order: Tensor | None = None
    order_epoch = -1
    saved_step = step
    stopped = False
    start = time.perf_counter()
    bar = tqdm(total=config.steps, initial=min(step, config.steps), desc="training", file=sys.stderr,
               disable=not config.progress or not w.is_main, dynamic_ncols=True)
    log = open(log_path, "a") if (w.is_main and log_path is not None) else None
    try:
        model.train()
        while step < config.steps:
            lr = config.lr_at(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            seeds = torch.randint(0, _SEED_HIGH, (2 * chunks,), generator=generator, device=generator.device).tolist()
            if batch == batches_per_epoch:
                epoch, batch = epoch + 1, 0
            if order_epoch != epoch:
                order, order_epoch = shards.indices(epoch), epoch
            idx = order[batch * local_batch : (batch + 1) * local_batch]  # type: ignore[index]
            batch += 1
            local = [t[idx].to(device, non_blocking=True) for t in tensors]

            optimizer.zero_grad(set_to_none=True)
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            for k in range(per_rank_chunks):
                c = w.rank + w.size * k  # the global micro-batch this is: samples c, c + chunks, ... of the batch
                parts = [t[k::per_rank_chunks] for t in local]
                part = parts[0] if single else tuple(parts)
                g = torch.Generator(device=device).manual_seed(seeds[c])
                sync = net.no_sync() if replicated and k < per_rank_chunks - 1 else contextlib.nullcontext()  # type: ignore[operator]
                with sync, torch.random.fork_rng(devices=rng_devices):
                    # dropout's global generators; torch.manual_seed would also touch (and, on a CPU-only
                    # machine, probe) CUDA at every step
                    torch.default_generator.manual_seed(seeds[chunks + c])
                    if device.type == "cuda":
                        torch.cuda.manual_seed(seeds[chunks + c])
                    with autocast():
                        loss = loss_fn(net, part, g)
                    if not isinstance(loss, Tensor) or loss.ndim != 0:
                        raise ValueError(f"loss_fn must return a scalar tensor, got {getattr(loss, 'shape', type(loss).__name__)}")
                    if not bool(torch.isfinite(loss)):
                        raise FloatingPointError(f"the loss is {float(loss.detach())} at step {step + 1} (micro-batch {c})")
                    scaled = loss.float() / per_rank_chunks
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
                loss_sum += loss.detach().double()

            if scaler is not None:
                scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, math.inf if config.grad_clip is None else config.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            ema.update(model)
            step += 1

            if replicated:
                dist.all_reduce(loss_sum)
            record = {"step": step, "epoch": epoch, "loss": float(loss_sum) / chunks, "lr": lr,
                      "grad_norm": float(grad_norm), "seconds": time.perf_counter() - start}
            records.append(record)
            if log is not None and (step % config.log_every == 0 or step == config.steps):
                log.write(json.dumps(record) + "\n")
                log.flush()
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.4g}", refresh=False)
            if config.checkpoint_every is not None and step % config.checkpoint_every == 0:
                checkpoint()
                saved_step = step
            if on_step is not None:
                want = torch.tensor([1 if on_step(record) else 0], device=device if device.type == "cuda" else "cpu")
                if replicated:
                    dist.broadcast(want, src=0)
                if int(want):
                    stopped = True
                    break
        if saved_step != step:
            checkpoint()
    finally:
        bar.close()
        if log is not None:
            log.close()
    if replicated:
        dist.barrier()
    return TrainResult(step, records, ema, model, out, stopped)
