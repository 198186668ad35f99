"""The training objectives of the seed papers as recipes for toy models: process, network, loss, sampler.

The losses themselves are ``diffcheck.losses`` (their one place); a recipe only chooses one
and says how it is trained, compared and sampled.

Each objective is a frozen dataclass that knows the process it trains on (some depend on the data, through
Song & Ermon 2020, Technique 1), how the network is conditioned, its per-step loss ``loss_fn(model, x0, generator)``
(a scalar: the mean of the per-sample losses of ``diffcheck.losses``), the times at which a learned model is
compared with the exact one, and a sampler that draws from the learned model.

- :class:`NCSNLadder`: denoising score matching over a geometric sigma ladder, lambda = sigma^2 (Song & Ermon 2019).
- :class:`DDPMSimple`: L_simple on DDPM's linear 1000-step table (Ho et al. 2020).
- :class:`Hybrid`: L_hybrid with a learned-range variance on the cosine table (Nichol & Dhariwal 2021).
- :class:`ContinuousVP`, :class:`ContinuousVE`: continuous-time DSM on the VP and VE SDEs (Song et al. 2021).

The comparison times sit at noise levels sigma/alpha = EVAL_LEVELS times the data's standard deviation, snapped to
what the objective trains on (a ladder level, a DDPM step), so that every objective is measured from nearly clean
data to well past the data's scale.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

import torch

from toy.mixture import GaussianMixture
from toy.validate import check_choice, check_float, check_int

from .. import samplers as S
from ..losses import hybrid_loss, ncsn_loss, score_sde_loss, simple_loss, uniform_steps
from ..process import (VE, VP, DiscreteVP, Process, ddpm_grid, discretize, geometric_sigmas, karras_sigmas,
                       ncsnv2_sigma_max, sigma_grid)
from ..process.discrete import Schedule

__all__ = ["EVAL_LEVELS", "Objective", "NCSNLadder", "DDPMSimple", "Hybrid", "ContinuousVP", "ContinuousVE", "describe",
           "technique1_sigma_max", "ode_grid"]

EVAL_LEVELS = (0.02, 0.1, 0.5, 2.0)
"""Noise levels sigma/alpha, in units of the data's standard deviation, at which learned and exact scores are compared."""

_TECHNIQUE1_POINTS = 2000


def technique1_sigma_max(data: torch.Tensor) -> float:
    """sigma_1 = the largest pairwise distance among the first 2000 training points (Song & Ermon 2020, technique 1)."""
    return ncsnv2_sigma_max(data[:_TECHNIQUE1_POINTS].to(torch.float64))


def ode_grid(process: Process, steps: int, data_std: float) -> torch.Tensor:
    """Noise levels of Karras et al. 2022, Eq. 5 (rho = 7) from sigma(1)/alpha(1) down to the larger of 0.002 data_std and
    the smallest level trained on (at t_eps), then t = 0 (a final Euler step, Algorithm 1 of Karras et al. 2022)."""
    top = float(process.edm_sigma(torch.tensor(1.0, dtype=torch.float64)))
    bottom = max(float(process.edm_sigma(torch.tensor(process.t_eps, dtype=torch.float64))), 0.002 * data_std)
    t = process.t_of_edm_sigma(karras_sigmas(steps, bottom, top)).clamp(max=1.0)
    t[0] = 1.0
    return torch.cat([t, torch.zeros(1, dtype=t.dtype)])


def _initial(process: Process, grid: torch.Tensor, n: int, dim: int, generator: torch.Generator,
             start: GaussianMixture | None, std: float | None = None) -> torch.Tensor:
    """x at the grid's first time: from the prior N(0, std^2 I) (std: the process's prior_std unless given), or
    from the exact marginal of ``start`` there."""
    if start is not None:
        return process.marginal(start, float(grid[0])).sample(n, generator)
    std = process.prior_std if std is None else std
    return std * torch.randn(n, dim, generator=generator, dtype=torch.float64)


def _discrete_schedule(process: DiscreteVP) -> Schedule:
    return discretize(process, torch.arange(process.T + 1, dtype=torch.float64) / process.T)


def _continuous_times(process: Process, data_std: float) -> torch.Tensor:
    levels = torch.tensor(EVAL_LEVELS, dtype=torch.float64) * data_std
    return process.t_of_edm_sigma(levels)


def _step_times(process: DiscreteVP, data_std: float) -> torch.Tensor:
    """The DDPM steps nearest (in log sigma/alpha) to the evaluation levels, as times i/T."""
    steps = torch.arange(1, process.T + 1)
    log_levels = torch.log(process.edm_sigma(process.times(steps)))
    want = torch.log(torch.tensor(EVAL_LEVELS, dtype=torch.float64) * data_std)
    idx = (log_levels[None, :] - want[:, None]).abs().argmin(dim=1)
    return process.times(steps[idx])


