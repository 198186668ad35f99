"""Each learned-model check fails when the training is broken (the checks themselves pass in tests/test_checks.py)."""

import dataclasses

from diffcheck.checks import learned


def test_score_check_fails_for_a_model_trained_on_another_preset():
    wrong = dataclasses.replace(learned.SCORE_RECIPE, preset="three_classes")
    rec = learned.learned_score(recipe=wrong)
    assert not rec.passed
    failures = rec.details["failures"]
    assert sum("not below" in f for f in failures) == 4  # every noise level
    assert any(f.startswith("learned samples") for f in failures)
    assert not any(f.startswith("exact-model samples") for f in failures)  # the control still passes


def test_classifier_check_fails_with_a_zero_learning_rate():
    rec = learned.learned_classifier(recipe=dataclasses.replace(learned.CLASSIFIER_RECIPE, lr=0.0))
    assert not rec.passed
    assert sum("not below" in f for f in rec.details["failures"]) == 4


def test_cfg_check_fails_without_unconditional_training():
    # p_uncond = 0 never trains the null label: eps(z, c) is learned (w = 0 passes) but eps(z) is not
    rec = learned.learned_cfg(recipe=dataclasses.replace(learned.CFG_RECIPE, p_uncond=0.0))
    assert not rec.passed
    failures = rec.details["failures"]
    assert not any(f.startswith("w=0 ") for f in failures)
    assert sum(f.startswith("w=1 ") and "not below" in f for f in failures) == 4
    assert sum(f.startswith("w=4 ") and "not below" in f for f in failures) == 4
