"""Scale-out: process groups from torchrun, DistributedSampler-style shards, and sampling sharded by seed.

Launch with ``torchrun --nproc_per_node N script.py``; the script calls :func:`init_distributed` (gloo on CPU,
nccl on CUDA). Sample i of :func:`sample_sharded` depends on seed i alone and is computed in the same block of
indices whatever the number of processes, so N processes return exactly what one returns.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from typing import Callable, Sequence

import torch
import torch.distributed as dist
from tqdm import tqdm

from toy.validate import check_int

__all__ = ["World", "world", "init_distributed", "device_for", "Shards", "sample_sharded"]


@dataclasses.dataclass(frozen=True)
class World:
    """This process's rank among ``size`` processes (``local_rank`` on its machine)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs and checkpoints and gathers samples."""
        return self.rank == 0


def world() -> World:
    """The current process group's view, or a single process when none is initialised."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return World()


_current_world = world


def init_distributed(backend: str | None = None) -> World:
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl on CUDA by default).

    Without torchrun's variables (a plain ``python script.py``) this is a single process and nothing is started.
    """
    if dist.is_initialized():
        return world()
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return World()
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo' or 'nccl', got {backend!r}")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend)
    return world()


def device_for(w: World | None = None) -> torch.device:
    """cuda:LOCAL_RANK when CUDA is available, else the CPU."""
    w = world() if w is None else w
    return torch.device("cuda", w.local_rank) if torch.cuda.is_available() else torch.device("cpu")


class Shards:
    """DistributedSampler-style sharding: each epoch a permutation seeded by ``seed + epoch``, padded by wrapping
    around to a multiple of the number of processes, rank r taking positions r, r + size, ...

    Every process computes the same permutation from the seed alone, so no indices are exchanged.
    """

    def __init__(self, n: int, *, world_size: int = 1, rank: int = 0, seed: int = 0, shuffle: bool = True) -> None:
        self.n = check_int(n, "n", minimum=1)
        self.world_size = check_int(world_size, "world_size", minimum=1)
        self.rank = check_int(rank, "rank", minimum=0, maximum=self.world_size - 1)
        self.seed = check_int(seed, "seed", minimum=0)
        self.shuffle = bool(shuffle)
        self.per_rank = math.ceil(self.n / self.world_size)

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The padded global order of ``epoch`` (length per_rank · world_size), before sharding."""
        epoch = check_int(epoch, "epoch", minimum=0)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        total = self.per_rank * self.world_size
        if total > self.n:
            order = order.repeat(math.ceil(total / self.n))[:total]
        return order

    def indices(self, epoch: int) -> torch.Tensor:
        """This rank's sample indices for ``epoch`` (per_rank of them)."""
        return self.epoch_order(epoch)[self.rank :: self.world_size]


_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8, torch.int8, torch.int16,
           torch.int32, torch.int64, torch.bool)
_MAX_DIMS = 8


def _header(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """dtype code, ndim and the trailing shape of one sample, as an int64 tensor."""
    h = torch.zeros(2 + _MAX_DIMS, dtype=torch.int64)
    h[0] = _DTYPES.index(x.dtype)
    h[1] = x.ndim - 1
    h[2 : 2 + x.ndim - 1] = torch.tensor(x.shape[1:], dtype=torch.int64)
    return h.to(device)


def sample_sharded(
    sample_fn: Callable[[list[int]], torch.Tensor],
    n: int,
    *,
    seeds: Sequence[int] | None = None,
    base_seed: int = 0,
    batch_size: int = 64,
    world: World | None = None,
    progress: bool = False,
) -> torch.Tensor | None:
    """Draw n samples, sample i from seed i (``seeds[i]``, default ``base_seed + i``), shared out over processes.

    ``sample_fn(block_seeds)`` returns one sample per seed, each depending on its own seed only (e.g. with
    ``diffcheck.samplers.PerSampleNoise``). Indices are cut into blocks of ``batch_size``; block k runs on rank
    k mod size, so every block sees the same batch whatever the number of processes. Rank 0 returns all n samples
    in index order; other ranks return None.
    """
    n = check_int(n, "n", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if seeds is None:
        base_seed = check_int(base_seed, "base_seed", minimum=0)
        seed_list = [base_seed + i for i in range(n)]
    else:
        seed_list = [check_int(s, "seeds[i]", minimum=0) for s in seeds]
        if len(seed_list) != n:
            raise ValueError(f"seeds must hold n = {n} seeds, got {len(seed_list)}")
    current = _current_world()
    w = current if world is None else world
    if (w.rank, w.size) != (current.rank, current.size):
        raise ValueError(f"world {w} does not match the process group (rank {current.rank} of {current.size})")
    blocks = [range(k, min(k + batch_size, n)) for k in range(0, n, batch_size)]
    mine = [k for k in range(len(blocks)) if k % w.size == w.rank]

    outputs: list[torch.Tensor] = []
    for k in tqdm(mine, desc="sampling", file=sys.stderr, disable=not progress or not w.is_main, leave=False):
        block_seeds = [seed_list[i] for i in blocks[k]]
        out = sample_fn(block_seeds)
        if not isinstance(out, torch.Tensor) or out.ndim < 1 or out.shape[0] != len(block_seeds):
            raise ValueError(f"sample_fn must return a tensor with one row per seed ({len(block_seeds)}), "
                             f"got {getattr(out, 'shape', type(out).__name__)}")
        outputs.append(out)
    if w.size == 1:
        return torch.cat(outputs)

    comm = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    header = _header(outputs[0], comm) if w.is_main else torch.zeros(2 + _MAX_DIMS, dtype=torch.int64, device=comm)
    dist.broadcast(header, src=0)
    dtype = _DTYPES[int(header[0])]
    trailing = tuple(int(v) for v in header[2 : 2 + int(header[1])])
    for out in outputs:
        if out.dtype != dtype or tuple(out.shape[1:]) != trailing:
            raise ValueError(f"rank {w.rank}: sample_fn returned {out.dtype} samples of shape {tuple(out.shape[1:])}, "
                             f"rank 0 returned {dtype} samples of shape {trailing}")
    if not w.is_main:
        if outputs:
            dist.send(torch.cat(outputs).to(comm).contiguous(), dst=0)
        return None
    result: list[torch.Tensor | None] = [None] * len(blocks)
    for k, out in zip(mine, outputs):
        result[k] = out
    for r in range(1, w.size):
        theirs = [k for k in range(len(blocks)) if k % w.size == r]
        if not theirs:
            continue
        buf = torch.empty((sum(len(blocks[k]) for k in theirs), *trailing), dtype=dtype, device=comm)
        dist.recv(buf, src=r)
        start = 0
        for k in theirs:
            result[k] = buf[start : start + len(blocks[k])].to(outputs[0].device)
            start += len(blocks[k])
    return torch.cat(result)  # type: ignore[arg-type]
