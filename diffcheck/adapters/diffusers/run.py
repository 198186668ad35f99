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
from ...variance import ExactLearnedVariance, learned_v_raw
from .schedulers import SchedulerConfig, build, set_timesteps
from .times import karras_ve_levels, kind, process_for, sigma_time, timestep_time, walk_grid

__all__ = ["Call", "Run", "learned_range_output", "sample"]


# -- routing the scheduler's noise ----------------------------------------------------------------
class _RoutedTorch:
    """``torch`` with ``randn`` and ``randn_like`` routed to a draw function; every other name is torch's own.

    diffusers before 0.12 drew its noise with ``torch.randn`` in the scheduler's module (and
    ``randn_like`` of its mixin); such a module gets this in place of ``torch`` during a run.
    """

    def __init__(self, draw: Callable[..., torch.Tensor]) -> None:
        self._draw = draw

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    def randn(self, *size: Any, generator: Any = None, dtype: Any = None, device: Any = None, layout: Any = None,
              **kw: Any) -> torch.Tensor:
        shape = size[0] if len(size) == 1 and not isinstance(size[0], int) else size
        return self._draw(shape, dtype=dtype, device=device)

    def randn_like(self, like: torch.Tensor, *, dtype: Any = None, **kw: Any) -> torch.Tensor:
        return self._draw(like.shape, dtype=dtype or like.dtype, device=like.device)


@contextlib.contextmanager
def _routed_noise(scheduler, noise: Callable[[torch.Tensor], torch.Tensor] | None, counter: list[int]) -> Iterator[None]:
    """Route the noise the scheduler draws to ``noise`` for the duration.

    diffusers' ``randn_tensor`` is replaced in the modules of the scheduler's class and its
    bases; a module without it (diffusers < 0.12) gets ``_RoutedTorch`` as its ``torch``.
    """

    def routed(shape, generator=None, device=None, dtype=None, layout=None):
        if noise is None:
            raise ValueError(f"noise is required: {type(scheduler).__name__} draws noise in its step")
        counter[0] += 1
        z = noise(torch.empty(tuple(shape), dtype=torch.float64))  # drawn in float64, then cast as asked
        return z.to(dtype=dtype or torch.float64, device=device)

    names = dict.fromkeys(c.__module__ for c in type(scheduler).__mro__ if c.__module__.startswith("diffusers"))
    patched: list[tuple[Any, str, Any]] = []
    for name in names:
        module = sys.modules[name]
        if getattr(module, "randn_tensor", None) is not None:
            patched.append((module, "randn_tensor", module.randn_tensor))
            module.randn_tensor = routed
        elif getattr(module, "torch", None) is torch:
            patched.append((module, "torch", torch))
            module.torch = _RoutedTorch(lambda shape, dtype=None, device=None: routed(shape, dtype=dtype, device=device))
    try:
        yield
    finally:
        for module, attr, original in patched:
            setattr(module, attr, original)


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