@runtime_checkable
class Objective(Protocol):
    """What every objective provides (see the module docstring); the objectives below are frozen dataclasses."""

    name: ClassVar[str]
    paper: ClassVar[str]
    prediction: ClassVar[str]
    noise_input: ClassVar[str]
    embedding: ClassVar[str]
    learn_sigma: ClassVar[bool]

    def process(self, data: torch.Tensor) -> Process:
        """The forward process this objective trains on, given the training data."""
        ...

    def loss_fn(self, process: Process) -> Callable[[Any, torch.Tensor, torch.Generator], torch.Tensor]:
        """``loss(model, x0, generator) -> scalar`` for the training loop."""
        ...

    def eval_times(self, process: Process, data_std: float) -> torch.Tensor:
        """Times at which the learned score is compared with the exact one."""
        ...

    def sample(self, model: Any, process: Process, n: int, generator: torch.Generator, *, dim: int, data_std: float,
               start: GaussianMixture | None = None) -> torch.Tensor:
        """n samples (float64) from ``model`` (learned, or exact as a control) with this objective's sampler, started
        from the prior, or with ``start`` from that mixture's exact marginal at the sampler's first time."""
        ...


class _Defaults:
    """The conditioning most objectives use: an eps network fed the time through sinusoidal features."""

    prediction: ClassVar[str] = "eps"
    noise_input: ClassVar[str] = "time"
    embedding: ClassVar[str] = "sinusoidal"
    learn_sigma: ClassVar[bool] = False


def describe(objective: Objective) -> dict[str, Any]:
    """An objective's name, source and fields, for reports."""
    return {"objective": objective.name, "source": objective.paper, **dataclasses.asdict(objective)}  # type: ignore[call-overload]


@dataclasses.dataclass(frozen=True)
class NCSNLadder(_Defaults):
    """NCSN's objective (Song & Ermon 2019, Eq. 6) on a geometric ladder from sigma_1 down to ``sigma_min`` (``levels`` levels).

    sigma_1 follows Song & Ermon 2020, Technique 1. Samples come from NCSNv2's sampler:
    annealed Langevin with the step size of Song & Ermon 2020, Technique 4,
    ``steps_per_level`` steps per level, and the final denoising step.
    """

    levels: int = 30
    sigma_min: float = 0.002
    steps_per_level: int = 100

    name: ClassVar[str] = "ncsn"
    paper: ClassVar[str] = "Song & Ermon 2019, Eq. 6; Song & Ermon 2020, Techniques 1, 3, 4"
    prediction: ClassVar[str] = "score"
    noise_input: ClassVar[str] = "log_sigma"

    def __post_init__(self) -> None:
        check_int(self.levels, "levels", minimum=2)
        check_float(self.sigma_min, "sigma_min", low=0.0, low_open=True)
        check_int(self.steps_per_level, "steps_per_level", minimum=1)

    def process(self, data: torch.Tensor) -> VE:
        """A VE process whose noise levels span the ladder: sigma(t) from ``sigma_min``/2 to twice the sigma_1 of Song & Ermon 2020, Technique 1."""
        top = max(technique1_sigma_max(data), 2.0 * self.sigma_min)
        return VE(sigma_min=0.5 * self.sigma_min, sigma_max=2.0 * top)

    def ladder(self, process: VE) -> torch.Tensor:
        """The noise levels sigma_1 > ... > sigma_L trained on: sigma_1 from Song & Ermon 2020, Technique 1, down to ``sigma_min``."""
        return geometric_sigmas(0.5 * process.sigma_max, self.sigma_min, self.levels)

    def loss_fn(self, process: Process):
        sigmas = self.ladder(process)  # type: ignore[arg-type]

        def loss(model, x0, generator):
            return ncsn_loss(model, process, x0, sigmas, generator).mean()

        return loss

    def eval_times(self, process: Process, data_std: float) -> torch.Tensor:
        ladder = self.ladder(process)  # type: ignore[arg-type]
        want = torch.log(torch.tensor(EVAL_LEVELS, dtype=torch.float64) * data_std)
        idx = (torch.log(ladder)[None, :] - want[:, None]).abs().argmin(dim=1).unique()
        return process.t_of_edm_sigma(ladder[idx]).sort().values

    def sample(self, model, process, n, generator, *, dim, data_std, start=None):
        grid = sigma_grid(process, self.ladder(process))  # type: ignore[arg-type]
        x = _initial(process, grid, n, dim, generator, start, std=float(process.sigma(grid[0])))
        return S.ncsnv2(model, process, x, grid, generator=generator, steps_per_level=self.steps_per_level, denoise=True)


@dataclasses.dataclass(frozen=True)
class DDPMSimple(_Defaults):
    """L_simple at uniform steps of DDPM's ``T``-step linear table; samples by ancestral sampling with beta_tilde."""

    T: int = 1000

    name: ClassVar[str] = "ddpm"
    paper: ClassVar[str] = "Ho et al. 2020, Eq. 14 and Algorithms 1-2"

    def __post_init__(self) -> None:
        check_int(self.T, "T", minimum=2)

    def process(self, data: torch.Tensor) -> DiscreteVP:
        return DiscreteVP.linear(self.T)

    def loss_fn(self, process: Process):
        schedule = _discrete_schedule(process)  # type: ignore[arg-type]

        def loss(model, x0, generator):
            return simple_loss(model, schedule, x0, generator).mean()

        return loss

    def eval_times(self, process: Process, data_std: float) -> torch.Tensor:
        return _step_times(process, data_std)  # type: ignore[arg-type]

    def sample(self, model, process, n, generator, *, dim, data_std, start=None):
        grid = ddpm_grid(process)
        return S.ddpm_ancestral(model, process, _initial(process, grid, n, dim, generator, start), grid, generator=generator)


