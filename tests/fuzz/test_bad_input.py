"""Every public constructor and function refuses bad input with an error that names the argument (fuzzed).

For every (target, argument) pair of the fuzz table, hypothesis draws bad values (non-finite numbers,
wrong types and dtypes, asymmetric or indefinite covariances, weights not summing to one, shapes that
do not fit, reversed sigma ranges, grids not decreasing or of one point, betas outside (0, 1), times
outside [0, 1], NaN guidance scales, models returning NaN, truncated or garbage checkpoint files)
and each call must be ``clear``: a ValueError, TypeError or the project's own error naming the
argument, never another exception (a traceback from inside torch) and never a returned result. The
default suite draws a few values per pair; the slow version many more. ``python tests/fuzz/counts.py``
prints the counts.
"""

import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import classify
from targets_samplers import all_targets

PAIRS = [(t, b) for t in all_targets() for b in t.bad]
IDS = [f"{t.name}-{b.arg}-{b.what}" for t, b in PAIRS]


def _check(target, bad, data):
    value = data.draw(bad.values, label=bad.arg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        verdict = classify(target, bad, value)
    assert verdict.verdict == "clear", str(verdict)


@pytest.mark.parametrize("target,bad", PAIRS, ids=IDS)
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_bad_input_gets_a_clear_error(target, bad, data):
    _check(target, bad, data)


@pytest.mark.slow
@pytest.mark.parametrize("target,bad", PAIRS, ids=IDS)
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_bad_input_gets_a_clear_error_many_draws(target, bad, data):
    _check(target, bad, data)


def test_the_verdicts_can_fail():
    # the classifier itself: a silent return, an unnamed error and a foreign exception are not clear
    from hypothesis import strategies as s

    from harness import Bad, Target

    def accepts(x):
        return x

    def unnamed(x):
        raise ValueError("something is wrong")

    def foreign(x):
        raise RuntimeError("The size of tensor a (2) must match the size of tensor b (3)")

    def named(x):
        raise ValueError(f"x must be finite, got {x}")

    bad = Bad("x", s.just(float("nan")))
    verdicts = [classify(Target(f.__name__, f, dict, (bad,)), bad, float("nan")).verdict for f in (accepts, unnamed, foreign, named)]
    assert verdicts == ["silent", "unclear", "unclear", "clear"]