def learned_range_output(mixture: GaussianMixture, process: Any, x: torch.Tensor, t: float, s: float) -> torch.Tensor:
    """Improved DDPM's variance output v_raw that makes a DDPM step t -> s take the exact reverse variance.

    The exact Var(x_s | x_t) (``diffcheck.variance.ExactLearnedVariance`` on the one-step grid
    t -> s) mapped to v_raw by the inverse of Nichol & Dhariwal 2021, Eq. 15
    (``learned_v_raw``), with the step's beta and beta_tilde, beta_tilde floored at 1e-20 where it
    is 0 (a step into the data) as diffusers floors it, so that diffusers' own interpolation gives
    back the exact variance also on that step.
    """
    exact = ExactLearnedVariance(mixture, process, torch.tensor([t, s], dtype=torch.float64))
    var = exact.reverse_variance(x, t)
    beta_tilde = max(float(exact.beta_tilde[0]), 1e-20)
    return learned_v_raw(var, float(exact.log_beta[0]), math.log(beta_tilde))


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
    scheduler: Any = None,
) -> Run:
    """Run the scheduler's loop from ``x`` (in the scheduler's sample space) with the exact model of ``mixture``.

    ``noise`` (a torch.Generator, a list of them, or ``noise(like) -> tensor``) receives
    every draw the scheduler makes. ``index_shift`` moves every model time by that many
    training indices (a deliberately mis-mapped time; 0 is the exact map). ``time_from``
    "sigma" evaluates a scheduler that walks sigmas but passes training indices
    (DPM-Solver) at its own sigma instead of at the index it passes, as a model
    conditioned on sigma would be. ``scheduler``: a scheduler already built from ``config``
    (e.g. after other calls on it) instead of a fresh one. Returns the scheduler's final
    sample (score-SDE-VE: its last noise-free mean, as its pipeline does).
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.is_floating_point():
        raise ValueError("x must be a floating tensor of shape (B, D)")
    index_shift = check_int(index_shift, "index_shift")
    time_from = check_choice(time_from, "time_from", ("timestep", "sigma"))
    sched = build(config) if scheduler is None else scheduler
    process = process_for(sched)
    set_timesteps(sched, steps)
    learned = config.kwargs.get("variance_type") in ("learned", "learned_range")
    if learned and config.kwargs.get("variance_type") != "learned_range":
        raise ValueError("variance_type: only 'learned_range' is supported (Improved DDPM's interpolation)")
    noise_fn = make_noise(noise) if noise is not None else None
    draws = [0]
    calls: list[Call] = []
    how = kind(sched)
    if how in ("ve", "karras_ve") and index_shift:
        raise ValueError(f"index_shift applies to DDPM tables; {type(sched).__name__} has none")
    last: list[torch.Tensor] = []
    with _routed_noise(sched, noise_fn, draws), torch.no_grad():
        if how == "ve":
            out = _score_sde_ve_loop(sched, process, ExactModel(mixture, process, "score"), x, calls, last, progress)
        elif how == "karras_ve":
            out = _karras_ve_loop(sched, process, mixture, x, calls, last, progress)
        else:
            model = ExactModel(mixture, process, config.prediction)
            out = _loop(sched, process, model, config, x, calls, last, how, index_shift, learned, time_from, progress)
    return Run(out, calls, draws[0], last[0] if last else None)


def _sigma_index(sched, tau, i: int) -> int:
    """The index into ``sched.sigmas`` of the step at timestep ``tau`` (the i-th call): ``step_index`` where diffusers
    keeps one (>= 0.22), else its ``index_for_timestep``, else i."""
    idx = getattr(sched, "step_index", None)
    if idx is not None:
        return int(idx)
    if hasattr(sched, "index_for_timestep"):
        return int(sched.index_for_timestep(tau))
    return i


def _previous_time(sched, process, tau, i: int, grid: torch.Tensor | None, index_shift: int) -> float:
    """The time a DDPM step from timestep ``tau`` lands on: ``previous_timestep`` where diffusers has it (>= 0.22),
    else the next time of the walk (the scheduler's own steps are then checked by the report's agreement)."""
    if hasattr(sched, "previous_timestep"):
        prev = sched.previous_timestep(tau)
        return 0.0 if int(prev) < 0 else timestep_time(process, prev, index_shift)
    return float(grid[i + 1])


def _loop(sched, process, model, config, x, calls, last, how, index_shift, learned, time_from, progress) -> torch.Tensor:
    step_kwargs = config.step_kwargs
    T = process.T
    walks_sigmas = hasattr(sched, "sigmas") and len(sched.sigmas) == len(sched.timesteps) + 1
    if time_from == "sigma" and not (how == "sigma" or walks_sigmas):
        raise ValueError(f"time_from='sigma' needs a scheduler that walks sigmas; {type(sched).__name__} does not")
    scale = getattr(sched, "scale_model_input", None)  # absent before diffusers 0.4: the input is not scaled
    grid = walk_grid(sched, process) if learned and not hasattr(sched, "previous_timestep") else None
    for i, tau in enumerate(tqdm(sched.timesteps, desc=config.label, file=sys.stderr, disable=not progress, leave=False)):
        x_in = scale(x, tau) if scale is not None else x
        if how == "sigma":
            sigma = float(sched.sigmas[_sigma_index(sched, tau, i)])
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
            s = _previous_time(sched, process, tau, i, grid, index_shift)
            out = torch.cat([out, learned_range_output(model.mixture, process, x_in, t, s)], dim=1)
        x = sched.step(out, tau, x, **step_kwargs).prev_sample
        _check_finite(x, config.label, len(calls), tau)
    return x


def _check_finite(x: torch.Tensor, name: str, call: int, timestep: Any) -> None:
    if not bool(torch.isfinite(x).all()):
        raise SamplingError(f"{name}: non-finite sample after model evaluation {call} (timestep {float(timestep):g})")


def _image(v: torch.Tensor) -> torch.Tensor:
    """(B, D) as (B, D, 1, 1): releases before 0.4 index per-sample sigmas with [:, None, None, None] (images only)."""
    return v.reshape(v.shape[0], -1, 1, 1)


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
            x = sched.step_correct(_image(model(x, t)), _image(x)).prev_sample.reshape(x.shape)
        calls.append(Call(float(sched.timesteps[i]), sigma, t, state))
        last[:] = [x]
        out = sched.step_pred(_image(model(x, t)), sched.timesteps[i], _image(x))
        x, mean = out.prev_sample.reshape(x.shape), out.prev_sample_mean.reshape(x.shape)
        _check_finite(x, "ScoreSdeVe", len(calls), sched.timesteps[i])
    return mean


def _karras_ve_loop(sched, process, mixture: GaussianMixture, x, calls, last, progress) -> torch.Tensor:
    """The stochastic Karras-VE pipeline (Karras et al. 2022, Algorithm 2): churn to sigma_hat, an Euler step, Heun's
    correction unless the next level is 0; the model output is (D(x, sigma) - x) / sigma with the exact denoiser D."""
    levels = [float(v) for v in karras_ve_levels(sched)]
    n = len(levels) - 1

    def out(xx: torch.Tensor, s: float) -> torch.Tensor:
        return (mixture.noised(1.0, s).posterior_mean(xx) - xx) / s

    for i in tqdm(range(n), desc="KarrasVe", file=sys.stderr, disable=not progress, leave=False):
        sigma, sigma_prev = levels[i], levels[i + 1]
        x_hat, sigma_hat = sched.add_noise_to_input(x, sigma)
        sigma_hat = float(sigma_hat)
        calls.append(Call(float(sched.timesteps[i]), sigma_hat, sigma_time(process, sigma_hat), sigma_time(process, sigma)))
        last[:] = [x]
        step = sched.step(out(x_hat, sigma_hat), sigma_hat, sigma_prev, x_hat)
        if sigma_prev != 0.0:
            calls.append(Call(float(sched.timesteps[i]), sigma_prev, sigma_time(process, sigma_prev), sigma_time(process, sigma_prev)))
            step = sched.step_correct(out(step.prev_sample, sigma_prev), sigma_hat, sigma_prev, x_hat, step.prev_sample,
                                      step.derivative)
        x = step.prev_sample
        _check_finite(x, "KarrasVe", len(calls), sched.timesteps[i])
    return x
