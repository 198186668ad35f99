"""The law check's step counts follow from its resolution: each sampler's exact discretisation KL on every preset
component is within law_resolution at the check's n and Bonferroni level, and the next smaller count is not."""

import pytest

from diffcheck.checks import sampler_steps
from diffcheck.checks import samplers as checks

LADDER = (50, 100, 250, 500, 1000)
N, ALPHA = 2000, 1e-3
EACH = ALPHA / (2 * len(checks._cases()) * len(checks._presets()))
DEFAULT = ("heun_ode VE",)  # seconds; the other counts take tens of seconds to hundreds of exact laws each


def _params():
    return [pytest.param(label, marks=() if label in DEFAULT else pytest.mark.slow, id=label) for label in checks.STEPS]


def _case(label, steps):
    return next(c for c in checks._cases({label: steps}) if c.name.startswith(label + ","))


@pytest.mark.parametrize("label", _params())
def test_step_count_resolves_the_law_check(label):
    steps = checks.STEPS[label]
    case = _case(label, steps)
    ratio, where = sampler_steps.worst_ratio(case, case.grid, checks._presets(), N, EACH)
    assert ratio <= 1.0, f"{label} at {steps} steps: KL {ratio:.3g} x the resolution on {where}"
    below = [k for k in LADDER if k < steps]
    if below:  # the count is the smallest of the ladder that resolves
        coarser = _case(label, below[-1])
        assert sampler_steps.worst_ratio(coarser, coarser.grid, checks._presets(), N, EACH)[0] > 1.0


def test_component_kl_sees_a_wrong_sampler():
    # a step count far too small: Euler-Maruyama in 10 steps is well beyond the resolution on the narrow ring
    case = _case("euler_maruyama VP", 10)
    assert sampler_steps.worst_ratio(case, case.grid, checks._presets(), N, EACH)[0] > 10.0
