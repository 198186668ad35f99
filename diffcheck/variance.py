"""Reverse-step variances: DDPM's fixed choices, Improved DDPM's learned range, and the learned-variance model.

A *learned-variance model* is a model (its ``prediction`` names what its mean output
predicts) that also has ``forward_full(x, t)``, returning the mean output and the
variance output concatenated along dimension 1: Improved DDPM's layout of 2C channels
[eps, v_raw] for images, and 2D coordinates for points of dimension D.
``NetModel(net, prediction, noise_input, out_channels=C)`` is one; ``WithVariance``
builds one from a model and a function, and ``ExactLearnedVariance`` is the exact model
with the optimal variance output. The variance output v_raw is mapped to
v = (v_raw + 1)/2 and Sigma = exp(v log beta + (1 - v) log beta_tilde), per coordinate, in
log space, with no clamp on v (Nichol & Dhariwal 2021, Eq. 15): ``learned_log_variance``,
the one mapping that the loss (``learned_range``) and the ancestral samplers
(``variance="learned"``) both call.

A model sees t alone, so beta and beta_tilde are bound by the step being taken: in the
loss, those of step i of a ``Schedule`` (1-based; step i goes from t_{i-1} to t_i); in a
sampler, those of its step t -> s (``diffcheck.process.steps.Coefficients``), so that on
a respaced grid they are the respaced ones, as Improved DDPM's respacing does
(Nichol & Dhariwal 2021, App. B). For a VP process the two are the same numbers. beta_tilde
of a step into the data is 0; as in the official code its log is then replaced by that of
the step before ("clipped") wherever a finite log-variance is needed (a sampler draws no
noise on that step).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from toy.mixture import GaussianMixture
from toy.validate import as_index_tensor, check_choice

from .exact import ExactModel
from .param import PREDICTIONS, convert
from .process.base import Process
from .process.discrete import Schedule
from .process.grids import check_grid
from .process.steps import coefficient_table
from .tensor import per_sample

__all__ = [
    "learned_log_variance",
    "learned_v_raw",
    "split_output",
    "predict_with_variance",
    "WithVariance",
    "ExactLearnedVariance",
    "steps_tensor",
    "log_beta",
    "clipped_log_beta_tilde",
    "fixed_log_variance",
    "learned_range",
    "optimal_v",
]


def learned_log_variance(v_raw: torch.Tensor, log_beta: Any, log_beta_tilde: Any) -> torch.Tensor:
    """log Sigma = v log beta + (1 - v) log beta_tilde with v = (v_raw + 1)/2, per coordinate (Nichol & Dhariwal 2021, Eq. 15).

    ``log_beta`` and ``log_beta_tilde`` are the step's, as floats or tensors broadcasting against ``v_raw``.
    """
    frac = 0.5 * (v_raw + 1.0)
    return frac * log_beta + (1.0 - frac) * log_beta_tilde


def learned_v_raw(variance: torch.Tensor, log_beta: Any, log_beta_tilde: Any) -> torch.Tensor:
    """The v_raw whose learned range is ``variance``: the inverse of ``learned_log_variance`` (Nichol & Dhariwal 2021, Eq. 15)."""
    return 2.0 * (torch.log(variance) - log_beta_tilde) / (log_beta - log_beta_tilde) - 1.0


def split_output(model: Any, x: torch.Tensor, t: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The (mean output, variance output) of a learned-variance model at (x, t), each of x's shape (one evaluation)."""
    full = getattr(model, "forward_full", None)
    if not callable(full):
        raise TypeError("model must be a learned-variance model with forward_full(x, t) (see diffcheck.variance)")
    out = full(x, t, **kwargs)
    if out.ndim != x.ndim or out.shape[0] != x.shape[0] or out.shape[1] != 2 * x.shape[1] or out.shape[2:] != x.shape[2:]:
        raise ValueError(
            f"forward_full must return twice x's size along dimension 1, shape "
            f"({x.shape[0]}, {2 * x.shape[1]}, ...), got {tuple(out.shape)} for x of shape {tuple(x.shape)}"
        )
    mean, var = out.split(x.shape[1], dim=1)
    return mean, var


