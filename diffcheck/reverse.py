"""The reverse-time SDE (Song et al. 2021, Eq. 6) and the probability-flow ODE (Song et al. 2021, Eq. 13) of a process
for a model: ``ReverseSDE(process, model, probability_flow)``.

This is the one definition that every SDE and ODE sampler, the likelihood and the checks
call. For a model of any prediction type (score, eps, x_0 or v: converted through
``diffcheck.param``) the reverse dynamics, written in forward time t, are

    dx = [f(t) x - c g(t)^2 score(x, t)] dt + [c = 1: g(t) dW_bar; c = 1/2: 0],

c = 1 for the reverse SDE and c = 1/2 for the probability-flow ODE. Where the model
predicts eps the drift is written f x + c g^2 eps / sigma, which divides eps by sigma once
(the score form would divide by sigma and the eps-to-score conversion by sigma again).
Per-sample times broadcast with ``diffcheck.tensor.per_sample``; nothing assumes images.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from . import param
from .process.base import Process, ScoreFn
from .tensor import per_sample

__all__ = ["ReverseSDE"]


class _ScoreFunction:
    """A plain function ``score(x, t)`` seen as a model predicting the score (score_sde's ``score_fn``)."""

    prediction = "score"

    def __init__(self, fn: ScoreFn) -> None:
        if not callable(fn):
            raise TypeError("model must be a model (with a 'prediction') or a score function score(x, t)")
        self.fn = fn

    def __call__(self, x: torch.Tensor, t: Any, **kwargs: Any) -> torch.Tensor:
        return self.fn(x, t, **kwargs)


def _value(v: Any) -> float | torch.Tensor:
    """A coefficient as a Python float (a number or a 0-d tensor) or a per-sample tensor (B,)."""
    if isinstance(v, torch.Tensor):
        return float(v) if v.ndim == 0 else v
    return float(v)


def _times(v: float | torch.Tensor, x: torch.Tensor) -> float | torch.Tensor:
    return v if isinstance(v, float) else per_sample(v, x)


class ReverseSDE:
    """The reverse-time SDE of ``process`` for ``model`` (Song et al. 2021, Eq. 6), or with ``probability_flow`` its
    probability-flow ODE (Song et al. 2021, Eq. 13).

    ``model`` is a model with a ``prediction`` (any of ``diffcheck.param.PREDICTIONS``) or a
    plain score function ``score(x, t)``. ``drift`` and ``diffusion`` accept the step's
    f(t), g(t)^2 and sigma(t) when a sampler has them already (``diffcheck.process.steps``).
    """

    def __init__(self, process: Process, model: Any, probability_flow: bool = False) -> None:
        self.process = process
        self.model = model if hasattr(model, "prediction") else _ScoreFunction(model)
        self.probability_flow = bool(probability_flow)

    def __repr__(self) -> str:
        kind = "probability-flow ODE" if self.probability_flow else "reverse SDE"
        return f"ReverseSDE({kind} of {self.process!r} for {self.model!r})"

    @property
    def weight(self) -> float:
        """c, the weight of g^2 score in the drift: 1 for the reverse SDE (Song et al. 2021, Eq. 6), 1/2 for the probability
        flow (Song et al. 2021, Eq. 13)."""
        return 0.5 if self.probability_flow else 1.0

    def drift(self, x: torch.Tensor, t: Any, *, f: Any = None, g2: Any = None, sigma: Any = None,
              **model_kwargs: Any) -> torch.Tensor:
        """f(t) x - c g(t)^2 score(x, t), in forward time (Song et al. 2021, Eq. 6 and Eq. 13); t scalar or per-sample.

        With ``probability_flow`` this is the velocity dx/dt of the ODE.
        """
        f = _value(self.process.f(t) if f is None else f)
        g2 = _value(self.process.g2(t) if g2 is None else g2)
        w = self.weight * g2
        if self.model.prediction == "eps":
            sigma = _value(self.process.sigma(t) if sigma is None else sigma)
            if (sigma <= 0.0) if isinstance(sigma, float) else bool((sigma <= 0).any()):
                raise ValueError("the reverse drift of an eps-model is undefined where sigma(t) = 0; stop the grid above 0")
            eps = param.predict(self.model, self.process, x, t, "eps", **model_kwargs)  # no conversion: the shape checked
            return _times(f, x) * x + _times(w / sigma, x) * eps
        score = param.predict(self.model, self.process, x, t, "score", **model_kwargs)
        return _times(f, x) * x - _times(w, x) * score

    def diffusion(self, t: Any, *, g2: Any = None) -> float | torch.Tensor:
        """g(t) for the reverse SDE, 0 for the probability-flow ODE (a float when g^2 is given as one)."""
        g2 = self.process.g2(t) if g2 is None else g2
        if isinstance(g2, torch.Tensor):
            return torch.zeros_like(g2) if self.probability_flow else g2.sqrt()
        return 0.0 if self.probability_flow else math.sqrt(g2)
