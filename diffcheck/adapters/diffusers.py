"""diffusers' schedulers driven by the exact model (optional dependency: ``pip install 'diffcheck[diffusers]'``).

A diffusers scheduler holds a DDPM table (``betas``, ``alphas_cumprod``) or, for the score
SDE, a VE ladder. ``process_for`` builds the diffcheck process with the same table, and
``sample`` runs the scheduler's own loop (``set_timesteps``, ``scale_model_input``,
``step``) with ``ExactModel`` where a pipeline calls its network. What a network would be
given is mapped to a process time exactly:

- a training index tau (0-based; diffusers' ``timesteps``) is t = (tau + 1) / T, since
  diffcheck's step i of a table of T steps sits at t = i / T;
- a scheduler that scales its input by 1 / sqrt(sigma^2 + 1) (``scale_model_input``:
  Euler, Euler ancestral, Heun) works on x / alpha with sigma = sqrt((1 - abar) / abar);
  the model is evaluated at the time whose sigma/alpha is the sigma the scheduler scaled
  for;
- the score-SDE-VE scheduler passes sigma itself; the process is ``VE`` with the exact
  kernel, so that x_t = x_0 + sigma z at the time whose sigma is that sigma.

Tables are promoted to float64 (``promote``) where the scheduler keeps them as tensors;
schedulers that cast their sigmas or samples to float32 stay float32 there. Noise the
scheduler draws through diffusers' ``randn_tensor`` is routed to a noise function that
the caller passes, so that outputs are affine in (x_T, noise) on Gaussian targets and
their laws are exact (``diffcheck.testing.gaussian_law.affine_law``).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from tqdm import tqdm

from toy.mixture import GaussianMixture
from toy.validate import check_choice, check_int

from ..exact import ExactModel
from ..process.base import Process
from ..process.continuous import VE
from ..process.discrete import DiscreteVP
from ..samplers.base import SamplingError, make_noise
from ..samplers.loop import coefficients

__all__ = [
    "INSTALL_HINT",
    "PREDICTION_TYPES",
    "require_diffusers",
    "SchedulerConfig",
    "ZeroTerminalVP",
    "build",
    "promote",
    "table",
    "process_for",
    "kind",
    "set_timesteps",
    "timestep_time",
    "sigma_time",
    "walk_grid",
    "sample_space_alpha",
    "Call",
    "Run",
    "sample",
    "learned_range_output",
]

INSTALL_HINT = "pip install 'diffcheck[diffusers]'"
PREDICTION_TYPES = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}


def require_diffusers():
    """Import diffusers, or raise an ImportError that says how to install it."""
    try:
        import diffusers
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError(f"this needs the optional dependency diffusers: {INSTALL_HINT}") from err
    return diffusers


def _scheduler_class(name: str) -> type:
    diffusers = require_diffusers()
    cls = getattr(diffusers, name, None) if isinstance(name, str) else None
    if not isinstance(cls, type) or not hasattr(cls, "step") and not hasattr(cls, "step_pred"):
        raise ValueError(f"scheduler must name a diffusers scheduler class (e.g. 'DDIMScheduler'), got {name!r}")
    return cls


@dataclass(frozen=True)
class SchedulerConfig:
    """A diffusers scheduler class (by name), its constructor keywords and its ``step`` keywords.

    ``clip_sample`` is set to False unless given: clipping x_0 to [-1, 1] is wrong for
    data outside that range. ``float64`` promotes the scheduler's tables (``promote``).
    """

    scheduler: str
    options: tuple[tuple[str, Any], ...] = ()
    step_options: tuple[tuple[str, Any], ...] = ()
    float64: bool = True

    @classmethod
    def make(cls, scheduler: str, *, step_options: dict | None = None, float64: bool = True, **options: Any) -> "SchedulerConfig":
        """``SchedulerConfig.make("DDIMScheduler", timestep_spacing="trailing", step_options={"eta": 0.0})``."""
        sched_cls = _scheduler_class(scheduler)
        params = inspect.signature(sched_cls.__init__).parameters
        for key in options:
            if key not in params:
                raise ValueError(f"options: {scheduler} has no option {key!r}")
        if "clip_sample" in params and "clip_sample" not in options:
            options["clip_sample"] = False
        step_params = inspect.signature(getattr(sched_cls, "step", getattr(sched_cls, "step_pred", None))).parameters
        for key in step_options or {}:
            if key not in step_params:
                raise ValueError(f"step_options: {scheduler}.step has no argument {key!r}")
        return cls(scheduler, tuple(sorted(options.items())), tuple(sorted((step_options or {}).items())), bool(float64))

    @property
    def kwargs(self) -> dict:
        """The constructor keywords."""
        return dict(self.options)

    @property
    def step_kwargs(self) -> dict:
        """The keywords passed to every ``step``."""
        return dict(self.step_options)

    @property
    def prediction(self) -> str:
        """What the model predicts in diffcheck's names ("eps", "x0", "v"; "score" for score-SDE-VE)."""
        if self.scheduler == "ScoreSdeVeScheduler":
            return "score"
        default = inspect.signature(_scheduler_class(self.scheduler).__init__).parameters.get("prediction_type")
        ptype = self.kwargs.get("prediction_type", default.default if default is not None else "epsilon")
        if ptype not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type {ptype!r} is not one of {sorted(PREDICTION_TYPES)}")
        return PREDICTION_TYPES[ptype]

    @property
    def label(self) -> str:
        """A short readable name: the class and the options that differ from its defaults."""
        params = inspect.signature(_scheduler_class(self.scheduler).__init__).parameters
        parts = [f"{k}={v}" for k, v in self.options if k not in params or params[k].default != v]
        parts += [f"{k}={v}" for k, v in self.step_options]
        return f"{self.scheduler.replace('Scheduler', '')}({', '.join(parts)})"

    def to_json(self) -> dict:
        """A JSON-safe description."""
        return {"scheduler": self.scheduler, "options": self.kwargs, "step_options": self.step_kwargs,
                "float64": self.float64, "label": self.label}


