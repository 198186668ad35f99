"""Classifier guidance (Dhariwal & Nichol 2021) and classifier-free guidance (Ho & Salimans 2021).

A conditional model is called as ``model(x, t, y=labels)`` and, unconditionally, as
``model(x, t)``. A classifier is a callable ``classifier(x, t) -> log-probabilities or
logits`` of shape (B, C); its gradient ``grad_x log softmax(classifier(x, t))[y]`` is taken
by autograd unless the classifier provides ``grad(x, t, y)`` in closed form.

Guidance of the form of Dhariwal & Nichol 2021, Algorithm 2 is a *model* (it changes eps), so
every sampler takes it: DDPM, DDIM, the reverse SDE and the probability-flow ODE alike.
Dhariwal & Nichol 2021, Algorithm 1 shifts the ancestral mean and is a sampler step of its own.
"""

from __future__ import annotations

from typing import Any

import torch

from toy.mixture import GaussianMixture
from toy.validate import check_float, check_int

from .param import Model, predict
from .process.base import Process
from .samplers.ancestral import ancestral_moments, check_variance, gaussian_draw
from .samplers.base import sampler
from .samplers.loop import Coefficients, coefficients, walk
from .tensor import per_sample

__all__ = [
    "ExactClassifier",
    "classifier_grad",
    "ClassifierGuided",
    "ClassifierFree",
    "classifier_guided_ancestral_step",
    "classifier_guided_ancestral",
    "tilted_log_density",
]


class ExactClassifier:
    """The exact noisy classifier log p(y | x_t) of a labelled mixture under a process, with its closed-form gradient."""

    def __init__(self, mixture: GaussianMixture, process: Process) -> None:
        if not isinstance(mixture, GaussianMixture) or mixture.labels is None:
            raise TypeError("mixture must be a GaussianMixture with class labels")
        if not isinstance(process, Process):
            raise TypeError(f"process must be a Process, got {type(process).__name__}")
        self.mixture = mixture
        self.process = process

    def _law(self, t: Any):
        t = torch.as_tensor(t, dtype=torch.float64) if not isinstance(t, torch.Tensor) else t
        return self.process.marginal(self.mixture, t)

    def __call__(self, x: torch.Tensor, t: Any) -> torch.Tensor:
        return self._law(t).log_class_posterior(x.reshape(x.shape[0], -1))

    def grad(self, x: torch.Tensor, t: Any, y: Any) -> torch.Tensor:
        """grad_x log p(y | x_t = x) = score(x | y) - score(x)."""
        flat = x.reshape(x.shape[0], -1)
        return self._law(t).log_class_posterior_grad(flat, self._index(y, x)).reshape(x.shape)

    def _index(self, y: Any, x: torch.Tensor) -> torch.Tensor:
        y = torch.as_tensor(y, device=x.device)
        return y.expand(x.shape[0]) if y.ndim == 0 else y


def classifier_grad(classifier: Any, x: torch.Tensor, t: Any, y: Any) -> torch.Tensor:
    """grad_x log p(y | x_t) of a classifier: its closed form if it has one, else autograd of its log-softmax."""
    if hasattr(classifier, "grad"):
        return classifier.grad(x, t, y)
    y = torch.as_tensor(y, device=x.device)
    y = y.expand(x.shape[0]) if y.ndim == 0 else y
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        logp = torch.log_softmax(classifier(xr, t), dim=-1)
        picked = logp.gather(-1, y.reshape(-1, 1).long()).sum()
        (g,) = torch.autograd.grad(picked, xr)
    return g


class ClassifierGuided:
    """Dhariwal & Nichol 2021, Algorithm 2, as a model: eps_hat = eps - sigma_t * scale * grad log p(y | x_t).

    With scale = 1 and the exact classifier this is the exact class-conditional eps
    (the conditional score is the unconditional score plus grad log p(y | x_t)). The
    paper writes the correction without the scale; the official code multiplies by it.
    Called as ``guided(x, t, y=labels)``.
    """

    prediction = "eps"

    def __init__(self, model: Model, classifier: Any, process: Process, scale: float = 1.0, *, conditional: bool = False) -> None:
        if not callable(classifier):
            raise TypeError(f"classifier must be callable as classifier(x, t) -> log-probabilities, got {type(classifier).__name__}")
        self.model = model
        self.classifier = classifier
        self.process = process
        self.scale = check_float(scale, "scale", low=0.0)
        self.conditional = bool(conditional)

    def __call__(self, x: torch.Tensor, t: Any, y: Any = None) -> torch.Tensor:
        """eps_hat at (x, t) for labels y; a ``conditional`` model (ADM's class-conditional nets) also gets y."""
        if y is None:
            raise ValueError("classifier guidance needs the class labels y")
        eps = predict(self.model, self.process, x, t, "eps", **({"y": y} if self.conditional else {}))
        tt = torch.as_tensor(t, dtype=torch.float64) if not isinstance(t, torch.Tensor) else t
        sigma = per_sample(self.process.sigma(tt), x)
        return eps - sigma * self.scale * classifier_grad(self.classifier, x, t, y)


