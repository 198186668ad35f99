"""How close diffusers' schedulers come to the exact answer, beside diffcheck's samplers on the same grids.

One module per job: ``cases`` (the configurations and the report's tolerances),
``measure`` (exact output laws, Monte Carlo, two-sample tests, orders, verdicts),
``probes_tables`` and ``probes_steps`` (known traps, each returning the checks' ``Record``
through ``findings``), ``report`` (``verify_diffusers``: everything assembled into one
JSON-safe dictionary), ``text`` (``format_report``) and ``__main__`` (the command line).
"""

from __future__ import annotations

from .. import diffusers as A  # noqa: F401  the adapter the report drives
from .cases import (  # noqa: F401
    DEFAULT_STEPS,
    FLOAT32_AFFINE_RTOL,
    FLOAT32_AGREEMENT,
    FLOAT64_AFFINE_RTOL,
    FLOAT64_AGREEMENT,
    NARROW_STD,
    ORDER_FLOOR,
    ORDER_SLACK,
    QUICK,
    QUICK_STEPS,
    TARGET_COV,
    TARGET_MEAN,
    Case,
    Comparator,
    cases,
    quick_cases,
)
from .findings import to_json as finding_json  # noqa: F401
from .measure import law_distance, measure, measure_case, measure_monte_carlo, two_sample  # noqa: F401
from .probes_steps import (  # noqa: F401
    probe_final_step_cap,
    probe_karras_rounding,
    probe_learned_range,
    probe_pndm,
    probe_score_sde_ve,
    probe_second_order_v,
)
from .probes_tables import (  # noqa: F401
    probe_ddim_previous,
    probe_ddpm_final_noise,
    probe_final_alpha,
    probe_float32_tables,
    probe_leading,
    probe_terminal_snr,
    probe_zero_snr_patch,
)
from .report import verify_diffusers
from .text import format_report

__all__ = [
    "DEFAULT_STEPS",
    "QUICK_STEPS",
    "Comparator",
    "Case",
    "cases",
    "quick_cases",
    "law_distance",
    "measure",
    "verify_diffusers",
    "format_report",
]
