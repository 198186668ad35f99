"""diffcheck: score-based and diffusion models of 2019-2022, verified against exact answers.

Layers (imports point downward only): ``toy`` (ground truth) -> ``diffcheck.process``,
``diffcheck.param``, ``diffcheck.exact`` -> samplers, losses, nets -> ``diffcheck.cli``
and ``diffcheck.plots``.
"""

__version__ = "0.1.0"
