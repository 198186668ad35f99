"""How far a learned model is from the exact answer: relative L2 errors under p_t, with their Monte Carlo error.

For a learned quantity f and the exact one f* at x ~ p (p_t, or the joint law of (x_t, y)),
    e = sqrt(E|f(x) - f*(x)|^2 / E|f*(x)|^2),
estimated from n draws as sqrt(A/B) with A, B the sample means of a_i = |f - f*|^2 and b_i = |f*|^2. Its standard
error is the delta method's: Var(A/B) ~ (Var a / B^2 - 2 A Cov(a, b) / B^3 + A^2 Var b / B^4) / n and
se(e) = se(A/B) / (2 e). The quantities compared:

- the score of a denoiser (any prediction, converted; Song et al. 2021),
- the classifier gradient grad log p(y | x_t) of a noisy classifier (Dhariwal & Nichol 2021, Algorithm 1),
- the guided eps~ = (1 + w) eps(z, c) - w eps(z) of a jointly trained network (Ho & Salimans 2021, Eq. 6), and its
  implicit classifier gradient -(eps(z, c) - eps(z)) / sigma,
- the learned reverse variance of L_hybrid against the best diagonal Gaussian variance given x_t,
  beta_tilde + c1^2 Var(x_0 | x_t) (Nichol & Dhariwal 2021, Eq. 15; Ho et al. 2020, Eq. 6-7).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from toy.mixture import GaussianMixture
from toy.validate import check_float, check_int

from ..param import predict
from ..process.base import Process
from ..process.discrete import Schedule
from ..variance import learned_range, split_output
from ..vlb import check_data_schedule

__all__ = [
    "RelativeError",
    "relative_error",
    "rms_error",
    "score_error",
    "classifier_gradient_error",
    "guided_eps_error",
    "implicit_classifier_error",
    "variance_error",
    "optimal_log_variance",
    "joint_sample",
]


@dataclasses.dataclass(frozen=True)
class RelativeError:
    """An error estimate ``value`` (a relative L2 error unless said otherwise) with its Monte Carlo standard error ``se`` from ``n`` draws."""

    value: float
    se: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.4g} ± {self.se:.2g} (n={self.n})"

    def to_dict(self) -> dict[str, float]:
        """The fields as a JSON-ready dictionary."""
        return {"value": self.value, "se": self.se, "n": self.n}


def relative_error(pred: torch.Tensor, exact: torch.Tensor) -> RelativeError:
    """sqrt(E|pred - exact|^2 / E|exact|^2) over the batch, with its delta-method standard error."""
    if not isinstance(pred, torch.Tensor) or not isinstance(exact, torch.Tensor):
        raise TypeError("pred and exact must be tensors of shape (n, ...)")
    if pred.shape != exact.shape or pred.ndim < 1:
        raise ValueError(f"pred and exact must have the same shape (n, ...), got {tuple(pred.shape)} and {tuple(exact.shape)}")
    n = pred.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 draws, got {n}")
    a = (pred - exact).reshape(n, -1).pow(2).sum(-1).to(torch.float64)
    b = exact.reshape(n, -1).pow(2).sum(-1).to(torch.float64)
    if not bool(torch.isfinite(a).all()) or not bool(torch.isfinite(b).all()):
        raise ValueError("pred or exact holds non-finite values")
    A, B = float(a.mean()), float(b.mean())
    if B <= 0.0:
        raise ValueError("the exact quantity is zero at every draw: a relative error is undefined")
    ratio = A / B
    var_a, var_b = float(a.var()), float(b.var())
    cov = float(((a - A) * (b - B)).sum()) / (n - 1)
    var_ratio = max(var_a / B**2 - 2.0 * A * cov / B**3 + A**2 * var_b / B**4, 0.0) / n
    value = math.sqrt(ratio)
    se = math.sqrt(var_ratio) / (2.0 * value) if value > 0 else 0.0
    return RelativeError(value, se, n)


def rms_error(pred: torch.Tensor, exact: torch.Tensor) -> RelativeError:
    """sqrt(E|pred - exact|^2) over the batch, with its delta-method standard error."""
    if not isinstance(pred, torch.Tensor) or not isinstance(exact, torch.Tensor) or pred.shape != exact.shape or pred.ndim < 1:
        raise ValueError("pred and exact must be tensors of the same shape (n, ...)")
    n = pred.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 draws, got {n}")
    a = (pred - exact).reshape(n, -1).pow(2).sum(-1).to(torch.float64)
    if not bool(torch.isfinite(a).all()):
        raise ValueError("pred or exact holds non-finite values")
    value = math.sqrt(float(a.mean()))
    se = math.sqrt(float(a.var()) / n) / (2.0 * value) if value > 0 else 0.0
    return RelativeError(value, se, n)


def _time(t: Any) -> float:
    return check_float(float(t), "t", low=0.0, high=1.0, low_open=True)


def joint_sample(mixture: GaussianMixture, process: Process, t: Any, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, y): x_0 and its class drawn from the mixture, then x_t = alpha x_0 + sigma eps (float64)."""
    n = check_int(n, "n", minimum=2)
    if mixture.labels is None:
        raise ValueError("mixture has no class labels")
    x0, comp = mixture.sample(n, generator, return_components=True)
    y = mixture.labels[comp]
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    t = torch.as_tensor(_time(t), dtype=torch.float64)
    return process.alpha(t) * x0 + process.sigma(t) * eps, y


