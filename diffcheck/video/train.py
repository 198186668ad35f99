"""Training the toy MCVD and RaMViD models on a Gaussian video, and measuring how close they come to the Bayes-optimal ones.

Both trainers draw a fixed training set from the mixture, train a ``ToyVideoNet`` with ``diffcheck.training.train``
on the scheme's objective and return the model holding the EMA weights. ``bayes_gap`` measures the relative RMS
distance sqrt(sum ||eps_theta − eps*||² / sum ||eps*||²) between a model and the exact predictor on the same inputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Callable, Iterator

import torch

from toy.mixture import GaussianMixture
from toy.validate import check_int

from ..process.base import Process
from ..training import TrainConfig, train
from .mcvd import Blocks, mcvd_objective
from .ramvid import ramvid_objective
from .toynet import MCVDToyModel, RaMViDToyModel, ToyVideoNet

__all__ = ["NetSize", "train_mcvd", "train_ramvid", "bayes_gap"]


@dataclasses.dataclass(frozen=True)
class NetSize:
    """Width and depth of the toy network, and the size of the training set drawn from the mixture."""

    hidden: int = 64
    blocks: int = 1
    data: int = 50_000

    def __post_init__(self) -> None:
        check_int(self.hidden, "hidden", minimum=1)
        check_int(self.blocks, "blocks", minimum=0)
        check_int(self.data, "data", minimum=1)


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op threads (restored afterwards); a network this small trains faster on one."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(check_int(n, "threads", minimum=1))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit(model: torch.nn.Module, objective: Callable, data: torch.Tensor, config: TrainConfig, generator: torch.Generator,
         out_dir: Any, threads: int | None) -> torch.nn.Module:
    with _threads(threads):
        result = train(model, objective, data, config, generator=generator, out_dir=out_dir)
    result.ema.copy_to(model)
    return model.eval()


def _init(seed: int, build: Callable[[], ToyVideoNet]) -> ToyVideoNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def train_mcvd(mixture: GaussianMixture, process: Process, blocks: Blocks, config: TrainConfig, *, generator: torch.Generator,
               size: NetSize = NetSize(), p_mask: float = 0.5, p_future: float = 0.5, out_dir: Any = None,
               threads: int | None = None) -> MCVDToyModel:
    """An MCVD toy model trained with masked conditioning on windows of ``mixture`` (a ``blocks.total``-frame video).

    ``threads`` sets torch's intra-op threads while training (then restores them); None leaves them as they are.
    """
    if mixture.dim % blocks.total:
        raise ValueError(f"the mixture's dimension {mixture.dim} is not a whole number of {blocks.total} frames")
    fs = mixture.dim // blocks.total
    data = mixture.sample(size.data, generator).to(torch.float32).reshape(size.data, blocks.total, fs)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    net = _init(seed, lambda: ToyVideoNet(blocks.current * fs, blocks.current * fs, blocks.cond_frames * fs, 2,
                                          hidden=size.hidden, blocks=size.blocks))
    model = MCVDToyModel(net, process, blocks, fs, data_std=float(data.std()))
    return _fit(model, mcvd_objective(process, blocks, p_mask=p_mask, p_future=p_future), data, config, generator, out_dir, threads)


def train_ramvid(mixture: GaussianMixture, process: Process, frames: int, config: TrainConfig, *, generator: torch.Generator,
                 size: NetSize = NetSize(), p_uncond: float = 0.25, max_cond: int = 4, candidates: Any = None,
                 out_dir: Any = None, threads: int | None = None) -> RaMViDToyModel:
    """A RaMViD toy model trained with random clean conditioning frames on ``frames``-frame videos of ``mixture`` (``threads`` as in ``train_mcvd``)."""
    if mixture.dim % frames:
        raise ValueError(f"the mixture's dimension {mixture.dim} is not a whole number of {frames} frames")
    fs = mixture.dim // frames
    data = mixture.sample(size.data, generator).to(torch.float32).reshape(size.data, frames, fs)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    net = _init(seed, lambda: ToyVideoNet(frames * fs, frames * fs, frames * fs, frames, hidden=size.hidden, blocks=size.blocks))
    model = RaMViDToyModel(net, process, frames, fs, data_std=float(data.std()))
    objective = ramvid_objective(process, p_uncond=p_uncond, max_cond=max_cond, candidates=candidates)
    return _fit(model, objective, data, config, generator, out_dir, threads)


@torch.no_grad()
def bayes_gap(model: Callable, exact: Callable, x: torch.Tensor, t: torch.Tensor, weight: torch.Tensor | None = None,
              **kwargs: Any) -> float:
    """sqrt(sum w ||model − exact||² / sum w ||exact||²) over a batch, both called as f(x, t, **kwargs); w per value."""
    a = model(x, t, **kwargs).to(torch.float64).reshape(x.shape[0], -1)
    b = exact(x, t, **kwargs).to(torch.float64).reshape(x.shape[0], -1)
    w = torch.ones_like(b) if weight is None else weight.to(torch.float64).reshape(x.shape[0], -1).expand_as(b)
    den = float((w * b * b).sum())
    if den <= 0.0:
        raise ValueError("the exact prediction is zero on every weighted value; the relative gap is undefined")
    return (float((w * (a - b) ** 2).sum()) / den) ** 0.5
