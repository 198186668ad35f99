"""The one place where the toy MLPs (``diffcheck.nets.toy``) become models of a process: time to noise input, input scaling, output scaling (one line each).

The reference networks become models in ``diffcheck.nets.wrap``; what a model is, and the
conversions between predictions, are ``diffcheck.param``.

For x = alpha x_0 + sigma eps with data of standard deviation s_d per coordinate (Karras et al. 2022, Table 1,
written for a general alpha):
    c_in(t)    = 1 / sqrt(alpha^2 s_d^2 + sigma^2)      the network sees x at unit scale,
    c_out(t)   = 1 / sigma for a score prediction        (Song & Ermon 2020, technique 3: s(x, sigma) = s(x)/sigma),
               = 1 for an eps prediction,
    noise(t)   = t, or log(sigma/alpha)                 (``config.noise_input``).
A model is called ``model(x, t, y=None)`` with t a scalar or per-sample (B,) and returns its prediction in x's
dtype; ``forward_full`` adds the variance output of a learned-variance network (``diffcheck.variance``).
A classifier is called ``classifier(x, t)`` and returns logits.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from toy.validate import check_float

from ..nets.toy import ToyClassifier, ToyDenoiser
from ..process.base import Process
from ..tensor import per_sample

__all__ = ["ToyModel", "ToyClassifierModel", "noise_input"]


def _times(t: Any, x: Tensor) -> Tensor:
    """t as a float64 (B,) tensor."""
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim != 2:
        raise TypeError("x must be a floating tensor of shape (B, D)")
    # a Python number goes straight to float64 (through the default float32 it would lose its last digits)
    t = t.to(device=x.device, dtype=torch.float64) if isinstance(t, torch.Tensor) else torch.as_tensor(t, dtype=torch.float64, device=x.device)
    if t.ndim == 0:
        t = t.expand(x.shape[0]).contiguous()  # contiguous: the same arithmetic as a per-sample t of equal values
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a scalar or have shape ({x.shape[0]},), got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()) or bool((t < 0).any()) or bool((t > 1).any()):
        raise ValueError("t must lie in [0, 1]")
    return t


def noise_input(kind: str, process: Process, t: Tensor) -> Tensor:
    """The network's noise input at times t (float64): t itself, or log(sigma(t)/alpha(t))."""
    if kind == "time":
        return t
    if kind == "log_sigma":
        return torch.log(process.edm_sigma(t))
    raise ValueError(f"noise_input must be 'time' or 'log_sigma', got {kind!r}")


class _Scaled(nn.Module):
    """Shared plumbing: scale x by c_in and feed the noise input, in the network's dtype."""

    net: nn.Module

    def __init__(self, net: nn.Module, process: Process, data_std: float) -> None:
        super().__init__()
        if not isinstance(process, Process):
            raise TypeError(f"process must be a Process, got {type(process).__name__}")
        self.net = net
        self.process = process
        self.data_std = check_float(data_std, "data_std", low=0.0, low_open=True)

    def _run(self, x: Tensor, t: Any, **kwargs: Any) -> tuple[Tensor, Tensor, Tensor]:
        """(raw output in x's dtype, alpha (B,), sigma (B,)) at (x, t)."""
        tb = _times(t, x)
        a, s = self.process.alpha(tb), self.process.sigma(tb)
        c_in = torch.rsqrt(a * a * self.data_std**2 + s * s)
        dtype = next(self.net.parameters()).dtype
        h = (per_sample(c_in, x) * x).to(dtype)
        noise = noise_input(self.net.config.noise_input, self.process, tb).to(dtype)
        return self.net(h, noise, **kwargs).to(x.dtype), a, s


class ToyModel(_Scaled):
    """A :class:`~diffcheck.nets.toy.ToyDenoiser` as a model of ``process`` predicting ``net.config.prediction``."""

    def __init__(self, net: ToyDenoiser, process: Process, data_std: float) -> None:
        if not isinstance(net, ToyDenoiser):
            raise TypeError(f"net must be a ToyDenoiser, got {type(net).__name__}")
        super().__init__(net, process, data_std)
        self.prediction = net.config.prediction
        self.learn_sigma = net.config.learn_sigma
        self.label_classes = net.config.label_classes
        self.dim = net.config.dim

    def forward_full(self, x: Tensor, t: Any, y: Tensor | None = None) -> Tensor:
        """[prediction, v_raw] along dimension 1 (v_raw only with a learned variance)."""
        out, _, s = self._run(x, t, **({} if y is None else {"y": y}))
        if self.prediction == "score":
            c_out = per_sample(1.0 / s, x)
            out = torch.cat([out[:, : self.dim] * c_out, out[:, self.dim :]], dim=1) if self.learn_sigma else out * c_out
        return out

    def forward(self, x: Tensor, t: Any, y: Tensor | None = None) -> Tensor:
        out = self.forward_full(x, t, y)
        return out[:, : self.dim] if self.learn_sigma else out

    def extra_repr(self) -> str:
        return f"prediction={self.prediction!r}, process={self.process!r}, data_std={self.data_std:.4g}"


class ToyClassifierModel(_Scaled):
    """A :class:`~diffcheck.nets.toy.ToyClassifier` as ``classifier(x, t) -> logits`` on the noised data of ``process``."""

    prediction = "logits"

    def __init__(self, net: ToyClassifier, process: Process, data_std: float) -> None:
        if not isinstance(net, ToyClassifier):
            raise TypeError(f"net must be a ToyClassifier, got {type(net).__name__}")
        super().__init__(net, process, data_std)
        self.classes = net.config.classes

    def forward(self, x: Tensor, t: Any) -> Tensor:
        return self._run(x, t)[0]

    def log_probs(self, x: Tensor, t: Any) -> Tensor:
        """log p_theta(c | x_t = x) for every class, (B, classes)."""
        return torch.log_softmax(self(x, t), dim=-1)

    def extra_repr(self) -> str:
        return f"classes={self.classes}, process={self.process!r}, data_std={self.data_std:.4g}"

