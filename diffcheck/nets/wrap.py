"""The one place where the reference networks (``diffcheck.nets``) become models (``wrap_net``): process time t mapped to each network's own noise input, as the official codes feed it.

A wrapped network is a :class:`diffcheck.param.NetModel` called as ``model(x, t, y=None)`` with t the time of a
:class:`~diffcheck.process.Process` (scalar or per-sample). The noise input the network receives:

- ``"timestep_1000"`` (DDPM, iDDPM, ADM): the 0-based step index of the official code. Our 1-based step i of a
  T-step table sits at t = i/T, so the index is t·T − 1; iDDPM rescales it by 1000/T (``rescale_timesteps``,
  the identity for T = 1000). Times within rounding of a step are snapped to it, so the network sees the
  integer the official sampler feeds.
- ``"time_999"`` (DDPM++ on the VP SDE): 999·t (score_sde ``labels = t * 999``).
- ``"sigma_index"`` (NCSN): the index k of the ladder level σ_k nearest to σ(t)/α(t) in log σ; a time whose
  noise level is not on the ladder is an error.
- ``"sigma"`` (NCSNv2, NCSN++): σ(t)/α(t).

Networks conditioned on σ were trained on x = x_0 + σ z; for a process with α ≠ 1 the wrapper feeds x/α and
scales a score output by 1/α (x/α = x_0 + (σ/α) z is that variable, and ∇_x = ∇_{x/α}/α). Their data may
live in [0, 1] (``centered=False``, the network maps 2x − 1 itself); ``data_range`` chooses the range the
model's x_0 lives in, by the affine change x_0' = a x_0 + b (noise scaled by a, a score by a).
Networks conditioned on time take x as it is: they were trained on that very process.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..param import NetModel
from ..process.base import Process
from ..process.discrete import DiscreteVP
from ..process.ladders import geometric_sigmas
from ..tensor import per_sample

__all__ = ["NoiseMap", "noise_map", "WrappedNet", "WrappedClassifier", "wrap_net", "as_classifier"]

_TIME_INPUTS = ("timestep_1000", "time_999")
_SIGMA_INPUTS = ("sigma_index", "sigma")


@dataclasses.dataclass(frozen=True, eq=False)
class NoiseMap:
    """Maps process times t (B,) to a network's noise input (B,): one rule per ``kind`` of NOISE_INPUTS."""

    kind: str
    process: Process
    T: int | None = None
    rescale_timesteps: bool = True
    sigmas: Tensor | None = None
    scale: float = 1.0
    ladder_tol: float = 1e-4

    def level(self, t: Tensor) -> Tensor:
        """The network's noise level σ'(t) = a σ(t)/α(t) in its own data units, float64."""
        return self.scale * self.process.edm_sigma(t.to(torch.float64))

    def __call__(self, t: Tensor) -> Tensor:
        t = Process._time(t.to(torch.float64))
        if self.kind == "timestep_1000":
            assert self.T is not None
            pos = t * self.T
            near = torch.round(pos)
            # float32 times carry a relative error of ~6e-8; a step within that of an integer is that integer
            pos = torch.where((pos - near).abs() <= 64 * torch.finfo(torch.float32).eps * self.T, near, pos)
            index = pos - 1.0
            return index * (1000.0 / self.T) if self.rescale_timesteps else index
        if self.kind == "time_999":
            return 999.0 * t
        if self.kind == "sigma":
            return self.level(t)
        assert self.sigmas is not None
        log_level = torch.log(self.level(t))
        distance = (log_level[:, None] - torch.log(self.sigmas.to(t.device))[None, :]).abs()
        best, k = distance.min(dim=1)
        off = best > self.ladder_tol
        if bool(off.any()):
            i = int(off.nonzero()[0, 0])
            raise ValueError(
                f"t = {float(t[i]):.8g} has noise level {float(log_level[i].exp()):.8g}, which is not on the network's "
                f"σ ladder ({self.sigmas.numel()} levels from {float(self.sigmas[0]):.6g} to {float(self.sigmas[-1]):.6g}; "
                f"nearest {float(self.sigmas[k[i]]):.8g}); use times from process.sigma_grid(ladder)"
            )
        return k


