"""Small noise-conditional MLPs for low-dimensional toy data: a denoiser and a noisy classifier.

Both are called like the image networks, ``net(x, noise, y=None)``: ``x`` a batch of points (B, D), ``noise`` (B,)
the network's noise input named by ``config.noise_input`` (:data:`NOISE_INPUTS`), ``y`` class labels (B,) for a
class-conditional denoiser. The noise input enters through sinusoidal features (Ho et al. 2020, App. B) or fixed
random Fourier features (Tancik et al. 2020; NCSN++ of Song et al. 2021), then a two-layer MLP, and is added to
every residual block, as the time embedding of the DDPM U-Net is. A class-conditional denoiser adds a learned
label embedding with one extra row, the null label, for the unconditional model of classifier-free guidance
(Ho & Salimans 2021). ``learn_sigma`` doubles the output, [prediction, v_raw], Improved DDPM's layout
(Nichol & Dhariwal 2021, Eq. 15). Wrapping a net into a model of a process (input scaling, time to noise input)
is ``diffcheck.learned.model``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from toy.validate import check_choice, check_float, check_int

from .common import GaussianFourierEmbedding, TimestepMLP, ddpm_timestep_embedding

__all__ = ["NOISE_INPUTS", "EMBEDDINGS", "ToyNetConfig", "ToyClassifierConfig", "ToyDenoiser", "ToyClassifier", "parameter_count"]

NOISE_INPUTS: dict[str, str] = {
    "time": "the process time t in [0, 1]",
    "log_sigma": "log(sigma(t)/alpha(t)), the log noise level of x/alpha = x_0 + (sigma/alpha) eps",
}

EMBEDDINGS: dict[str, str] = {
    "sinusoidal": "[sin, cos] of scale * noise at frequencies 10^4^(-i/(half-1)); scale 1000 makes t a DDPM step index",
    "fourier": "[sin, cos] of 2 pi W noise, W ~ N(0, scale^2) fixed at initialisation; scale 16 is NCSN++'s",
}

_DEFAULT_SCALE = {"sinusoidal": 1000.0, "fourier": 16.0}


def _check_common(cfg: Any) -> None:
    check_int(cfg.dim, "dim", minimum=1)
    check_int(cfg.hidden, "hidden", minimum=1)
    check_int(cfg.blocks, "blocks", minimum=0)
    check_choice(cfg.noise_input, "noise_input", tuple(NOISE_INPUTS))
    check_choice(cfg.embedding, "embedding", tuple(EMBEDDINGS))
    check_int(cfg.embed_dim, "embed_dim", minimum=2)
    if cfg.embed_dim % 2:
        raise ValueError(f"embed_dim must be even ([sin, cos] pairs), got {cfg.embed_dim}")
    if cfg.embed_scale is not None:
        check_float(cfg.embed_scale, "embed_scale", low=0.0, low_open=True)


@dataclasses.dataclass(frozen=True)
class ToyNetConfig:
    """A residual MLP denoiser for points of dimension ``dim``; ``prediction`` is "eps" or "score"."""

    dim: int = 2
    hidden: int = 128
    blocks: int = 3
    noise_input: str = "time"
    embedding: str = "sinusoidal"
    embed_dim: int = 32
    embed_scale: float | None = None
    prediction: str = "eps"
    learn_sigma: bool = False
    label_classes: int | None = None

    def __post_init__(self) -> None:
        _check_common(self)
        check_choice(self.prediction, "prediction", ("eps", "score"))
        if not isinstance(self.learn_sigma, bool):
            raise TypeError(f"learn_sigma must be a bool, got {type(self.learn_sigma).__name__}")
        if self.label_classes is not None:
            check_int(self.label_classes, "label_classes", minimum=1)

    @property
    def scale(self) -> float:
        """The embedding's scale: ``embed_scale`` or the default of the embedding (1000 sinusoidal, 16 Fourier)."""
        return _DEFAULT_SCALE[self.embedding] if self.embed_scale is None else float(self.embed_scale)

    @property
    def data_shape(self) -> tuple[int]:
        """The shape of one point."""
        return (self.dim,)

    @property
    def out_dim(self) -> int:
        """Output width: ``dim``, or ``2 dim`` with a learned variance."""
        return 2 * self.dim if self.learn_sigma else self.dim

    def build(self) -> "ToyDenoiser":
        """The network (initialised from the global generator; fork and seed it for a reproducible start)."""
        return ToyDenoiser(self)


@dataclasses.dataclass(frozen=True)
class ToyClassifierConfig:
    """A residual MLP classifier of noised points: logits of ``classes`` classes (Dhariwal & Nichol 2021, Sec. 4)."""

    dim: int = 2
    classes: int = 3
    hidden: int = 128
    blocks: int = 3
    noise_input: str = "time"
    embedding: str = "sinusoidal"
    embed_dim: int = 32
    embed_scale: float | None = None

    def __post_init__(self) -> None:
        _check_common(self)
        check_int(self.classes, "classes", minimum=2)

    prediction = "logits"

    @property
    def scale(self) -> float:
        """The embedding's scale: ``embed_scale`` or the default of the embedding."""
        return _DEFAULT_SCALE[self.embedding] if self.embed_scale is None else float(self.embed_scale)

    @property
    def data_shape(self) -> tuple[int]:
        """The shape of one point."""
        return (self.dim,)

    def build(self) -> "ToyClassifier":
        """The network (initialised from the global generator)."""
        return ToyClassifier(self)


