"""Langevin dynamics (Song & Ermon 2019, Eq. 4), annealed Langevin (Song & Ermon 2019, Algorithm 1) and NCSNv2's sampler
(Song & Ermon 2020, Sec. 3.3-3.4), all one loop.

Two step conventions are in use and both are offered, named by what multiplies the score:
``"half"``: x + (eps/2) s + sqrt(eps) z (Song & Ermon 2019, Eq. 4 and Algorithm 1, and NCSN's toy code);
``"full"``: x + eps s + sqrt(2 eps) z (NCSN's and NCSNv2's image code).
"full" with step eps is "half" with step 2 eps.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import torch
from tqdm import tqdm

from toy.validate import check_choice, check_float, check_int

from ..param import Model, predict
from ..process.base import Process
from ..process.ladders import ncsnv2_step_size
from .base import Result, SamplingError, StepChecker, make_noise, sampler
from .loop import Counted

__all__ = ["langevin", "annealed_langevin", "ncsnv2"]


def _drift_noise(convention: str, step: float) -> tuple[float, float]:
    return (0.5 * step, math.sqrt(step)) if convention == "half" else (step, math.sqrt(2.0 * step))


def _loop(model: Model, process: Process, x: torch.Tensor, times: torch.Tensor, step_sizes: list[float], steps_per_level: int,
          noise, *, convention: str, check_finite: bool, progress: bool, full: bool, name: str, every_step: bool,
          **model_kwargs: Any) -> tuple[torch.Tensor, list[torch.Tensor] | None, int]:
    """``steps_per_level`` Langevin steps x + drift s(x, t_i) + scale z at each time t_i with step size step_sizes[i]
    (Song & Ermon 2019, Algorithm 1, lines 3-6); returns the state, the trajectory (after every step, or after every
    level) and the number of model evaluations."""
    counted = Counted(model)
    traj = [x] if full else None
    bar = tqdm(total=len(times) * steps_per_level, desc=name, file=sys.stderr, disable=not progress, leave=False)
    for i in range(len(times)):
        drift, scale = _drift_noise(convention, step_sizes[i])
        for k in range(steps_per_level):
            x = x + drift * predict(counted, process, x, times[i], "score", **model_kwargs) + scale * noise(x)
            if check_finite and not bool(torch.isfinite(x).all()):
                raise SamplingError(f"{name}: non-finite state at level {i + 1} of {len(times)} "
                                    f"(t = {float(times[i]):.6g}), step {k + 1}")
            if traj is not None and every_step:
                traj.append(x)
            bar.update(1)
        if traj is not None and not every_step:
            traj.append(x)
    bar.close()
    return x, traj, counted.calls


@sampler("mcmc", "Song & Ermon 2019, Eq. 4")
def langevin(
    model: Model,
    process: Process,
    x: torch.Tensor,
    t: float,
    *,
    step_size: float,
    n_steps: int,
    generator: Any,
    convention: str = "half",
    check_finite: bool = True,
    progress: bool = False,
    full: bool = False,
    **model_kwargs: Any,
):
    """``n_steps`` Langevin steps targeting the marginal p_t (t = 0: the data) with a fixed step size: one level of
    ``annealed_langevin``'s loop (its trajectory holds every step)."""
    StepChecker(process, x, [1.0, 0.0], name="langevin")
    t = float(process._time(t))
    step_size = check_float(step_size, "step_size", low=0.0, low_open=True)
    n_steps = check_int(n_steps, "n_steps", minimum=1)
    check_choice(convention, "convention", ("half", "full"))
    tt = torch.tensor(t, dtype=torch.float64)
    x, traj, calls = _loop(model, process, x, tt[None], [step_size], n_steps, make_noise(generator), convention=convention,
                           check_finite=check_finite, progress=progress, full=full, name="langevin", every_step=True,
                           **model_kwargs)
    return Result(x, traj, tt.expand(n_steps + 1), calls) if full else x


def _levels(process: Process, grid: Any, x: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
    g = StepChecker(process, x, grid, name="annealed_langevin").grid
    sig = process.sigma(g).tolist()
    if min(sig) <= 0.0:
        raise ValueError("grid must not contain a time with sigma(t) = 0: annealed Langevin needs a noise level at every time")
    return g, sig


@sampler("mcmc", "Song & Ermon 2019, Algorithm 1")
def annealed_langevin(
    model: Model,
    process: Process,
    x: torch.Tensor,
    grid: Any,
    *,
    eps: float,
    steps_per_level: int,
    generator: Any,
    convention: str = "half",
    denoise: bool = False,
    check_finite: bool = True,
    progress: bool = False,
    full: bool = False,
    **model_kwargs: Any,
):
    """Langevin at each noise level of ``grid`` (decreasing times) with step eps sigma_i^2 / sigma_L^2.

    The levels are the process's sigma(t) (for VE the SMLD ladder). With ``denoise`` the
    result is followed by one step to the posterior mean E[x_0 | x] at the last level
    (Tweedie: x + sigma_L^2 s for VE), as NCSNv2 does.
    """
    eps = check_float(eps, "eps", low=0.0, low_open=True)
    steps_per_level = check_int(steps_per_level, "steps_per_level", minimum=1)
    check_choice(convention, "convention", ("half", "full"))
    g, sig = _levels(process, grid, x)
    last = sig[-1]
    counted = Counted(model)
    x, traj, _ = _loop(counted, process, x, g, [eps * v**2 / last**2 for v in sig], steps_per_level, make_noise(generator),
                       convention=convention, check_finite=check_finite, progress=progress, full=full,
                       name="annealed_langevin", every_step=False, **model_kwargs)
    if denoise:
        x = predict(counted, process, x, g[-1], "x0", **model_kwargs)
    return Result(x, traj, g, counted.calls) if full else x


@sampler("mcmc", "Song & Ermon 2020, Sec. 3.3-3.4 (techniques 4 and the final denoising step)")
def ncsnv2(
    model: Model,
    process: Process,
    x: torch.Tensor,
    grid: Any,
    *,
    generator: Any,
    steps_per_level: int = 5,
    eps: float | None = None,
    denoise: bool = True,
    check_finite: bool = True,
    progress: bool = False,
    full: bool = False,
    **model_kwargs: Any,
):
    """NCSNv2's sampler: annealed Langevin in the "full" convention, eps from Song & Ermon 2020, technique 4, unless given, then denoising.

    Technique 4 needs a geometric ladder: gamma is the ratio of consecutive sigmas of
    ``grid`` (checked to be constant to 1e-6).
    """
    steps_per_level = check_int(steps_per_level, "steps_per_level", minimum=1)
    g, sig = _levels(process, grid, x)
    if eps is None:
        ratios = [sig[i] / sig[i + 1] for i in range(len(sig) - 1)]
        if max(ratios) - min(ratios) > 1e-6 * max(ratios):
            raise ValueError("technique 4 needs a geometric ladder (constant sigma ratio); pass eps explicitly otherwise")
        eps = ncsnv2_step_size(ratios[0], sig[-1], steps_per_level)
    return annealed_langevin(model, process, x, g, eps=eps, steps_per_level=steps_per_level, generator=generator,
                             convention="full", denoise=denoise, check_finite=check_finite, progress=progress, full=full,
                             **model_kwargs)
