"""Calibration of the statistical assertions, the default suite's quick version: 200 seeds at alpha = 0.05.

The slow suite (``test_calibration.py``) runs the same cases over 1000 seeds at the default sample
sizes and measures power; here the samples are small (n = 200) so that it takes seconds. An exact
test's count of rejections must be a plausible Binomial(200, 0.05) draw, a Bonferroni combination's
must not exceed its upper end (both at probability 1e-4).
"""

import pytest

from diffcheck.testing.calibration import RejectionRate, rejection_rate

from calibration_cases import null_cases

SEEDS = 200
ALPHA = 0.05


@pytest.mark.parametrize("case", null_cases(fast=True), ids=lambda c: c.name)
def test_false_alarm_rate_is_alpha(case):
    r = rejection_rate(lambda seed: case.run(seed, ALPHA), range(SEEDS), alpha=ALPHA, name=case.name)
    assert (r.calibrated() if case.exact else r.valid()), str(r)


def test_the_rate_check_itself_fails_on_a_test_of_the_wrong_size():
    # 200 seeds resolve a size above about 0.12 (24 rejections, the Binomial(200, 0.05) upper end at 1e-4): a
    # "test" of size 0.2 claiming alpha = 0.05 is caught; one that never rejects is valid (conservative), not calibrated
    import torch

    def loose(seed):
        return bool(torch.rand(1, generator=torch.Generator().manual_seed(seed)) >= 0.2)

    r = rejection_rate(loose, range(SEEDS), alpha=ALPHA, name="size 0.2")
    assert not r.valid() and not r.calibrated()
    never = RejectionRate("never rejects", SEEDS, 0, ALPHA)
    assert never.valid() and not never.calibrated()
    assert "0/200 rejected" in str(never) and "alpha = 0.05" in str(never)
