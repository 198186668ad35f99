"""The process and sampler menus of the command line: ``--process`` and ``--sampler`` names, and what they stand for."""

from __future__ import annotations

from typing import Callable

from ._common import UsageError

__all__ = ["PROCESSES", "SAMPLERS", "make_process", "make_grid", "runner"]

PROCESSES = ("VP", "subVP", "VE", "VE-official", "cosine", "linear-VE", "ddpm-linear", "ddpm-cosine")
SAMPLERS = ("ddpm", "ddpm-beta", "ddim", "ddim-eta1", "euler-maruyama", "reverse-diffusion", "pc", "pc-batch",
            "ve-ancestral", "vp-ancestral", "euler-ode", "heun-ode", "adaptive-ode")



def make_process(name: str):
    """The process a ``--process`` name stands for."""
    from .. import process as P

    return {"VP": P.VP, "subVP": P.SubVP, "VE": P.VE, "VE-official": lambda: P.VE(kernel="official"), "cosine": P.CosineVP,
            "linear-VE": P.LinearVE, "ddpm-linear": P.DiscreteVP.linear, "ddpm-cosine": P.DiscreteVP.cosine}[name]()


def make_grid(process, steps: int):
    """The sampler grid of ``--steps`` steps on ``process``."""
    from .. import process as P

    if isinstance(process, P.DiscreteVP):
        if steps > process.T:
            raise UsageError(f"--steps must be at most the table's T = {process.T}, got {steps}")
        return P.iddpm_grid(process, [steps])
    return P.uniform_grid(steps, getattr(process, "t_max", 1.0), max(process.t_eps, 1e-3))


def runner(name: str) -> Callable:
    """The sampler a ``--sampler`` name stands for, as ``run(model, process, x, grid, generator, **kw)``."""
    from .. import samplers as S

    table: dict[str, Callable] = {
        "ddpm": lambda m, p, x, g, gen, **kw: S.ddpm_ancestral(m, p, x, g, generator=gen, **kw),
        "ddpm-beta": lambda m, p, x, g, gen, **kw: S.ddpm_ancestral(m, p, x, g, generator=gen, variance="beta", **kw),
        "ddim": lambda m, p, x, g, gen, **kw: S.ddim(m, p, x, g, **kw),
        "ddim-eta1": lambda m, p, x, g, gen, **kw: S.ddim(m, p, x, g, eta=1.0, generator=gen, **kw),
        "euler-maruyama": lambda m, p, x, g, gen, **kw: S.euler_maruyama(m, p, x, g, generator=gen, **kw),
        "reverse-diffusion": lambda m, p, x, g, gen, **kw: S.reverse_diffusion(m, p, x, g, generator=gen, **kw),
        "pc": lambda m, p, x, g, gen, **kw: S.predictor_corrector(m, p, x, g, generator=gen, **kw),
        "pc-batch": lambda m, p, x, g, gen, **kw: S.predictor_corrector(m, p, x, g, generator=gen, norm="batch", **kw),
        "ve-ancestral": lambda m, p, x, g, gen, **kw: S.ve_ancestral(m, p, x, g, generator=gen, **kw),
        "vp-ancestral": lambda m, p, x, g, gen, **kw: S.vp_ancestral(m, p, x, g, generator=gen, **kw),
        "euler-ode": lambda m, p, x, g, gen, **kw: S.euler_ode(m, p, x, g, **kw),
        "heun-ode": lambda m, p, x, g, gen, **kw: S.heun_ode(m, p, x, g, **kw),
        "adaptive-ode": lambda m, p, x, g, gen, **kw: S.adaptive_ode(m, p, x, g, **{k: v for k, v in kw.items() if k == "full"}),
    }
    return table[name]