class ZeroTerminalVP(DiscreteVP):
    """A DDPM table whose last beta is 1, so alpha_bar_T = 0 (zero terminal SNR; Lin et al. 2024, Alg. 1).

    ``DiscreteVP`` requires betas < 1; here log alpha_bar_T = -inf, so alpha = 0 and
    sigma = 1 on the last segment (t in ((T-1)/T, 1]) and x_T is pure noise.
    """

    def __init__(self, betas: Any) -> None:
        betas = torch.as_tensor(betas, dtype=torch.float64).reshape(-1)
        if betas.numel() < 2 or float(betas[-1]) != 1.0:
            raise ValueError("betas must hold at least 2 steps and end with exactly 1")
        super().__init__(torch.cat([betas[:-1], torch.full((1,), 0.5, dtype=torch.float64)]))
        self.betas = betas
        self._log_ab[-1] = -math.inf

    def __repr__(self) -> str:
        return f"ZeroTerminalVP(T={self.T}, beta_1={float(self.betas[0]):.4g})"


# -- building and promoting schedulers -----------------------------------------------------
def build(config: SchedulerConfig):
    """A fresh scheduler of ``config``, with float64 tables if ``config.float64``."""
    if not isinstance(config, SchedulerConfig):
        raise TypeError(f"config must be a SchedulerConfig, got {type(config).__name__}")
    sched = _scheduler_class(config.scheduler)(**config.kwargs)
    return promote(sched) if config.float64 else sched


def table(scheduler) -> torch.Tensor:
    """The scheduler's alpha_bar for training indices 0..T-1 in float64, from its own betas.

    Where a scheduler overrides alpha_bar_T after the cumulative product (Euler-type
    schedulers set it to 2^-24 with zero terminal SNR), that value is kept.
    """
    if not hasattr(scheduler, "betas"):
        raise TypeError(f"{type(scheduler).__name__} has no DDPM table (betas)")
    betas = scheduler.betas.detach().to(torch.float64)
    ab = torch.cumprod(1.0 - betas, 0)
    own = scheduler.alphas_cumprod.detach().to(torch.float64)
    if float(ab[-1]) == 0.0 and float(own[-1]) > 0.0:
        ab[-1] = own[-1]
    return ab


def promote(scheduler):
    """Replace the scheduler's float32 tables by float64 ones computed from the same betas (in place)."""
    if not hasattr(scheduler, "betas"):
        return scheduler  # score-SDE-VE: sigmas are computed from the config at set_timesteps
    ab = table(scheduler)
    betas = scheduler.betas.detach().to(torch.float64)
    scheduler.betas = betas
    scheduler.alphas = 1.0 - betas
    scheduler.alphas_cumprod = ab
    if hasattr(scheduler, "final_alpha_cumprod"):
        one = bool(getattr(scheduler.config, "set_alpha_to_one", False))
        scheduler.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64) if one else ab[0].clone()
    if hasattr(scheduler, "one"):
        scheduler.one = torch.tensor(1.0, dtype=torch.float64)
    if hasattr(scheduler, "lambda_t"):
        scheduler.alpha_t = ab.sqrt()
        scheduler.sigma_t = (1.0 - ab).sqrt()
        scheduler.lambda_t = scheduler.alpha_t.log() - scheduler.sigma_t.log()
    return scheduler


def process_for(scheduler) -> Process:
    """The diffcheck process of a scheduler: its DDPM table as ``DiscreteVP`` (``ZeroTerminalVP``), or ``VE``."""
    if hasattr(scheduler, "step_pred"):  # score-SDE-VE
        cfg = scheduler.config
        return VE(float(cfg.sigma_min), float(cfg.sigma_max), kernel="exact")
    ab = table(scheduler)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
    betas = 1.0 - ab / prev
    rising = torch.nonzero(betas <= 0).reshape(-1)
    if rising.numel():
        k = int(rising[0])
        raise ValueError(f"scheduler: its alpha_bar is not decreasing (index {k}: {float(ab[k]):.6g} >= {float(prev[k]):.6g} at "
                         f"index {k - 1}), so it is not the table of a forward process")
    if float(ab[-1]) == 0.0:
        betas[-1] = 1.0
        return ZeroTerminalVP(betas)
    return DiscreteVP(betas)