def predict_with_variance(model: Any, process: Process, x: torch.Tensor, t: Any, want: str,
                          **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A learned-variance model's prediction converted to ``want`` and its variance output v_raw, from one evaluation."""
    check_choice(want, "want", PREDICTIONS)
    pred = getattr(model, "prediction", None)
    if pred not in PREDICTIONS:
        raise TypeError(f"model must have a 'prediction' attribute in {PREDICTIONS}, got {pred!r}")
    out, v_raw = split_output(model, x, t, **kwargs)
    if pred != want:
        t = torch.as_tensor(t, dtype=torch.float64) if not isinstance(t, torch.Tensor) else t
        out = convert(out, x, process.alpha(t), process.sigma(t), pred, want)
    return out, v_raw


class WithVariance:
    """A learned-variance model from a model and ``v_raw_fn(x, t)`` (the raw variance output, shape of x)."""

    def __init__(self, model: Any, v_raw_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        pred = getattr(model, "prediction", None)
        if pred not in PREDICTIONS or not callable(model):
            raise TypeError(f"model must be callable with a 'prediction' in {PREDICTIONS}")
        if not callable(v_raw_fn):
            raise TypeError("v_raw_fn must be callable")
        self.model = model
        self.v_raw_fn = v_raw_fn
        self.prediction = pred

    def __call__(self, x: torch.Tensor, t: Any, **kwargs: Any) -> torch.Tensor:
        return self.model(x, t, **kwargs)

    def forward_full(self, x: torch.Tensor, t: Any, **kwargs: Any) -> torch.Tensor:
        """[mean output, variance output] along dimension 1 (``kwargs``, e.g. labels, go to the model)."""
        v = self.v_raw_fn(x, t)
        if v.shape != x.shape:
            raise ValueError(f"v_raw_fn must return the shape of x {tuple(x.shape)}, got {tuple(v.shape)}")
        return torch.cat([self.model(x, t, **kwargs), v], dim=1)

    def __repr__(self) -> str:
        return f"WithVariance({self.model!r})"


def steps_tensor(step: Any, schedule: Schedule, x: torch.Tensor) -> torch.Tensor:
    """A step (int or (B,) integers in 1..N) as a (B,) int64 tensor on x's device."""
    s = as_index_tensor(step, "step", device=x.device)
    if s.ndim == 0:
        s = s.expand(x.shape[0])
    if s.shape != (x.shape[0],):
        raise ValueError(f"step must be an integer or have shape ({x.shape[0]},), got {tuple(s.shape)}")
    n = schedule.num_steps
    if bool((s < 1).any()) or bool((s > n).any()):
        raise ValueError(f"step must lie in [1, {n}], got values in [{int(s.min())}, {int(s.max())}]")
    return s


def log_beta(schedule: Schedule) -> torch.Tensor:
    """log beta_i of each step (N,), from the kept times."""
    return torch.log(schedule.beta)


def clipped_log_beta_tilde(schedule: Schedule) -> torch.Tensor:
    """log beta_tilde_i (N,), with step 1's entry replaced by step 2's where beta_tilde_1 = 0 (official code).

    With a single step there is no step 2 and log beta_1 is used.
    """
    lbt = torch.log(schedule.beta_tilde)
    if schedule.beta_tilde[0] == 0:
        lbt = lbt.clone()
        lbt[0] = lbt[1] if schedule.num_steps > 1 else torch.log(schedule.beta[0])
    return lbt


def fixed_log_variance(schedule: Schedule, kind: str = "small") -> torch.Tensor:
    """DDPM's fixed reverse log-variances (N,): ``small`` = beta_tilde, ``large`` = beta (Ho et al. 2020, Sec. 3.2).

    Step 1 uses the clipped beta_tilde in both, as the official code does, so that the
    decoder is not needlessly wide.
    """
    kind = check_choice(kind, "kind", ("small", "large"))
    small = clipped_log_beta_tilde(schedule)
    if kind == "small":
        return small
    large = log_beta(schedule).clone()
    large[0] = small[0]
    return large


def learned_range(v_raw: torch.Tensor, schedule: Schedule, step: Any) -> torch.Tensor:
    """log Sigma = v log beta + (1 - v) log beta_tilde, v = (v_raw + 1)/2 (Nichol & Dhariwal 2021, Eq. 15)."""
    if not isinstance(v_raw, torch.Tensor) or not v_raw.is_floating_point() or v_raw.ndim < 1:
        raise TypeError("v_raw must be a floating tensor of shape (B, ...)")
    s = steps_tensor(step, schedule, v_raw) - 1
    shape = (-1,) + (1,) * (v_raw.ndim - 1)
    hi = log_beta(schedule).to(v_raw)[s].reshape(shape)
    lo = clipped_log_beta_tilde(schedule).to(v_raw)[s].reshape(shape)
    return learned_log_variance(v_raw, hi, lo)


def optimal_v(variance: Any, schedule: Schedule, step: Any) -> torch.Tensor:
    """The interpolation v with exp(v log beta + (1 - v) log beta_tilde) = ``variance`` at Schedule steps (the inverse of
    Nichol & Dhariwal 2021, Eq. 15)."""
    var = torch.as_tensor(variance, dtype=torch.float64)
    if bool((var <= 0).any()) or not bool(torch.isfinite(var).all()):
        raise ValueError("variance must be positive and finite")
    idx = as_index_tensor(step, "step")
    n = schedule.num_steps
    if bool((idx < 1).any()) or bool((idx > n).any()):
        raise ValueError(f"step must lie in [1, {n}]")
    hi = log_beta(schedule)[idx - 1]
    lo = clipped_log_beta_tilde(schedule)[idx - 1]
    while hi.ndim < var.ndim:
        hi, lo = hi[..., None], lo[..., None]
    return 0.5 * (learned_v_raw(var, hi, lo) + 1.0)


class ExactLearnedVariance:
    """The exact model with Improved DDPM's variance output for the steps of ``grid``: at a grid time t its v_raw is the
    one whose learned range (Nichol & Dhariwal 2021, Eq. 15) is the diagonal of the exact Var(x_s | x_t), s the next
    time of the grid.

    Var(x_s | x_t) = beta_tilde I + c^2 Cov(x_0 | x_t) (the posterior q(x_s | x_t, x_0) averaged over x_0 | x_t), with
    beta, beta_tilde and c = ``posterior_mean_coef_x0`` the step's ``Coefficients``: the numbers the ancestral
    sampler maps v with. The optimal variance depends on the step t -> s while a model sees t alone, so this model is
    bound to the sampler's ``grid`` (decreasing) and answers only at its times (all but the last). At a step into
    sigma_s = 0 (beta_tilde = 0, where the sampler draws no noise) beta_tilde is the step before's, as the loss
    clips it. For a Gaussian target with diagonal covariance the reverse kernel is Gaussian with exactly this
    variance, so ancestral sampling with it is exact at any number of steps.
    """

    def __init__(self, mixture: GaussianMixture, process: Process, grid: Any, prediction: str = "eps") -> None:
        self.exact = ExactModel(mixture, process, prediction)
        self.grid = check_grid(grid).to(torch.float64)
        table = coefficient_table(process, self.grid)
        beta = torch.tensor([c.beta for c in table], dtype=torch.float64)
        beta_tilde = torch.tensor([c.beta_tilde for c in table], dtype=torch.float64)
        self.beta_tilde = beta_tilde
        self.coef_x0 = torch.tensor([c.posterior_mean_coef_x0 for c in table], dtype=torch.float64)
        self.log_beta = torch.log(beta)
        log_bt = torch.log(beta_tilde)
        for i in range(len(table)):
            if beta_tilde[i] == 0:  # a step into the data: the step before's, or log beta on a one-step grid
                log_bt[i] = log_bt[i - 1] if i > 0 else self.log_beta[i]
        self.log_beta_tilde = log_bt

    @property
    def prediction(self) -> str:
        """What ``__call__`` predicts (the exact model's)."""
        return self.exact.prediction

    @property
    def mixture(self) -> GaussianMixture:
        return self.exact.mixture

    @property
    def process(self) -> Process:
        return self.exact.process

    def __repr__(self) -> str:
        return f"ExactLearnedVariance({self.exact!r}, {self.grid.numel() - 1} steps)"

    def __call__(self, x: torch.Tensor, t: Any, y: Any = None) -> torch.Tensor:
        return self.exact(x, t, y)

    def step_index(self, t: Any, x: torch.Tensor) -> torch.Tensor:
        """The (B,) 0-based index of the step that starts at each time t (a grid time, not the last)."""
        tt = torch.as_tensor(t, dtype=torch.float64).reshape(-1).cpu()
        if tt.numel() != 1 and tt.shape != (x.shape[0],):
            raise ValueError(f"t must be a scalar or have shape ({x.shape[0]},), got {tuple(torch.as_tensor(t).shape)}")
        times, inverse = torch.unique(tt, return_inverse=True)
        dist, idx = (times[:, None] - self.grid[None, :-1]).abs().min(dim=1)
        if bool((dist > 1e-12).any()):
            bad = float(times[int(dist.argmax())])
            raise ValueError(f"t must be one of the times of the grid this model is bound to (all but the last); got {bad:.12g}")
        return idx[inverse].expand(x.shape[0])

    def _reverse_variance(self, x: torch.Tensor, t: Any, y: Any, i: torch.Tensor) -> torch.Tensor:
        cov = torch.diagonal(self.exact.posterior_cov(x, t, y), dim1=-2, dim2=-1).reshape(x.shape)
        c = per_sample(self.coef_x0[i].to(x.device), x)
        return per_sample(self.beta_tilde[i].to(x.device), x) + c * c * cov

    def reverse_variance(self, x: torch.Tensor, t: Any, y: Any = None) -> torch.Tensor:
        """The diagonal of Var(x_s | x_t = x) = beta_tilde I + c^2 Cov(x_0 | x_t), shaped like x."""
        return self._reverse_variance(x, t, y, self.step_index(t, x))

    def forward_full(self, x: torch.Tensor, t: Any, y: Any = None) -> torch.Tensor:
        """[exact prediction, optimal v_raw] along dimension 1."""
        i = self.step_index(t, x)
        shape = (-1,) + (1,) * (x.ndim - 1)
        v_raw = learned_v_raw(self._reverse_variance(x, t, y, i), self.log_beta[i].to(x).reshape(shape),
                              self.log_beta_tilde[i].to(x).reshape(shape))
        return torch.cat([self.exact(x, t, y), v_raw], dim=1)
