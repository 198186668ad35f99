"""Training that scales out: one loop for toys and images, EMA, checkpoints that resume bit for bit, DDP.

>>> result = train(model, loss_fn, data, TrainConfig(steps=1000, batch_size=128), generator=g, out_dir="run")  # doctest: +SKIP

Under ``torchrun --nproc_per_node N`` call :func:`init_distributed` first; the same call then trains with
DistributedDataParallel and :func:`sample_sharded` shares sampling out by seed.
"""

from .checkpoint import Checkpoint, CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .distributed import Shards, World, device_for, init_distributed, sample_sharded, world
from .ema import EMA
from .loop import LossFn, TrainResult, train
from .objective import eps_mse_objective

__all__ = [
    "TrainConfig", "train", "TrainResult", "LossFn", "EMA",
    "Checkpoint", "CheckpointError", "save_checkpoint", "load_checkpoint", "latest_checkpoint",
    "World", "world", "init_distributed", "device_for", "Shards", "sample_sharded",
    "eps_mse_objective",
]
