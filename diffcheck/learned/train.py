"""Recipes for learned toy models and the functions that train them with ``diffcheck.training.train``.

A recipe is a frozen dataclass: the preset, the objective (or the process, for guidance networks), the network's
size and the optimiser's settings, the size of the training set and one seed. The seed fixes everything: the
training set (drawn once from the preset, as a fixed data set), the initial weights (drawn inside a forked global
generator, so the caller's state is untouched) and the training loop's noise and data order. Two runs of one
recipe give identical weights.

- :func:`train_toy`: a denoiser trained with one of the objectives of ``diffcheck.learned.objectives``.
- :func:`train_classifier`: a time-conditional noisy classifier, cross-entropy at t drawn as the process is
  trained on (Dhariwal & Nichol 2021, Sec. 4).
- :func:`train_cfg`: one class-conditional eps network whose label is replaced by the null label with probability
  ``p_uncond`` (Ho & Salimans 2021, Algorithm 1), giving the conditional and the unconditional model at once.

Each returns a :class:`Trained` holding the EMA model (what is evaluated), the last weights, the initial weights
and the per-step loss. With ``out_dir`` the loop writes its log and checkpoints there (atomically) and the recipe
is written as ``recipe.json``; a second call with the same ``out_dir`` resumes.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

import toy
from toy.mixture import GaussianMixture
from toy.validate import check_float, check_int

from ..io import write_json
from ..nets.toy import ToyClassifierConfig, ToyNetConfig
from ..process import VP, DiscreteVP, Process
from ..training import TrainConfig, train
from .model import ToyClassifierModel, ToyModel
from .objectives import DDPMSimple, Objective, describe

__all__ = ["Recipe", "ClassifierRecipe", "CFGRecipe", "Trained", "train_toy", "train_classifier", "train_cfg",
           "training_set", "data_std", "draw_times"]


@dataclasses.dataclass(frozen=True)
class _Common:
    """Network size, optimiser, EMA, training-set size and seed shared by every recipe."""

    steps: int = 3000
    batch_size: int = 256
    lr: float = 2e-3
    warmup_steps: int = 100
    grad_clip: float | None = 1.0
    ema_rate: float = 0.995
    hidden: int = 64
    blocks: int = 2
    embed_dim: int = 32
    embed_scale: float | None = None
    n_data: int = 50_000
    seed: int = 0

    def _check(self) -> None:
        check_int(self.steps, "steps", minimum=0)
        check_int(self.batch_size, "batch_size", minimum=1)
        check_float(self.lr, "lr", low=0.0)
        check_int(self.n_data, "n_data", minimum=self.batch_size)
        check_int(self.seed, "seed", minimum=0)
        if not isinstance(self.preset, str) or self.preset not in toy.PRESETS:  # type: ignore[attr-defined]
            raise ValueError(f"preset must be one of {', '.join(sorted(toy.PRESETS))}, got {self.preset!r}")  # type: ignore[attr-defined]

    def mixture(self) -> GaussianMixture:
        """The preset's mixture (the exact answer key)."""
        return toy.preset(self.preset)  # type: ignore[attr-defined]

    def train_config(self, progress: bool) -> TrainConfig:
        """The training loop's configuration (the data order seeded by ``seed``)."""
        return TrainConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr, warmup_steps=self.warmup_steps,
                           grad_clip=self.grad_clip, ema_rate=self.ema_rate, data_seed=self.seed, progress=progress)

    def to_json(self) -> dict[str, Any]:
        """The recipe as JSON values (the objective or process by its description)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Objective):
                v = describe(v)
            elif isinstance(v, Process):
                v = repr(v)
            out[f.name] = v
        return out


@dataclasses.dataclass(frozen=True)
class Recipe(_Common):
    """A toy denoiser: ``preset`` trained with ``objective`` (see ``diffcheck.learned.objectives``)."""

    preset: str = "two_modes"
    objective: Objective = DDPMSimple()

    def __post_init__(self) -> None:
        self._check()
        if not isinstance(self.objective, Objective):
            raise TypeError(f"objective must be an objective of diffcheck.learned.objectives, got {type(self.objective).__name__}")

    def net_config(self, dim: int) -> ToyNetConfig:
        """The network the objective asks for, at this recipe's size."""
        o = self.objective
        return ToyNetConfig(dim=dim, hidden=self.hidden, blocks=self.blocks, noise_input=o.noise_input,
                            embedding=o.embedding, embed_dim=self.embed_dim, embed_scale=self.embed_scale, prediction=o.prediction,
                            learn_sigma=o.learn_sigma)


