"""diffusers' schedulers as data: a class name with its options (``SchedulerConfig``), built with float64 tables.

``clip_sample`` is off unless asked for, and tables are promoted to float64 (``promote``)
where the scheduler keeps them as tensors; schedulers that cast their sigmas or samples to
float32 stay float32 there.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch

from toy.validate import check_int

__all__ = ["INSTALL_HINT", "PREDICTION_TYPES", "require_diffusers", "SchedulerConfig", "build", "table", "promote", "set_timesteps"]

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


def set_timesteps(scheduler, steps: int) -> None:
    """``set_timesteps(steps)`` (and ``set_sigmas`` for score-SDE-VE, as its pipeline does)."""
    steps = check_int(steps, "steps", minimum=1)
    scheduler.set_timesteps(steps)
    if hasattr(scheduler, "set_sigmas"):
        scheduler.set_sigmas(steps)