def _config(net: nn.Module, config: Any) -> Any:
    cfg = getattr(net, "config", None) if config is None else config
    if cfg is None:
        raise TypeError(f"net ({type(net).__name__}) has no .config; pass config= with prediction and noise_input")
    for field in ("prediction", "noise_input", "data_shape", "data_range"):
        if not hasattr(cfg, field):
            raise TypeError(f"config ({type(cfg).__name__}) has no {field!r}")
    return cfg


def noise_map(config: Any, process: Process, *, T: int | None = None, rescale_timesteps: bool = True,
              sigmas: Any = None, scale: float = 1.0, ladder_tol: float = 1e-4) -> NoiseMap:
    """The rule feeding ``config.noise_input`` from the time of ``process`` (see the module docstring)."""
    if not isinstance(process, Process):
        raise TypeError(f"process must be a Process, got {type(process).__name__}")
    kind = config.noise_input
    if kind == "timestep_1000":
        if T is None:
            if not isinstance(process, DiscreteVP):
                raise ValueError("a 'timestep_1000' network needs the number of steps T: pass T= or a DiscreteVP process")
            T = process.T
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise ValueError(f"T must be a positive int, got {T!r}")
        return NoiseMap(kind, process, T=T, rescale_timesteps=bool(rescale_timesteps))
    if kind == "time_999":
        return NoiseMap(kind, process)
    if kind == "sigma":
        return NoiseMap(kind, process, scale=scale)
    if kind == "sigma_index":
        levels = getattr(config, "num_classes", None)
        if sigmas is None:
            if levels is None:
                raise ValueError("a 'sigma_index' network needs its σ ladder: pass sigmas=")
            # ermongroup/ncsn configs/anneal.yml: sigma_begin 1, sigma_end 0.01, geometric over num_classes levels
            sigmas = geometric_sigmas(1.0, 0.01, levels)
        sig = torch.as_tensor(sigmas, dtype=torch.float64)
        if sig.ndim != 1 or sig.numel() < 1 or not bool(torch.isfinite(sig).all()) or bool((sig <= 0).any()):
            raise ValueError("sigmas must be a 1-D tensor of positive finite noise levels")
        if levels is not None and sig.numel() != levels:
            raise ValueError(f"sigmas holds {sig.numel()} levels but the network has {levels}")
        if not ladder_tol > 0 or not math.isfinite(ladder_tol):
            raise ValueError(f"ladder_tol must be positive, got {ladder_tol!r}")
        return NoiseMap(kind, process, sigmas=sig, scale=scale, ladder_tol=float(ladder_tol))
    raise ValueError(f"unknown noise_input {kind!r}; known: {', '.join(_TIME_INPUTS + _SIGMA_INPUTS)}")