class NoiseEmbedding(nn.Module):
    """Features of the noise input (sinusoidal or Fourier), then Linear-SiLU-Linear to ``width``."""

    def __init__(self, kind: str, dim: int, scale: float, width: int) -> None:
        super().__init__()
        self.kind = check_choice(kind, "embedding", tuple(EMBEDDINGS))
        self.dim = dim
        self.scale = scale
        self.fourier = GaussianFourierEmbedding(dim // 2, scale) if kind == "fourier" else None
        self.mlp = TimestepMLP(dim, width)

    def forward(self, noise: Tensor) -> Tensor:
        feats = ddpm_timestep_embedding(noise * self.scale, self.dim) if self.fourier is None else self.fourier(noise)
        return self.mlp(feats)


class _Block(nn.Module):
    """h + W2 SiLU(W1 SiLU(h) + E e): a residual block with the embedding e added inside (DDPM's ResBlock, in 1-D)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.emb = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, h: Tensor, e: Tensor) -> Tensor:
        return h + self.fc2(F.silu(self.fc1(F.silu(h)) + self.emb(e)))


class _Trunk(nn.Module):
    """x -> Linear -> residual blocks conditioned on e -> SiLU -> Linear(out)."""

    def __init__(self, dim: int, hidden: int, blocks: int, out: int) -> None:
        super().__init__()
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(_Block(hidden) for _ in range(blocks))
        self.out = nn.Linear(hidden, out)

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        h = self.inp(x) + e
        for block in self.blocks:
            h = block(h, e)
        return self.out(F.silu(h))


def _check_inputs(x: Any, noise: Any, dim: int) -> tuple[Tensor, Tensor]:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError("x must be a floating tensor of shape (B, D)")
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"x must have shape (B, {dim}), got {tuple(x.shape)}")
    if not isinstance(noise, Tensor):
        raise TypeError("noise must be a tensor of shape (B,)")
    if noise.shape != (x.shape[0],):
        raise ValueError(f"noise must have shape ({x.shape[0]},), got {tuple(noise.shape)}")
    return x, noise.to(x.dtype)


class ToyDenoiser(nn.Module):
    """``net(x, noise, y=None)`` -> (B, out_dim): eps or score (times the model's output scale), then v_raw if learned."""

    def __init__(self, config: ToyNetConfig) -> None:
        super().__init__()
        if not isinstance(config, ToyNetConfig):
            raise TypeError(f"config must be a ToyNetConfig, got {type(config).__name__}")
        self.config = config
        self.embed = NoiseEmbedding(config.embedding, config.embed_dim, config.scale, config.hidden)
        self.label = None if config.label_classes is None else nn.Embedding(config.label_classes + 1, config.hidden)
        self.trunk = _Trunk(config.dim, config.hidden, config.blocks, config.out_dim)

    @property
    def null_label(self) -> int | None:
        """The index of the learned null label (the unconditional model), or None for an unconditional net."""
        return self.config.label_classes

    def forward(self, x: Tensor, noise: Tensor, y: Tensor | None = None) -> Tensor:
        x, noise = _check_inputs(x, noise, self.config.dim)
        e = self.embed(noise)
        if self.label is not None:
            if y is None:
                y = torch.full((x.shape[0],), self.config.label_classes, dtype=torch.int64, device=x.device)
            y = torch.as_tensor(y, device=x.device)
            if y.dtype.is_floating_point or y.dtype == torch.bool or y.shape != (x.shape[0],):
                raise ValueError(f"y must be integer labels of shape ({x.shape[0]},), got {y.dtype} {tuple(y.shape)}")
            if bool((y < 0).any()) or bool((y > self.config.label_classes).any()):
                raise ValueError(f"y must lie in [0, {self.config.label_classes}] ({self.config.label_classes} is the null label)")
            e = e + self.label(y)
        elif y is not None:
            raise ValueError("y was given but the network is unconditional (label_classes is None)")
        return self.trunk(x, e)


class ToyClassifier(nn.Module):
    """``net(x, noise)`` -> logits (B, classes) of the class of a noised point."""

    def __init__(self, config: ToyClassifierConfig) -> None:
        super().__init__()
        if not isinstance(config, ToyClassifierConfig):
            raise TypeError(f"config must be a ToyClassifierConfig, got {type(config).__name__}")
        self.config = config
        self.embed = NoiseEmbedding(config.embedding, config.embed_dim, config.scale, config.hidden)
        self.trunk = _Trunk(config.dim, config.hidden, config.blocks, config.classes)

    def forward(self, x: Tensor, noise: Tensor, y: Tensor | None = None) -> Tensor:
        if y is not None:
            raise ValueError("a classifier takes no labels: call net(x, noise)")
        x, noise = _check_inputs(x, noise, self.config.dim)
        return self.trunk(x, self.embed(noise))


def parameter_count(net: nn.Module) -> int:
    """Trainable parameters of a network."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)