def kind(scheduler) -> str:
    """How the scheduler conditions its model: "index" (training index), "sigma" (input scaled by 1/sqrt(sigma^2+1)) or "ve"."""
    if hasattr(scheduler, "step_pred"):
        return "ve"
    probe = copy.deepcopy(scheduler)
    if probe.timesteps is None:  # PNDM before set_timesteps; its input is never scaled
        return "index"
    ones = torch.ones(1, 1, dtype=torch.float64)
    scaled = probe.scale_model_input(ones, probe.timesteps[0])
    return "index" if scaled is ones or bool(torch.equal(scaled, ones)) else "sigma"


def set_timesteps(scheduler, steps: int) -> None:
    """``set_timesteps(steps)`` (and ``set_sigmas`` for score-SDE-VE, as its pipeline does)."""
    steps = check_int(steps, "steps", minimum=1)
    scheduler.set_timesteps(steps)
    if hasattr(scheduler, "set_sigmas"):
        scheduler.set_sigmas(steps)


# -- time maps -----------------------------------------------------------------------------------
def timestep_time(process: DiscreteVP, timestep: Any, index_shift: int = 0) -> float:
    """t = (tau + 1 + index_shift) / T for a diffusers training index tau (``index_shift`` 0 is the exact map; a shifted
    time is clamped to [0, 1])."""
    t = (float(timestep) + 1.0) / process.T
    if not -1e-12 <= t <= 1.0 + 1e-12:
        raise ValueError(f"timestep {float(timestep):g} maps outside [0, 1] on a table of {process.T} steps")
    return min(max(t + index_shift / process.T, 0.0), 1.0)


def sigma_time(process: Process, sigma: Any) -> float:
    """The time at which sigma(t)/alpha(t) = ``sigma``; sigma beyond the process's range (float32 rounding) is clamped."""
    s = float(sigma)
    if not s >= 0.0:
        raise ValueError(f"sigma must be non-negative, got {s}")
    if s == 0.0:
        return 0.0
    lam = torch.tensor(-2.0 * math.log(s), dtype=torch.float64)
    lo = float(process.log_snr(torch.ones((), dtype=torch.float64)))
    hi = float(process.log_snr(torch.zeros((), dtype=torch.float64)))
    if lam <= lo:
        return 1.0
    if lam >= hi:
        return 0.0
    return float(process.t_of_log_snr(lam))


def sample_space_alpha(scheduler, process: Process, t: float) -> float:
    """The factor x_scheduler = x_process / factor: alpha(t) for sigma-space schedulers (they hold x / alpha), else 1."""
    if kind(scheduler) != "sigma":
        return 1.0
    return float(process.alpha(torch.tensor(t, dtype=torch.float64)))


def _consecutive_unique(values: list[float]) -> list[float]:
    out: list[float] = []
    for v in values:
        if not out or v != out[-1]:
            out.append(v)
    return out


def walk_grid(scheduler, process: Process) -> torch.Tensor:
    """The decreasing process times the scheduler's state passes through, ending where its output lies.

    For sigma-walking schedulers (Euler, Heun, Euler ancestral, DPM-Solver) the times of
    their sigmas; for DDPM the model-evaluation indices and then the data; for DDIM and
    PNDM the kept indices and then the point their last step lands on (the data with
    ``set_alpha_to_one``, else alpha_bar_0, i.e. t = 1/T); for score-SDE-VE the ladder of
    its predictor and then sigma = 0. Call after ``set_timesteps``.
    """
    if hasattr(scheduler, "step_pred"):
        sig = scheduler.discrete_sigmas.to(torch.float64).flip(0).tolist() + [0.0]
        return torch.tensor([sigma_time(process, s) for s in sig], dtype=torch.float64)
    steps = scheduler.timesteps
    if hasattr(scheduler, "sigmas") and len(scheduler.sigmas) == len(steps) + 1:
        sig = _consecutive_unique([float(s) for s in scheduler.sigmas])
        return torch.tensor([sigma_time(process, s) for s in sig], dtype=torch.float64)
    T = process.T
    if hasattr(scheduler, "prk_timesteps"):  # PNDM: the kept indices, PRK half-steps aside
        kept = sorted({int(v) for v in scheduler._timesteps}, reverse=True)
    else:
        kept = [int(v) for v in steps]
    times = [(k + 1) / T for k in kept]
    if hasattr(scheduler, "final_alpha_cumprod"):
        prev = kept[-1] - T // scheduler.num_inference_steps
        if prev >= 0:
            times.append((prev + 1) / T)
        else:
            times.append(0.0 if float(scheduler.final_alpha_cumprod) == 1.0 else 1.0 / T)
    else:
        times.append(0.0)
    # a last step whose target equals its start (leading spacing ending at index 0 with the final
    # alpha_bar_0) changes nothing; the walk does not repeat that time
    return torch.tensor(_consecutive_unique(times), dtype=torch.float64)


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
