"""The samplers of ``k_diffusion.sampling``, how each is called, and the theory each is held to.

``order`` is the convergence order expected of the sampler: for deterministic samplers the
global (strong) order of the probability-flow ODE solver, for stochastic ones the weak
order. Ancestral samplers split a step sigma -> sigma_next into an ODE step to sigma_down
and fresh noise of variance sigma_up^2 = sigma_next^2 - sigma_down^2; with an exact ODE
step the split preserves the marginals exactly, so their weak order is the order of the
ODE step they use. ``comparator`` names diffcheck's sampler that runs the same algorithm
on ``LinearVE`` with the ladder as times (sigma is the time there, alpha = 1).
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .load import sampling
from .noise import BrownianNoise, IndependentNoise

__all__ = ["KSampler", "SAMPLERS", "by_name", "run"]


@dataclass(frozen=True)
class KSampler:
    """One k-diffusion sampler: its function, calling convention, noise, declared order and comparator.

    ``call`` is "sigmas" (``fn(model, x, sigmas, ...)``) or "range" (``fn(model, x,
    sigma_min, sigma_max, ...)``: DPM fast and adaptive, which end at sigma_min > 0).
    ``noise`` is "none", "independent" or "brownian". ``affine``: its output is affine in
    (start, noise) on a Gaussian target (False for the adaptive solver, whose step sizes
    depend on the state).
    """

    name: str
    function: str
    kind: str
    order: float | None
    source: str
    noise: str = "none"
    call: str = "sigmas"
    options: tuple[tuple[str, Any], ...] = ()
    comparator: str | None = None
    affine: bool = True
    note: str = ""

    @property
    def stochastic(self) -> bool:
        """Whether it draws noise."""
        return self.noise != "none"


_E = "Karras et al. 2022, Alg. 2"
SAMPLERS: tuple[KSampler, ...] = (
    KSampler("euler", "sample_euler", "ode", 1.0, f"{_E} (Euler steps)", comparator="euler_ode"),
    KSampler("euler_ancestral", "sample_euler_ancestral", "sde", 1.0, "Euler step to sigma_down, then noise sigma_up",
             noise="independent", comparator="ddim_eta1"),
    KSampler("heun", "sample_heun", "ode", 2.0, f"{_E} (Heun steps)", comparator="heun_ode"),
    KSampler("dpm_2", "sample_dpm_2", "ode", 2.0, "DPM-Solver-2 midpoint in log sigma (Lu et al. 2022, Alg. 1)"),
    KSampler("dpm_2_ancestral", "sample_dpm_2_ancestral", "sde", 2.0, "DPM-Solver-2 step to sigma_down, then noise",
             noise="independent"),
    KSampler("lms", "sample_lms", "ode", 4.0, "4-step linear multistep in sigma (Adams-Bashforth, quadrature of Lagrange weights)"),
    KSampler("dpm_fast", "sample_dpm_fast", "ode", 3.0, "DPM-Solver-fast, third-order steps (Lu et al. 2022, Sec. 3.4)",
             call="range"),
    KSampler("dpm_adaptive", "sample_dpm_adaptive", "ode", None, "DPM-Solver-23 with PID step control (Lu et al. 2022, Alg. 4)",
             call="range", affine=False, note="adaptive: no order in the step count; judged by its error at its tolerances"),
    KSampler("dpmpp_2s_ancestral", "sample_dpmpp_2s_ancestral", "sde", 2.0, "DPM-Solver++(2S) step to sigma_down, then noise",
             noise="independent"),
    KSampler("dpmpp_sde", "sample_dpmpp_sde", "sde", 1.0, "DPM-Solver++ SDE, r = 1/2 (two stages sharing one Brownian path)",
             noise="brownian"),
    KSampler("dpmpp_2m", "sample_dpmpp_2m", "ode", 2.0, "DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2)"),
    KSampler("dpmpp_2m_sde_midpoint", "sample_dpmpp_2m_sde", "sde", 1.0, "SDE-DPM-Solver++(2M), midpoint (Lu et al. 2022b, App.)",
             noise="independent", options=(("solver_type", "midpoint"),)),
    KSampler("dpmpp_2m_sde_heun", "sample_dpmpp_2m_sde", "sde", 1.0, "SDE-DPM-Solver++(2M), Heun",
             noise="independent", options=(("solver_type", "heun"),)),
    KSampler("dpmpp_3m_sde", "sample_dpmpp_3m_sde", "sde", 1.0, "SDE-DPM-Solver++(3M)", noise="independent"),
)


def by_name(name: str) -> KSampler:
    """The catalogue entry called ``name``."""
    for s in SAMPLERS:
        if s.name == name:
            return s
    raise ValueError(f"unknown k-diffusion sampler {name!r}; choose one of {', '.join(s.name for s in SAMPLERS)}")


@contextlib.contextmanager
def _quiet_global_rng():
    """k-diffusion's Euler, Heun and DPM-2 draw torch.randn_like even without churn: keep the global generator untouched."""
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="To copy construct from a tensor")
        yield


def run(entry: KSampler, model: Callable, x: torch.Tensor, sigmas: torch.Tensor, noise: Callable | None = None,
        *, nfe: int | None = None, **options: Any) -> torch.Tensor:
    """Run ``entry``'s k-diffusion function from ``x`` over ``sigmas`` with ``model`` (a denoiser), noise from ``noise(like)``.

    "range" samplers go from sigmas[0] to sigmas[-1] (> 0): DPM fast with ``nfe`` model
    evaluations (default 3 per level), DPM adaptive at its tolerances (``options``).
    """
    fn = getattr(sampling(), entry.function)
    kw = dict(entry.options)
    kw.update(options)
    kw["disable"] = True
    if entry.stochastic:
        if noise is None:
            raise ValueError(f"noise is required: {entry.name} draws noise")
        kw["noise_sampler"] = BrownianNoise(noise, x) if entry.noise == "brownian" else IndependentNoise(noise, x)
    s = torch.as_tensor(sigmas, dtype=torch.float64)
    with _quiet_global_rng():
        if entry.call == "sigmas":
            return fn(model, x, s, **kw)
        lo, hi = s[-1], s[0]
        if float(lo) <= 0.0:
            raise ValueError(f"{entry.name} ends at sigma_min > 0: drop the final 0 from the ladder")
        if entry.name == "dpm_fast":
            return fn(model, x, lo, hi, nfe or 3 * (len(s) - 1), **kw)
        return fn(model, x, lo, hi, **kw)


