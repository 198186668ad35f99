"""diffcheck: score-based and diffusion models of 2019-2022, verified against exact answers.

``import diffcheck as dc`` gives the public core by name: the processes and grids of
``diffcheck.process`` (``dc.VP``, ``dc.DiscreteVP``, ``dc.uniform_grid``, ...), the exact
model (``dc.ExactModel``), the samplers of ``diffcheck.samplers`` (``dc.ddim``,
``dc.heun_ode``, ...) and the assertions of ``diffcheck.testing``
(``dc.assert_samples_match``, ``dc.affine_law``, ...). Each loads on first use, so that
``import diffcheck`` (and with it the pytest plugin and the command line) costs nothing.

Layers (imports point downward only): ``toy`` (ground truth) -> ``diffcheck.process``,
``diffcheck.param``, ``diffcheck.exact`` -> samplers, losses, nets -> adapters, checks ->
``diffcheck.cli`` and ``diffcheck.plots``. This face only looks down.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

__version__ = "0.1.0"

# The modules whose public names the package re-exports, in the order a name is looked up.
_FACES = ("process", "exact", "samplers", "testing")
_EXACT = ("ExactModel",)


def _names(face: str) -> tuple[str, ...]:
    module = importlib.import_module(f"{__name__}.{face}")
    return _EXACT if face == "exact" else tuple(getattr(module, "__all__", ()))


def __getattr__(name: str) -> Any:
    if name == "__all__":
        return sorted({n for face in _FACES for n in _names(face)})
    if name.startswith("_"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a submodule: load it alone
        return importlib.import_module(f"{__name__}.{name}")
    for face in _FACES:
        if name in _names(face):
            value = getattr(importlib.import_module(f"{__name__}.{face}"), name)
            globals()[name] = value  # later look-ups skip this function
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {n for face in _FACES for n in _names(face)})