@torch.no_grad()
def score_error(model: Any, mixture: GaussianMixture, process: Process, t: Any, n: int, generator: torch.Generator) -> RelativeError:
    """Relative L2 error of the model's score against grad log p_t under x ~ p_t."""
    n = check_int(n, "n", minimum=2)
    law = process.marginal(mixture, _time(t))
    x = law.sample(n, generator)
    learned = predict(model, process, x, torch.full((n,), float(t), dtype=torch.float64), "score")
    return relative_error(learned, law.score(x))


def _class_index(mixture: GaussianMixture, y: torch.Tensor) -> torch.Tensor:
    """Position of each label in ``mixture.classes`` (the index a network's output or embedding uses)."""
    return torch.searchsorted(mixture.classes, y)


def classifier_gradient_error(classifier: Any, mixture: GaussianMixture, process: Process, t: Any, n: int,
                              generator: torch.Generator) -> RelativeError:
    """Relative L2 error of grad_x log p_theta(y | x_t) against the exact grad log p(y | x_t), (x_t, y) from the joint law.

    ``classifier(x, t)`` returns logits over ``mixture.classes`` in their order.
    """
    x, y = joint_sample(mixture, process, t, n, generator)
    idx = _class_index(mixture, y)
    law = process.marginal(mixture, _time(t))
    with torch.enable_grad():
        xg = x.clone().requires_grad_(True)
        logp = torch.log_softmax(classifier(xg, float(t)), dim=-1)
        (grad,) = torch.autograd.grad(logp.gather(1, idx[:, None]).sum(), xg)
    return relative_error(grad.detach(), law.log_class_posterior_grad(x, y))


def _guided(model: Any, process: Process, x: torch.Tensor, t: float, y: torch.Tensor, w: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(eps~, eps(z, c), eps(z)) of a class-conditional model (``model(x, t, y)``; no y = the null label)."""
    tb = torch.full((x.shape[0],), t, dtype=torch.float64)
    cond = predict(model, process, x, tb, "eps", y=y)
    uncond = predict(model, process, x, tb, "eps")
    return (1.0 + w) * cond - w * uncond, cond, uncond


@torch.no_grad()
def guided_eps_error(model: Any, mixture: GaussianMixture, process: Process, t: Any, w: float, n: int,
                     generator: torch.Generator) -> RelativeError:
    """Relative L2 error of eps~ = (1 + w) eps(z, c) - w eps(z) against the exact eps~ (Ho & Salimans 2021, Eq. 6).

    (z, c) is drawn from the joint law of (x_t, y); the model takes class indices (positions in ``mixture.classes``).
    The exact eps(z, c) = -sigma grad log p_t(z | c) and eps(z) = -sigma grad log p_t(z).
    """
    w = check_float(w, "w", low=0.0)
    x, y = joint_sample(mixture, process, t, n, generator)
    t = _time(t)
    law = process.marginal(mixture, t)
    sig = float(process.sigma(torch.as_tensor(t, dtype=torch.float64)))
    exact = -sig * ((1.0 + w) * law.score(x, y) - w * law.score(x))
    learned, _, _ = _guided(model, process, x, t, _class_index(mixture, y), w)
    return relative_error(learned, exact)


@torch.no_grad()
def implicit_classifier_error(model: Any, mixture: GaussianMixture, process: Process, t: Any, n: int,
                              generator: torch.Generator) -> RelativeError:
    """Relative L2 error of the implicit classifier gradient -(eps(z, c) - eps(z))/sigma against grad log p(c | z)."""
    x, y = joint_sample(mixture, process, t, n, generator)
    t = _time(t)
    law = process.marginal(mixture, t)
    sig = float(process.sigma(torch.as_tensor(t, dtype=torch.float64)))
    _, cond, uncond = _guided(model, process, x, t, _class_index(mixture, y), 0.0)
    return relative_error(-(cond - uncond) / sig, law.log_class_posterior_grad(x, y))


def optimal_log_variance(mixture: GaussianMixture, schedule: Schedule, step: int, x: torch.Tensor) -> torch.Tensor:
    """log of beta_tilde_i + c1_i^2 Var(x_0 | x_i) per coordinate: the best diagonal variance of p(x_{i-1} | x_i)
    for the bound term L_{i-1} when the mean is exact (step i >= 2)."""
    step = check_int(step, "step", minimum=2, maximum=schedule.num_steps)
    law = mixture.noised(schedule.alpha[step], schedule.sigma[step])
    var = law.posterior_cov(x).diagonal(dim1=-2, dim2=-1)
    return torch.log(schedule.beta_tilde[step - 1] + schedule.posterior_mean_coef1[step - 1] ** 2 * var)


@torch.no_grad()
def variance_error(model: Any, mixture: GaussianMixture, schedule: Schedule, step: int, n: int,
                   generator: torch.Generator) -> RelativeError:
    """Root mean square of log Sigma_theta(x_i) - log Sigma*(x_i) (Nichol & Dhariwal 2021, Eq. 15, against the optimal variance), x_i ~ p at
    step i of ``schedule`` (which must start at the data): about the relative error of the variance."""
    check_data_schedule(schedule)
    step = check_int(step, "step", minimum=2, maximum=schedule.num_steps)
    n = check_int(n, "n", minimum=2)
    law = mixture.noised(schedule.alpha[step], schedule.sigma[step])
    x = law.sample(n, generator)
    _, v_raw = split_output(model, x, torch.full((n,), float(schedule.t[step]), dtype=torch.float64))
    learned = learned_range(v_raw, schedule, step)
    return rms_error(learned, optimal_log_variance(mixture, schedule, step, x))