def _check_process(process: Any) -> Process:
    if not isinstance(process, Process):
        raise TypeError(f"process must be a Process, got {type(process).__name__}")
    return process


@dataclasses.dataclass(frozen=True)
class ClassifierRecipe(_Common):
    """A noisy classifier of ``preset``'s classes on the noised data of ``process``."""

    preset: str = "three_classes"
    process: Process = VP()

    def __post_init__(self) -> None:
        self._check()
        _check_process(self.process)

    def net_config(self, dim: int, classes: int) -> ToyClassifierConfig:
        """The classifier network at this recipe's size."""
        return ToyClassifierConfig(dim=dim, classes=classes, hidden=self.hidden, blocks=self.blocks, embed_dim=self.embed_dim,
                                   embed_scale=self.embed_scale)


@dataclasses.dataclass(frozen=True)
class CFGRecipe(_Common):
    """A class-conditional eps network on ``process`` trained with label dropout ``p_uncond`` (0.1-0.2 in the paper)."""

    preset: str = "three_classes"
    process: Process = VP()
    p_uncond: float = 0.1

    def __post_init__(self) -> None:
        self._check()
        _check_process(self.process)
        check_float(self.p_uncond, "p_uncond", low=0.0, high=1.0)

    def net_config(self, dim: int, classes: int) -> ToyNetConfig:
        """The conditional denoiser (with a null label) at this recipe's size."""
        return ToyNetConfig(dim=dim, hidden=self.hidden, blocks=self.blocks, embed_dim=self.embed_dim,
                            embed_scale=self.embed_scale, prediction="eps", label_classes=classes)


@dataclasses.dataclass
class Trained:
    """A trained toy network: the EMA ``model`` (evaluated), the ``last`` weights, the ``initial`` weights, the loss."""

    recipe: Any
    mixture: GaussianMixture
    process: Process
    model: nn.Module
    last: nn.Module
    initial: nn.Module
    losses: list[float]
    seconds: float
    data_std: float
    out_dir: Path | None = None


def training_set(mixture: GaussianMixture, n: int, seed: int, *, labels: bool = False):
    """n points drawn once from the mixture with ``seed`` (float32), and their class indices with ``labels``."""
    n = check_int(n, "n", minimum=1)
    if labels and mixture.labels is None:
        raise ValueError("mixture has no class labels; choose a labelled preset")
    x, comp = mixture.sample(n, torch.Generator().manual_seed(check_int(seed, "seed", minimum=0)), return_components=True)
    if not labels:
        return x.float()
    return x.float(), torch.searchsorted(mixture.classes, mixture.labels[comp])


def data_std(x: torch.Tensor) -> float:
    """The data's standard deviation per coordinate, sqrt of the mean of the coordinate variances."""
    return float(x.to(torch.float64).var(dim=0).mean().sqrt())


def draw_times(process: Process, n: int, generator: torch.Generator) -> torch.Tensor:
    """Training times: uniform steps i/T of a DDPM table, else uniform on [t_eps, 1] (float64)."""
    if isinstance(process, DiscreteVP):
        return torch.randint(1, process.T + 1, (n,), generator=generator).to(torch.float64) / process.T
    return process.t_eps + (1.0 - process.t_eps) * torch.rand(n, generator=generator, dtype=torch.float64)


def _build(make: Callable[[], nn.Module], seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


CHECKPOINT_EVERY = 500
"""Steps between checkpoints of a training with ``out_dir`` (a second call resumes from the last one)."""


def _check_same_recipe(out: Path, recipe: Any) -> None:
    """Refuse to resume ``out`` with another recipe (only ``steps`` may change: a run may be extended)."""
    path = out / "recipe.json"
    if not path.is_file():
        return
    try:
        saved = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path} is not a recipe: {err}") from None
    now = recipe.to_json()
    diffs = sorted(k for k in set(saved) | set(now) if k != "steps" and saved.get(k) != now.get(k))
    if diffs:
        raise ValueError(f"out_dir {out} holds a run of another recipe ({', '.join(f'{k}: {saved.get(k)!r} there, {now.get(k)!r} now' for k in diffs)}); "
                         "use another out_dir")


def _logged_losses(out: Path, steps: int) -> list[float] | None:
    """Every step's loss from the loop's log (which a resumed run completes), or None when steps are missing."""
    records = {}
    for line in (out / "log.jsonl").read_text().splitlines() if (out / "log.jsonl").is_file() else []:
        try:
            r = json.loads(line)
            records[int(r["step"])] = float(r["loss"])
        except (ValueError, KeyError, TypeError):
            continue
    return [records[s] for s in range(1, steps + 1)] if all(s in records for s in range(1, steps + 1)) else None