def _affine(config: Any, data_range: Sequence[float] | None) -> tuple[float, float]:
    """(a, b) with x_0' = a x_0 + b mapping the model's data range onto the network's."""
    net_lo, net_hi = (float(v) for v in config.data_range)
    if data_range is None:
        return 1.0, 0.0
    try:
        lo, hi = (float(v) for v in data_range)
    except (TypeError, ValueError):
        raise ValueError(f"data_range must be a pair (low, high), got {data_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"data_range must be finite with high > low, got {data_range!r}")
    a = (net_hi - net_lo) / (hi - lo)
    return a, net_lo - a * lo


def _times(t: Any, x: Tensor) -> Tensor:
    """t as (B,) float64; a number or a host tensor stays on the host (reading it costs no device synchronisation)."""
    t = torch.as_tensor(t)
    if not t.is_floating_point() or (t.device.type == "cpu" and t.dtype != torch.float64):
        t = t.to(torch.float64)
    if t.ndim == 0:
        return t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a scalar or have shape ({x.shape[0]},), got {tuple(t.shape)}")
    return t


def _on(x: Tensor, values: Tensor, scalar: bool) -> Tensor:
    """Per-sample values on x's device: a fill for one shared value (no copy, no sync), else one copy."""
    if scalar and values.device.type == "cpu":
        return torch.full((x.shape[0],), float(values[0]), dtype=values.dtype if values.is_floating_point() else torch.int64, device=x.device)
    return values.to(x.device, non_blocking=True)


class _Adapter:
    """The shared part of the wrappers: feed (x, t) to the network in its own units."""

    net: nn.Module
    noise: NoiseMap
    process: Process
    a: float
    b: float

    def _call(self, x: Tensor, t: Any, kwargs: dict[str, Any]) -> tuple[Tensor, Tensor | None]:
        """The network's raw output and, for σ-conditioned networks, α(t) broadcast against x (else None).

        The noise input goes to the network in float32 (its embedding is cast to the weights' dtype
        inside the network), never rounded to bfloat16; times given as numbers or host tensors are
        mapped on the host.
        """
        scalar = not isinstance(t, Tensor) or t.ndim == 0
        tb = _times(t, x)
        param = next(self.net.parameters(), None)
        dtype = x.dtype if param is None else param.dtype
        noise = self.noise(tb[:1] if scalar else tb)
        if noise.is_floating_point():  # float64 nets get float64, every other net float32 (never bfloat16)
            noise = noise.to(torch.promote_types(dtype, torch.float32))
        noise = _on(x, noise, scalar)
        if self.noise.kind in _SIGMA_INPUTS:
            alpha = self.process.alpha(tb[:1] if scalar else tb)
            alpha = float(alpha[0]) if scalar and alpha.device.type == "cpu" else per_sample(alpha, x)
            h = self.a * x / alpha + self.b
            return self.net(h.to(dtype), noise, **kwargs).to(x.dtype), alpha
        return self.net(x.to(dtype), noise, **kwargs).to(x.dtype), None


class WrappedNet(_Adapter, NetModel):
    """A network as a model of ``process``: ``model(x, t, y=None)`` predicts ``prediction`` ("eps" or "score").

    ``forward_full`` returns every output channel; with ``learn_sigma`` the channels after the first C hold
    iDDPM's variance interpolation v (Σ = exp(f log β + (1 − f) log β̃), f = (v + 1)/2; Nichol & Dhariwal 2021,
    Eq. 15), also given by ``variance_output``.
    """

    def __init__(self, net: nn.Module, config: Any, process: Process, noise: NoiseMap, a: float, b: float) -> None:
        channels = config.data_shape[0]
        NetModel.__init__(self, net, config.prediction, noise, out_channels=channels if config.learn_sigma else None)
        self.config = config
        self.process = process
        self.noise = noise
        self.a, self.b = a, b
        self.channels = channels
        self.learn_sigma = bool(config.learn_sigma)
        self.data_range = self._model_range()

    def _model_range(self) -> tuple[float, float]:
        lo, hi = (float(v) for v in self.config.data_range)
        return ((lo - self.b) / self.a, (hi - self.b) / self.a)

    def forward_full(self, x: Tensor, t: Any, **kwargs: Any) -> Tensor:
        """The whole output at (x, t) in the model's units: prediction channels, then any variance channels."""
        out, alpha = self._call(x, t, kwargs)
        if alpha is None or self.prediction != "score":
            return out
        # ∇_x log p(x) = (a/α) ∇_{x'} log p'(x') for x' = a x/α + b; only the prediction channels scale
        c = self.channels
        return torch.cat([out[:, :c] * (self.a / alpha), out[:, c:]], dim=1) if out.shape[1] > c else out * (self.a / alpha)

    def variance_output(self, x: Tensor, t: Any, **kwargs: Any) -> Tensor:
        """The variance channels v of a network with ``learn_sigma`` (Nichol & Dhariwal 2021, Eq. 15)."""
        if not self.learn_sigma:
            raise ValueError(f"{type(self.net).__name__} has no variance output (learn_sigma is False)")
        return self.forward_full(x, t, **kwargs)[:, self.channels:]

    def extra_repr(self) -> str:
        return f"prediction={self.prediction!r}, noise_input={self.noise.kind!r}, process={self.process!r}"


class WrappedClassifier(_Adapter, nn.Module):
    """A noisy-image classifier as a function of (x, t): ``classifier(x, t)`` returns logits (B, classes)."""

    def __init__(self, net: nn.Module, config: Any, process: Process, noise: NoiseMap, a: float, b: float) -> None:
        nn.Module.__init__(self)
        self.net = net
        self.config = config
        self.process = process
        self.noise = noise
        self.a, self.b = a, b
        self.prediction = "logits"

    def forward(self, x: Tensor, t: Any, **kwargs: Any) -> Tensor:
        return self._call(x, t, kwargs)[0]


def _prepare(net: nn.Module, process: Process, config: Any, data_range: Any, **noise_kw: Any) -> tuple[Any, NoiseMap, float, float]:
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
    cfg = _config(net, config)
    a, b = _affine(cfg, data_range)
    if cfg.noise_input in _TIME_INPUTS and (a, b) != (1.0, 0.0):
        raise ValueError(f"data_range {tuple(data_range)} differs from the network's {tuple(cfg.data_range)}, but a "
                         f"time-conditioned network ({cfg.noise_input!r}) was trained on its own process and data range; "
                         "rebuild it with centered=True instead")
    return cfg, noise_map(cfg, process, scale=a, **noise_kw), a, b


def wrap_net(net: nn.Module, process: Process, *, config: Any = None, T: int | None = None,
             rescale_timesteps: bool = True, sigmas: Any = None, ladder_tol: float = 1e-4,
             data_range: Sequence[float] | None = None) -> WrappedNet:
    """Wrap ``net`` (with ``net.config`` or ``config``) as a model of ``process`` (see the module docstring).

    ``T`` and ``rescale_timesteps`` for "timestep_1000" networks (T defaults to a DiscreteVP's T);
    ``sigmas`` for "sigma_index" networks (default: NCSN's ladder 1 → 0.01 over ``num_classes`` levels);
    ``data_range`` the range of the model's x_0 (default: the network's own, ``config.data_range``).
    """
    cfg, noise, a, b = _prepare(net, process, config, data_range, T=T, rescale_timesteps=rescale_timesteps,
                                sigmas=sigmas, ladder_tol=ladder_tol)
    if cfg.prediction not in ("eps", "score"):
        raise ValueError(f"{type(net).__name__} predicts {cfg.prediction!r}, not a diffusion model output; "
                         "wrap a classifier with as_classifier")
    return WrappedNet(net, cfg, process, noise, a, b)


def as_classifier(net: nn.Module, process: Process, *, config: Any = None, T: int | None = None,
                  rescale_timesteps: bool = True, sigmas: Any = None, ladder_tol: float = 1e-4,
                  data_range: Sequence[float] | None = None) -> WrappedClassifier:
    """Wrap a noisy-image classifier (prediction "logits") as ``classifier(x, t) -> logits``, fed like ``wrap_net``."""
    cfg, noise, a, b = _prepare(net, process, config, data_range, T=T, rescale_timesteps=rescale_timesteps,
                                sigmas=sigmas, ladder_tol=ladder_tol)
    if cfg.prediction != "logits":
        raise ValueError(f"{type(net).__name__} predicts {cfg.prediction!r}, not logits; wrap it with wrap_net")
    return WrappedClassifier(net, cfg, process, noise, a, b)