class ClassifierFree:
    """Classifier-free guidance (Ho & Salimans 2021, Eq. 6): eps_tilde = (1 + w) eps(z, c) - w eps(z)."""

    prediction = "eps"

    def __init__(self, model: Model, process: Process, w: float) -> None:
        self.model = model
        self.process = process
        self.w = check_float(w, "w", low=-1.0)

    def __call__(self, x: torch.Tensor, t: Any, y: Any = None) -> torch.Tensor:
        if y is None:
            raise ValueError("classifier-free guidance needs the class labels y")
        cond = predict(self.model, self.process, x, t, "eps", y=y)
        if self.w == 0.0:
            return cond
        uncond = predict(self.model, self.process, x, t, "eps")
        return (1.0 + self.w) * cond - self.w * uncond


def classifier_guided_ancestral_step(
    model: Model,
    process: Process,
    x: torch.Tensor,
    t: torch.Tensor,
    s: torch.Tensor,
    noise,
    *,
    last: bool = False,
    classifier: Any = None,
    scale: float = 1.0,
    y: Any = None,
    variance: str = "beta_tilde",
    coef: Coefficients | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dhariwal & Nichol 2021, Algorithm 1: x_s ~ N(mu + scale * Sigma * grad log p(y | x_t), Sigma).

    mu and Sigma are the ancestral step's (``ancestral_moments``), Sigma per coordinate with ``variance="learned"``.
    """
    c = coef or coefficients(process, t, s)
    mean, var = ancestral_moments(model, process, x, t, s, variance=variance, coef=c)
    mean = mean + (scale * var) * classifier_grad(classifier, x, t, y)
    return gaussian_draw(mean, var, noise, x), mean


@sampler("chain", "Dhariwal & Nichol 2021, Algorithm 1", weak_order=1.0)
def classifier_guided_ancestral(
    model: Model,
    classifier: Any,
    process: Process,
    x: torch.Tensor,
    grid: Any,
    y: Any,
    *,
    scale: float = 1.0,
    generator: Any,
    variance: str = "beta_tilde",
    check_finite: bool = True,
    progress: bool = False,
    full: bool = False,
):
    """Ancestral sampling with the classifier-guided mean shift (Dhariwal & Nichol 2021, Algorithm 1) over ``grid``.

    ``variance`` is "beta_tilde", "beta" or "learned" (a learned-variance model, as the paper's networks are).
    """
    scale = check_float(scale, "scale", low=0.0)
    check_variance(variance, model)
    if y is None:
        raise ValueError("classifier guidance needs the class labels y")
    return walk(classifier_guided_ancestral_step, model, process, x, grid, generator=generator,
                name="classifier_guided_ancestral", check_finite=check_finite, progress=progress, full=full,
                classifier=classifier, scale=scale, y=y, variance=variance)


def tilted_log_density(mixture: GaussianMixture, process: Process, t: Any, x: torch.Tensor, c: int, w: float) -> torch.Tensor:
    """Unnormalised log of p_t(x | c) p_t(c | x)^w = log p_t(x) + (1 + w) log p_t(c | x) + const (Ho & Salimans 2021, Sec. 3.2)."""
    c = check_int(c, "c")
    w = check_float(w, "w", low=-1.0)
    law = process.marginal(mixture, t)
    idx = int((mixture.classes == int(c)).nonzero().reshape(-1)[0]) if bool((mixture.classes == int(c)).any()) else None
    if idx is None:
        raise ValueError(f"c must be one of {mixture.classes.tolist()}, got {c}")
    return law.log_prob(x) + (1.0 + float(w)) * law.log_class_posterior(x)[:, idx]