def _fit(recipe: Any, mixture: GaussianMixture, process: Process, model: nn.Module, loss_fn: Callable, data: Any,
         std: float, progress: bool, out_dir: str | Path | None) -> Trained:
    initial = copy.deepcopy(model).eval()
    out = None if out_dir is None else Path(out_dir)
    config = recipe.train_config(progress)
    if out is not None:
        _check_same_recipe(out, recipe)
        write_json(out / "recipe.json", recipe.to_json())
        config = dataclasses.replace(config, checkpoint_every=CHECKPOINT_EVERY)
    start = time.perf_counter()
    result = train(model, loss_fn, data, config, generator=torch.Generator().manual_seed(recipe.seed), out_dir=out)
    seconds = time.perf_counter() - start
    ema = result.ema.copy_to(copy.deepcopy(model)).eval()
    model.eval()
    losses = [r["loss"] for r in result.records]
    if out is not None:  # a resumed run: the losses of every step, from the log
        losses = _logged_losses(out, result.step) or losses
    return Trained(recipe, mixture, process, ema, model, initial, losses, seconds, std, out)


def train_toy(recipe: Recipe, progress: bool = True, out_dir: str | Path | None = None) -> Trained:
    """Train the toy denoiser of ``recipe`` (a progress bar on stderr unless ``progress=False``)."""
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a Recipe, got {type(recipe).__name__}")
    mixture = recipe.mixture()
    data = training_set(mixture, recipe.n_data, recipe.seed)
    process = recipe.objective.process(data)
    std = data_std(data)
    net = _build(recipe.net_config(mixture.dim).build, recipe.seed)
    model = ToyModel(net, process, std)
    objective_loss = recipe.objective.loss_fn(process)
    return _fit(recipe, mixture, process, model, lambda m, x0, g: objective_loss(m, x0, g), data, std, progress, out_dir)


def train_classifier(recipe: ClassifierRecipe, progress: bool = True, out_dir: str | Path | None = None) -> Trained:
    """Train a time-conditional classifier: cross-entropy of p_theta(y | x_t) with t drawn as ``draw_times`` does."""
    if not isinstance(recipe, ClassifierRecipe):
        raise TypeError(f"recipe must be a ClassifierRecipe, got {type(recipe).__name__}")
    mixture = recipe.mixture()
    x, y = training_set(mixture, recipe.n_data, recipe.seed, labels=True)
    classes = int(mixture.classes.numel())
    process = recipe.process
    std = data_std(x)
    net = _build(recipe.net_config(mixture.dim, classes).build, recipe.seed)
    model = ToyClassifierModel(net, process, std)

    def loss(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], g: torch.Generator) -> torch.Tensor:
        x0, label = batch
        t = draw_times(process, x0.shape[0], g)
        xt, _ = process.sample_marginal(x0, t, g)
        return F.cross_entropy(m(xt, t), label)

    return _fit(recipe, mixture, process, model, loss, (x, y), std, progress, out_dir)


def train_cfg(recipe: CFGRecipe, progress: bool = True, out_dir: str | Path | None = None) -> Trained:
    """Train one eps network for classifier-free guidance: |eps - eps_theta(x_t, t, c')|^2 with c' the null label
    with probability ``p_uncond``, else the class (Ho & Salimans 2021, Algorithm 1)."""
    if not isinstance(recipe, CFGRecipe):
        raise TypeError(f"recipe must be a CFGRecipe, got {type(recipe).__name__}")
    mixture = recipe.mixture()
    x, y = training_set(mixture, recipe.n_data, recipe.seed, labels=True)
    classes = int(mixture.classes.numel())
    process = recipe.process
    std = data_std(x)
    net = _build(recipe.net_config(mixture.dim, classes).build, recipe.seed)
    model = ToyModel(net, process, std)
    p_uncond = recipe.p_uncond

    def loss(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], g: torch.Generator) -> torch.Tensor:
        x0, label = batch
        n = x0.shape[0]
        t = draw_times(process, n, g)
        xt, eps = process.sample_marginal(x0, t, g)
        drop = torch.rand(n, generator=g) < p_uncond
        label = torch.where(drop, torch.full_like(label, classes), label)
        return (m(xt, t, y=label) - eps).pow(2).sum(-1).mean()

    return _fit(recipe, mixture, process, model, loss, (x, y), std, progress, out_dir)
