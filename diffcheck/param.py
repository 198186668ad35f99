"""The one place for what a model is: ``model(x, t)`` predicting the score, eps, x_0 or v, and saying which; conversions between them.

Here: the protocol (``Model``), the conversions (``convert``, ``predict``), a model from a
plain function (``function_model``), a view predicting another quantity (``Converted``) and
the base class of networks used as models (``NetModel``). Networks become models in one
module per family of networks, each the one place for that family:
``diffcheck.nets.wrap.wrap_net`` (the reference networks, fed as the official codes feed
them), ``diffcheck.learned.model`` (the toy MLPs), ``diffcheck.video.netmodels`` (the
reference video networks as MCVD and RaMViD models) and ``diffcheck.video.toynet`` (the toy
video MLP as MCVD and RaMViD models). The exact model is ``diffcheck.exact.ExactModel``.

With x = alpha x_0 + sigma eps (Kingma et al. 2021; Salimans & Ho 2022 for v):
    score = -eps / sigma,   x_0 = (x - sigma eps) / alpha,   v = alpha eps - sigma x_0,
and back from v: x_0 = (alpha x - sigma v) / (alpha^2 + sigma^2),
eps = (sigma x + alpha v) / (alpha^2 + sigma^2). Tweedie's formula is the score -> x_0 line:
x_0 = (x + sigma^2 score) / alpha.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

import torch

from toy.validate import check_choice

from .process.base import Process
from .tensor import per_sample

__all__ = ["PREDICTIONS", "Model", "convert", "predict", "function_model", "FunctionModel", "Converted", "NetModel"]

PREDICTIONS = ("score", "eps", "x0", "v")


@runtime_checkable
class Model(Protocol):
    """A callable ``model(x, t)`` (t scalar or per-sample) with a ``prediction`` in PREDICTIONS."""

    prediction: str

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor: ...


def _scale(v: torch.Tensor | float, x: torch.Tensor, name: str, *, positive: bool):
    s = per_sample(v, x)
    if isinstance(s, float):
        bad = positive and s <= 0.0
    else:
        bad = positive and s.device.type == "cpu" and s.numel() > 0 and bool((s <= 0).any())
    if bad:
        raise ValueError(f"this conversion divides by {name}, which is 0 here")
    return s


def convert(value: torch.Tensor, x: torch.Tensor, alpha: Any, sigma: Any, src: str, dst: str) -> torch.Tensor:
    """Convert a prediction ``src`` at x (with per-sample or scalar alpha, sigma) into ``dst``."""
    check_choice(src, "src", PREDICTIONS)
    check_choice(dst, "dst", PREDICTIONS)
    if value.shape != x.shape:
        raise ValueError(f"the prediction's shape {tuple(value.shape)} must equal the shape of x {tuple(x.shape)}")
    if src == dst:
        return value
    a = per_sample(alpha, x)
    s = per_sample(sigma, x)
    # to (eps, x0) first, computing only what dst needs
    if src == "score":
        if dst == "eps":
            return -s * value
        if dst == "x0":
            return (x + s * s * value) / _scale(alpha, x, "alpha", positive=True)
        return -a * s * value - s * (x + s * s * value) / _scale(alpha, x, "alpha", positive=True)
    if src == "eps":
        if dst == "score":
            return -value / _scale(sigma, x, "sigma", positive=True)
        if dst == "x0":
            return (x - s * value) / _scale(alpha, x, "alpha", positive=True)
        x0 = (x - s * value) / _scale(alpha, x, "alpha", positive=True)
        return a * value - s * x0
    if src == "x0":
        if dst == "eps":
            return (x - a * value) / _scale(sigma, x, "sigma", positive=True)
        if dst == "score":
            ss = _scale(sigma, x, "sigma", positive=True)
            return -(x - a * value) / (ss * ss)
        eps = (x - a * value) / _scale(sigma, x, "sigma", positive=True)
        return a * eps - s * value
    # src == "v"
    norm = a * a + s * s
    eps = (s * x + a * value) / norm
    if dst == "eps":
        return eps
    if dst == "x0":
        return (a * x - s * value) / norm
    return -eps / _scale(sigma, x, "sigma", positive=True)


def predict(model: Model, process: Process, x: torch.Tensor, t: Any, want: str, **kwargs: Any) -> torch.Tensor:
    """Evaluate ``model`` at (x, t) and return its prediction converted to ``want``."""
    check_choice(want, "want", PREDICTIONS)
    pred = getattr(model, "prediction", None)
    if pred not in PREDICTIONS:
        raise TypeError(f"model must have a 'prediction' attribute in {PREDICTIONS}, got {pred!r}")
    out = model(x, t, **kwargs)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the model's output {shape} must be a tensor of the shape of x {tuple(x.shape)}")
    if pred == want:
        return out
    t = torch.as_tensor(t, dtype=torch.float64) if not isinstance(t, torch.Tensor) else t
    return convert(out, x, process.alpha(t), process.sigma(t), pred, want)


class FunctionModel:
    """A plain function ``fn(x, t)`` declared to predict ``prediction``."""

    def __init__(self, fn: Callable[..., torch.Tensor], prediction: str) -> None:
        if not callable(fn):
            raise TypeError("fn must be callable")
        self.fn = fn
        self.prediction = check_choice(prediction, "prediction", PREDICTIONS)

    def __call__(self, x: torch.Tensor, t: Any, **kwargs: Any) -> torch.Tensor:
        return self.fn(x, t, **kwargs)

    def __repr__(self) -> str:
        return f"FunctionModel({getattr(self.fn, '__name__', self.fn)!r}, prediction={self.prediction!r})"


def function_model(fn: Callable[..., torch.Tensor], prediction: str) -> FunctionModel:
    """Declare that ``fn(x, t)`` predicts ``prediction``."""
    return FunctionModel(fn, prediction)


class Converted:
    """A view of ``model`` that predicts ``want`` instead of its own quantity."""

    def __init__(self, model: Model, process: Process, want: str) -> None:
        self.model = model
        self.process = process
        self.prediction = check_choice(want, "want", PREDICTIONS)

    def __call__(self, x: torch.Tensor, t: Any, **kwargs: Any) -> torch.Tensor:
        return predict(self.model, self.process, x, t, self.prediction, **kwargs)

    def __repr__(self) -> str:
        return f"Converted({self.model!r} -> {self.prediction!r})"


class NetModel(torch.nn.Module):
    """A network wrapped as a model: ``net(x, noise_input(t), **kw)`` predicting ``prediction``.

    ``noise_input`` maps the process time t (B,) to what the network was trained on (a
    DDPM step index, a sigma, log sigma, ...). For nets that also output a variance
    (Improved DDPM's learned sigma), ``out_channels`` keeps the first channels as the
    prediction; the full output stays available through ``forward_full``.
    """

    def __init__(
        self,
        net: torch.nn.Module,
        prediction: str,
        noise_input: Callable[[torch.Tensor], torch.Tensor],
        out_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.prediction = check_choice(prediction, "prediction", PREDICTIONS)
        self.noise_input = noise_input
        self.out_channels = out_channels

    def forward_full(self, x: torch.Tensor, t: Any, **kwargs: Any) -> torch.Tensor:
        """The network's whole output at (x, t)."""
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        return self.net(x, self.noise_input(t), **kwargs)

    def forward(self, x: torch.Tensor, t: Any, **kwargs: Any) -> torch.Tensor:
        out = self.forward_full(x, t, **kwargs)
        return out if self.out_channels is None else out[:, : self.out_channels]
