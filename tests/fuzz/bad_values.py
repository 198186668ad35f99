"""Strategies of bad values: non-finite numbers, wrong types and dtypes, broken covariances, broken grids, broken models."""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

from diffcheck.param import function_model

from harness import Mut

NONFINITE = st.sampled_from([math.nan, math.inf, -math.inf])
NOT_A_NUMBER = st.sampled_from(["0.5", None, b"1", [[0.1], [0.2, 0.3]]])


def _poke(value, index: int, bad: float) -> torch.Tensor:
    t = torch.as_tensor(value).clone()
    t = t if t.is_floating_point() else t.double()
    t.view(-1)[index % t.numel()] = bad
    return t


def poked() -> st.SearchStrategy:
    """The valid tensor with one entry (drawn) replaced by NaN, inf or -inf."""
    return st.builds(lambda i, v: Mut(lambda t: _poke(t, i, v), f"{v} at entry {i}"), st.integers(0, 10**6), NONFINITE)


def scalar(low: float | None = None, high: float | None = None, *, include_low: bool = False,
           include_high: bool = False, types: bool = True, none: bool = True) -> st.SearchStrategy:
    """Numbers outside [low, high] (a bound itself when it is excluded), non-finite numbers and non-numbers
    (``none``: None among them, for an argument whose default is not None)."""
    parts = [NONFINITE]
    if low is not None:
        parts.append(st.floats(max_value=low, allow_nan=False, allow_infinity=False, exclude_max=not include_low))
    if high is not None:
        parts.append(st.floats(min_value=high, allow_nan=False, allow_infinity=False, exclude_min=not include_high))
    if types:
        parts.append(st.sampled_from(["0.5", b"1", None] if none else ["0.5", b"1"]))
    return st.one_of(*parts)


def integer(minimum: int | None = None, maximum: int | None = None) -> st.SearchStrategy:
    """Integers outside [minimum, maximum], floats, non-finite numbers and strings."""
    parts = [NONFINITE, st.sampled_from([1.5, "3", None, True])]
    if minimum is not None:
        parts.append(st.integers(max_value=minimum - 1, min_value=minimum - 10**6))
    if maximum is not None:
        parts.append(st.integers(min_value=maximum + 1, max_value=maximum + 10**6))
    return st.one_of(*parts)


def choice() -> st.SearchStrategy:
    return st.one_of(st.text(min_size=0, max_size=8).filter(lambda s: s not in _CHOICE_WORDS), st.sampled_from([None, 3]))


_CHOICE_WORDS = {"eps", "x0", "v", "score", "half", "full", "uniform", "quadratic", "exact", "approx", "sum", "mean", "small",
                 "large", "learned", "gaussian", "discretized", "isotropic", "diagonal", "beta", "beta_tilde", "rademacher",
                 "sigma2", "g2", "RK45", "adam", "adamw", "sgd", "fp32", "bf16", "fp16", "per_sample", "batch", "posterior",
                 "likelihood", "none", "linear", "cosine", "ddpm", "ncsn", "ncsnv2", "ncsnpp", "adm", "exact_kernel", "sphere",
                 "RK23", "DOP853", "Radau", "BDF", "LSODA", "fixed", "range", "sigma", "prior", "simple", "hybrid", "float",
                 "edm", "ve", "vp", "subvp", "data", "x_start", "epsilon", "v_prediction", "sample", "official", "tanh",
                 "hutchinson", "marginal", "ode", "sde", "chain", "mcmc", "pair"}


def tensors_of_wrong_dtype() -> st.SearchStrategy:
    """The valid tensor as booleans, complex numbers or a string."""
    return st.sampled_from([
        Mut(lambda t: torch.as_tensor(t) > 0, "bool tensor"),
        Mut(lambda t: torch.as_tensor(t).to(torch.complex128), "complex tensor"),
        Mut(lambda t: "tensor", "a string"),
    ])


def covariances() -> st.SearchStrategy:
    """(K, D, D) covariances that are asymmetric (well above rounding), indefinite, or of the wrong shape."""
    def asym(c, a):
        c = torch.as_tensor(c, dtype=torch.float64).clone()
        c[..., 0, 1] += a * c.abs().amax()
        return c

    def indefinite(c, lam):
        c = torch.as_tensor(c, dtype=torch.float64).clone()
        return c - (lam + torch.linalg.eigvalsh(c).amin()) * torch.eye(c.shape[-1], dtype=c.dtype)

    return st.one_of(
        st.builds(lambda a: Mut(lambda c: asym(c, a), f"asymmetric by {a:.3g} |C|"), st.floats(1e-4, 10.0)),
        st.builds(lambda lam: Mut(lambda c: indefinite(c, lam), f"eigenvalue -{lam:.3g}"), st.floats(1e-3, 1e3)),
        st.sampled_from([Mut(lambda c: torch.as_tensor(c)[..., :1], "not square"), Mut(lambda c: torch.as_tensor(c)[:1], "one component"),
                         Mut(lambda c: -torch.as_tensor(c), "negated")]),
        poked(),
    )


def grids() -> st.SearchStrategy:
    """Grids that increase, hold one point, repeat a time, leave [0, 1], hold NaN or have two dimensions."""
    return st.one_of(
        st.sampled_from([
            Mut(lambda g: g.flip(0), "increasing"),
            Mut(lambda g: g[:1], "one point"),
            Mut(lambda g: g[:0], "empty"),
            Mut(lambda g: torch.cat([g[:1], g]), "a repeated time"),
            Mut(lambda g: g[None], "two dimensions"),
            Mut(lambda g: "grid", "a string"),
        ]),
        st.builds(lambda a: Mut(lambda g: torch.cat([torch.tensor([1.0 + a], dtype=g.dtype), g]), f"starts at {1 + a:.3g}"),
                  st.floats(1e-6, 1e6)),
        st.builds(lambda a: Mut(lambda g: torch.cat([g, torch.tensor([-a], dtype=g.dtype)]), f"ends at {-a:.3g}"),
                  st.floats(1e-6, 1e6)),
        poked(),
    )


def broken_models(prediction: str = "eps") -> st.SearchStrategy:
    """A model that returns NaN (somewhere) or inf, or is not callable."""
    def nan_model(row: int, v: float):
        def fn(x, t, **kw):
            out = torch.zeros_like(x)
            out[row % x.shape[0]] = v
            return out
        return function_model(fn, prediction)

    return st.one_of(st.builds(nan_model, st.integers(0, 100), NONFINITE), st.sampled_from([3, "model", None]))


def wrong_shape_models(prediction: str = "eps") -> st.SearchStrategy:
    """A model whose output has the wrong shape: (B, 1), (B, D + 1), (1, D) or a scalar."""
    shapes = {"(B, 1)": lambda x: x[:, :1], "(B, D + 1)": lambda x: torch.cat([x, x[:, :1]], 1), "(1, D)": lambda x: x[:1],
              "scalar": lambda x: x.sum()}
    return st.sampled_from([function_model(lambda x, t, f=f, **kw: 0.5 * f(x), prediction) for f in shapes.values()])
