"""Hypothesis strategies for mixtures, processes, beta tables, times and sampler grids.

Use them to state invariants over random inputs::

    from hypothesis import given
    from diffcheck.testing.strategies import processes, times

    @given(processes(), times())
    def test_alpha_in_unit_interval(p, t):
        assert 0 <= float(p.alpha(t)) <= 1 + 1e-12
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from toy.mixture import GaussianMixture

from ..process import VE, VP, CosineVP, DiscreteVP, LinearVE, Process, SubVP

__all__ = ["mixtures", "processes", "continuous_processes", "discrete_processes", "betas", "times", "grids", "register_profiles"]


def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def mixtures(draw, dim: st.SearchStrategy[int] | int = st.integers(1, 3), components: st.SearchStrategy[int] | int = st.integers(1, 4),
             labelled: bool = False, scale: float = 5.0) -> GaussianMixture:
    """Random Gaussian mixtures with full covariances A A^T + c I (well conditioned)."""
    d = dim if isinstance(dim, int) else draw(dim)
    k = components if isinstance(components, int) else draw(components)
    raw_w = [draw(_floats(0.05, 1.0)) for _ in range(k)]
    w = torch.tensor(raw_w, dtype=torch.float64)
    w = w / w.sum()
    means = torch.tensor([[draw(_floats(-scale, scale)) for _ in range(d)] for _ in range(k)], dtype=torch.float64)
    covs = []
    for _ in range(k):
        a = torch.tensor([[draw(_floats(-1.0, 1.0)) for _ in range(d)] for _ in range(d)], dtype=torch.float64)
        covs.append(a @ a.T + draw(_floats(0.01, 1.0)) * torch.eye(d, dtype=torch.float64))
    labels = [draw(st.integers(0, 2)) for _ in range(k)] if labelled else None
    return GaussianMixture(w, means, torch.stack(covs), labels)


@st.composite
def betas(draw, min_steps: int = 2, max_steps: int = 200) -> torch.Tensor:
    """Random DDPM beta tables with entries in [1e-5, 0.5]."""
    n = draw(st.integers(min_steps, max_steps))
    return torch.tensor([draw(_floats(1e-5, 0.5)) for _ in range(n)], dtype=torch.float64)


@st.composite
def continuous_processes(draw) -> Process:
    """VP, sub-VP, VE (either kernel), linear VE and cosine processes with random parameters."""
    kind = draw(st.sampled_from(["VP", "SubVP", "VE", "VE-official", "cosine", "linear-VE"]))
    if kind in ("VP", "SubVP"):
        b0 = draw(_floats(0.01, 2.0))
        b1 = draw(_floats(b0, 30.0))
        return VP(b0, b1) if kind == "VP" else SubVP(b0, b1)
    if kind.startswith("VE"):
        lo = draw(_floats(1e-3, 0.5))
        hi = draw(_floats(lo * 1.5, 400.0))
        return VE(lo, hi, kernel="official" if kind == "VE-official" else "exact")
    if kind == "linear-VE":
        return LinearVE(draw(_floats(0.5, 200.0)))
    return CosineVP(draw(_floats(1e-3, 0.05)))


@st.composite
def discrete_processes(draw) -> DiscreteVP:
    """DDPM tables: linear, cosine (with the 0.999 clip) or random betas."""
    kind = draw(st.sampled_from(["linear", "cosine", "random"]))
    if kind == "linear":
        T = draw(st.integers(2, 2000))
        b0 = draw(_floats(1e-5, 1e-2))
        b1 = draw(_floats(b0, min(0.9, 50.0 / T + b0)))
        return DiscreteVP.linear(T, b0, b1)
    if kind == "cosine":
        return DiscreteVP.cosine(draw(st.integers(2, 2000)), draw(_floats(1e-3, 0.05)))
    return DiscreteVP(draw(betas()))


def processes() -> st.SearchStrategy[Process]:
    """Any process: continuous or a DDPM table."""
    return st.one_of(continuous_processes(), discrete_processes())


def times(lo: float = 0.0, hi: float = 1.0) -> st.SearchStrategy[float]:
    """Times in [lo, hi]."""
    return _floats(lo, hi)


@st.composite
def grids(draw, min_size: int = 2, max_size: int = 40, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    """Strictly decreasing sampler grids of times in [lo, hi] (distinct by at least 1e-6)."""
    n = draw(st.integers(min_size, max_size))
    pts = draw(st.lists(_floats(lo, hi), min_size=n, max_size=n))
    pts = sorted(set(round(p, 6) for p in pts), reverse=True)
    if len(pts) < min_size:
        pts = [hi - (hi - lo) * i / (min_size - 1) for i in range(min_size)]
    return torch.tensor(pts, dtype=torch.float64)


def register_profiles() -> None:
    """Register the 'ci' (derandomized, no deadline) and 'dev' hypothesis profiles."""
    from hypothesis import HealthCheck, settings

    settings.register_profile("ci", derandomize=True, deadline=None, max_examples=60,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.register_profile("dev", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("thorough", deadline=None, max_examples=2000, suppress_health_check=[HealthCheck.too_slow])

