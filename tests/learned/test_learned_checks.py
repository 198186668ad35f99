"""Each learned-model check fails when the training is broken (the checks themselves pass in tests/test_checks.py).

The wrong models: the check's own two-mode model measured against another preset (the cached training is shared
with the passing check), a classifier whose zero learning rate leaves it at its initial weights (which a few steps
show as well as 1500), and a CFG network never trained without its label. Errors are estimated from n = 4000 draws:
the wrong models' errors sit many times their standard errors above the bounds (and the passing parts below them).
"""

import dataclasses

from diffcheck.checks import learned

N = 4000


def test_score_check_fails_for_a_model_of_another_preset():
    rec = learned.learned_score(preset="three_classes", n=N)
    assert not rec.passed
    failures = rec.details["failures"]
    assert sum("not below" in f for f in failures) == 4  # every noise level
    assert any(f.startswith("learned samples") for f in failures)
    assert not any(f.startswith("exact-model samples") for f in failures)  # the control still passes


def test_classifier_check_fails_with_a_zero_learning_rate():
    rec = learned.learned_classifier(recipe=dataclasses.replace(learned.CLASSIFIER_RECIPE, lr=0.0, steps=10), n=N)
    assert not rec.passed
    assert sum("not below" in f for f in rec.details["failures"]) == 4


def test_cfg_check_fails_without_unconditional_training():
    # p_uncond = 0 never trains the null label: eps(z, c) is learned (w = 0 passes) but eps(z) is not
    rec = learned.learned_cfg(recipe=dataclasses.replace(learned.CFG_RECIPE, p_uncond=0.0), n=N)
    assert not rec.passed
    failures = rec.details["failures"]
    assert not any(f.startswith("w=0 ") for f in failures)
    assert sum(f.startswith("w=1 ") and "not below" in f for f in failures) == 4
    assert sum(f.startswith("w=4 ") and "not below" in f for f in failures) == 4