@dataclasses.dataclass(frozen=True)
class Hybrid(_Defaults):
    """L_hybrid = L_simple + lam L_vlb with a learned-range variance at uniform steps of the cosine table."""

    T: int = 1000
    lam: float = 0.001

    name: ClassVar[str] = "hybrid"
    paper: ClassVar[str] = "Nichol & Dhariwal 2021, Eq. 15-16"
    learn_sigma: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_int(self.T, "T", minimum=2)
        check_float(self.lam, "lam", low=0.0)

    def process(self, data: torch.Tensor) -> DiscreteVP:
        return DiscreteVP.cosine(self.T)

    def schedule(self, process: DiscreteVP) -> Schedule:
        """The process's table as a Schedule starting at the data (for the bound terms)."""
        return _discrete_schedule(process)

    def loss_fn(self, process: Process):
        schedule = _discrete_schedule(process)  # type: ignore[arg-type]
        T = schedule.num_steps

        def loss(model, x0, generator):
            steps = uniform_steps(T, x0.shape[0], generator)
            return hybrid_loss(model, schedule, x0, steps, generator, lam=self.lam).mean()

        return loss

    def eval_times(self, process: Process, data_std: float) -> torch.Tensor:
        return _step_times(process, data_std)  # type: ignore[arg-type]

    def sample(self, model, process, n, generator, *, dim, data_std, start=None):
        grid = ddpm_grid(process)
        return S.ddpm_ancestral(model, process, _initial(process, grid, n, dim, generator, start), grid, generator=generator)


@dataclasses.dataclass(frozen=True)
class ContinuousVP(_Defaults):
    """DSM on the VP SDE at t ~ U(t_eps, 1), lambda = sigma^2 or g^2; samples by Heun on the probability-flow ODE
    over :func:`ode_grid`."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    weighting: str = "sigma2"
    sample_steps: int = 100

    name: ClassVar[str] = "vp"
    paper: ClassVar[str] = "Song et al. 2021, Eq. 7 and 11"
    prediction: ClassVar[str] = "score"

    def __post_init__(self) -> None:
        check_choice(self.weighting, "weighting", ("sigma2", "likelihood"))
        check_int(self.sample_steps, "sample_steps", minimum=1)

    def process(self, data: torch.Tensor) -> VP:
        return VP(self.beta_min, self.beta_max)

    def loss_fn(self, process: Process):
        def loss(model, x0, generator):
            return score_sde_loss(model, process, x0, generator, weighting=self.weighting).mean()

        return loss

    def eval_times(self, process: Process, data_std: float) -> torch.Tensor:
        return _continuous_times(process, data_std)

    def sample(self, model, process, n, generator, *, dim, data_std, start=None):
        grid = ode_grid(process, self.sample_steps, data_std)
        return S.heun_ode(model, process, _initial(process, grid, n, dim, generator, start), grid)


@dataclasses.dataclass(frozen=True)
class ContinuousVE(_Defaults):
    """DSM on the VE SDE (sigma_min to the sigma_max of Song & Ermon 2020, Technique 1) at t ~ U(t_eps, 1), lambda = sigma^2; Fourier
    features of log sigma as NCSN++ uses; samples by Heun on the probability-flow ODE over :func:`ode_grid`."""

    sigma_min: float = 0.002
    sample_steps: int = 100

    name: ClassVar[str] = "ve"
    paper: ClassVar[str] = "Song et al. 2021, Eq. 7 and 9"
    prediction: ClassVar[str] = "score"
    noise_input: ClassVar[str] = "log_sigma"
    embedding: ClassVar[str] = "fourier"

    def __post_init__(self) -> None:
        check_float(self.sigma_min, "sigma_min", low=0.0, low_open=True)
        check_int(self.sample_steps, "sample_steps", minimum=1)

    def process(self, data: torch.Tensor) -> VE:
        return VE(sigma_min=self.sigma_min, sigma_max=max(technique1_sigma_max(data), 2.0 * self.sigma_min))

    def loss_fn(self, process: Process):
        def loss(model, x0, generator):
            return score_sde_loss(model, process, x0, generator).mean()

        return loss

    def eval_times(self, process: Process, data_std: float) -> torch.Tensor:
        return _continuous_times(process, data_std)

    def sample(self, model, process, n, generator, *, dim, data_std, start=None):
        grid = ode_grid(process, self.sample_steps, data_std)
        return S.heun_ode(model, process, _initial(process, grid, n, dim, generator, start), grid)

