"""Running a diffusers scheduler's own loop with the exact model where a pipeline calls its network.

``sample`` calls ``set_timesteps``, ``scale_model_input`` and ``step`` as a pipeline does,
and records each model evaluation (``Call``). Noise the scheduler draws through diffusers'
``randn_tensor`` is routed to a noise function that the caller passes, so that outputs are
affine in (x_T, noise) on Gaussian targets and their laws are exact
(``diffcheck.testing.gaussian_law.affine_law``).
"""

from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from tqdm import tqdm

from toy.mixture import GaussianMixture
from toy.validate import check_choice, check_int

from ...exact import ExactModel
from ...samplers.base import SamplingError, make_noise
from ...samplers.loop import coefficients
from .schedulers import SchedulerConfig, build, set_timesteps
from .times import kind, process_for, sigma_time, timestep_time

__all__ = ["Call", "Run", "learned_range_output", "sample"]


# -- routing the scheduler's noise ----------------------------------------------------------------
@contextlib.contextmanager
def _routed_noise(scheduler, noise: Callable[[torch.Tensor], torch.Tensor] | None, counter: list[int]) -> Iterator[None]:
    """Replace diffusers' ``randn_tensor`` in the scheduler's module by ``noise`` for the duration."""
    module = sys.modules[type(scheduler).__module__]
    original = getattr(module, "randn_tensor", None)
    if original is None:
        yield
        return

    def routed(shape, generator=None, device=None, dtype=None, layout=None):
        if noise is None:
            raise ValueError(f"noise is required: {type(scheduler).__name__} draws noise in its step")
        counter[0] += 1
        z = noise(torch.empty(tuple(shape), dtype=torch.float64))  # drawn in float64, then cast as asked
        return z.to(dtype=dtype or torch.float64, device=device)

    module.randn_tensor = routed
    try:
        yield
    finally:
        module.randn_tensor = original


# -- the sampling loop ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    """One model evaluation: the timestep passed, the sigma scaled for (if any), the time the model was evaluated at,
    and the time of the state's own noise level (equal to ``t`` unless the map was shifted; for score-SDE-VE the
    level of its predictor's ladder)."""

    timestep: float
    sigma: float | None
    t: float
    state_time: float


@dataclass
class Run:
    """The output of one scheduler run, its model evaluations, its noise draws, and the state its last step started from."""

    samples: torch.Tensor
    calls: list[Call] = field(default_factory=list)
    draws: int = 0
    before_last: torch.Tensor | None = None


def learned_range_output(model: ExactModel, x: torch.Tensor, t: float, s: float) -> torch.Tensor:
    """Improved DDPM's variance output v_raw in [-1, 1] that makes a step t -> s use the exact reverse variance.

    The exact Var(x_s | x_t) = beta_tilde + c^2 Var(x_0 | x_t) (c the posterior mean's
    x_0 coefficient); per coordinate its diagonal is written as
    exp(v log beta + (1 - v) log beta_tilde) with v = (v_raw + 1) / 2 (Nichol & Dhariwal
    2021, Eq. 15), beta_tilde floored at 1e-20 where it is 0, as diffusers floors it.
    """
    c = coefficients(model.process, torch.tensor(t, dtype=torch.float64), torch.tensor(s, dtype=torch.float64))
    beta, beta_tilde = c.beta, max(c.beta_tilde, 1e-20)
    cov = model.posterior_cov(x, t)
    var = beta_tilde + c.posterior_mean_coef_x0**2 * torch.diagonal(cov, dim1=-2, dim2=-1).reshape(x.shape)
    v = (var.log() - math.log(beta_tilde)) / (math.log(beta) - math.log(beta_tilde))
    return 2.0 * v - 1.0


