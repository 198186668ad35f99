"""Calibration of the statistical assertions (slow): false-alarm rates over 1000 seeds, power against wrong samplers.

Each null case runs on exact samples at alpha = 0.05 (so that 1000 seeds resolve the rate): an exact
test's count of rejections must be a plausible Binomial(1000, 0.05) draw, a Bonferroni combination's
must not exceed that distribution's upper end (both at probability 1e-4, so a calibrated test fails
here by chance with probability below 1e-4). Each power case runs an assertion at its default alpha
(1e-3) and n (2000) on a deliberately wrong sampler's output.
"""

import pytest

from diffcheck.testing.calibration import rejection_rate

from calibration_cases import ALPHA, CATCHES, DEFAULT_ALPHA, MIN_POWER, POWER_SEEDS, SEEDS, null_cases, power_cases

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("case", null_cases(), ids=lambda c: c.name)
def test_false_alarm_rate_is_alpha(case):
    r = rejection_rate(lambda seed: case.run(seed, ALPHA), range(SEEDS), alpha=ALPHA, name=case.name)
    assert (r.calibrated() if case.exact else r.valid()), str(r)


@pytest.mark.parametrize("case", power_cases(POWER_SEEDS), ids=lambda c: f"{c.assertion} vs {c.wrong}")
def test_power_against_the_wrong_samplers(case):
    r = rejection_rate(case.run, range(POWER_SEEDS), alpha=DEFAULT_ALPHA, name=f"{case.assertion} vs {case.wrong}")
    if "null case" in case.wrong:
        assert r.valid(), str(r)
    elif (case.assertion, case.wrong) in CATCHES:
        assert r.interval[0] >= MIN_POWER, str(r)