def sample(
    config: SchedulerConfig,
    mixture: GaussianMixture,
    x: torch.Tensor,
    steps: int,
    *,
    noise: Any = None,
    index_shift: int = 0,
    time_from: str = "timestep",
    progress: bool = False,
) -> Run:
    """Run the scheduler's loop from ``x`` (in the scheduler's sample space) with the exact model of ``mixture``.

    ``noise`` (a torch.Generator, a list of them, or ``noise(like) -> tensor``) receives
    every draw the scheduler makes. ``index_shift`` moves every model time by that many
    training indices (a deliberately mis-mapped time; 0 is the exact map). ``time_from``
    "sigma" evaluates a scheduler that walks sigmas but passes training indices
    (DPM-Solver) at its own sigma instead of at the index it passes, as a model
    conditioned on sigma would be. Returns the scheduler's final sample (score-SDE-VE: its
    last noise-free mean, as its pipeline does).
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.is_floating_point():
        raise ValueError("x must be a floating tensor of shape (B, D)")
    index_shift = check_int(index_shift, "index_shift")
    time_from = check_choice(time_from, "time_from", ("timestep", "sigma"))
    sched = build(config)
    process = process_for(sched)
    set_timesteps(sched, steps)
    model = ExactModel(mixture, process, config.prediction)
    learned = config.kwargs.get("variance_type") in ("learned", "learned_range")
    if learned and config.kwargs.get("variance_type") != "learned_range":
        raise ValueError("variance_type: only 'learned_range' is supported (Improved DDPM's interpolation)")
    noise_fn = make_noise(noise) if noise is not None else None
    draws = [0]
    calls: list[Call] = []
    how = kind(sched)
    if how == "ve" and index_shift:
        raise ValueError("index_shift applies to DDPM tables; the score-SDE-VE scheduler has none")
    last: list[torch.Tensor] = []
    with _routed_noise(sched, noise_fn, draws), torch.no_grad():
        if how == "ve":
            out = _score_sde_ve_loop(sched, process, model, x, calls, last, progress)
        else:
            out = _loop(sched, process, model, config, x, calls, last, how, index_shift, learned, time_from, progress)
    return Run(out, calls, draws[0], last[0] if last else None)


def _loop(sched, process, model, config, x, calls, last, how, index_shift, learned, time_from, progress) -> torch.Tensor:
    step_kwargs = config.step_kwargs
    T = process.T
    walks_sigmas = hasattr(sched, "sigmas") and len(sched.sigmas) == len(sched.timesteps) + 1
    if time_from == "sigma" and not (how == "sigma" or walks_sigmas):
        raise ValueError(f"time_from='sigma' needs a scheduler that walks sigmas; {type(sched).__name__} does not")
    for i, tau in enumerate(tqdm(sched.timesteps, desc=config.label, file=sys.stderr, disable=not progress, leave=False)):
        x_in = sched.scale_model_input(x, tau)
        if how == "sigma":
            sigma = float(sched.sigmas[sched.step_index])
            exact = sigma_time(process, sigma)
            t = min(max(exact + index_shift / T, 0.0), 1.0)
        elif walks_sigmas:  # DPM-Solver: the state sits at its sigma; the model sees the index
            sigma = float(sched.sigmas[i])
            exact = sigma_time(process, sigma)
            t = min(max(exact + index_shift / T, 0.0), 1.0) if time_from == "sigma" else timestep_time(process, tau, index_shift)
        else:
            sigma = None
            exact = timestep_time(process, tau)
            t = timestep_time(process, tau, index_shift)
        calls.append(Call(float(tau), sigma, t, exact))
        last[:] = [x]
        out = model(x_in, t)
        if learned:
            prev = sched.previous_timestep(tau)
            s = 0.0 if int(prev) < 0 else timestep_time(process, prev, index_shift)
            out = torch.cat([out, learned_range_output(model, x_in, t, s)], dim=1)
        x = sched.step(out, tau, x, **step_kwargs).prev_sample
        _check_finite(x, config.label, len(calls), tau)
    return x


def _check_finite(x: torch.Tensor, name: str, call: int, timestep: Any) -> None:
    if not bool(torch.isfinite(x).all()):
        raise SamplingError(f"{name}: non-finite sample after model evaluation {call} (timestep {float(timestep):g})")


def _score_sde_ve_loop(sched, process, model, x, calls, last, progress) -> torch.Tensor:
    """The score-SDE-VE pipeline: at each time ``correct_steps`` Langevin corrections, then one predictor step."""
    mean = x
    n = len(sched.timesteps)
    for i in tqdm(range(n), desc="ScoreSdeVe", file=sys.stderr, disable=not progress, leave=False):
        sigma = float(sched.sigmas[i])
        t = sigma_time(process, sigma)
        level = int((sched.timesteps[i] * (n - 1)).long())  # the ladder index its predictor uses
        state = sigma_time(process, float(sched.discrete_sigmas[level]))
        for _ in range(int(sched.config.correct_steps)):
            calls.append(Call(float(sched.timesteps[i]), sigma, t, state))
            x = sched.step_correct(model(x, t), x).prev_sample
        calls.append(Call(float(sched.timesteps[i]), sigma, t, state))
        last[:] = [x]
        out = sched.step_pred(model(x, t), sched.timesteps[i], x)
        x, mean = out.prev_sample, out.prev_sample_mean
        _check_finite(x, "ScoreSdeVe", len(calls), sched.timesteps[i])
    return mean
