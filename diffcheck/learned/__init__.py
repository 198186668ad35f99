"""Learned toy models checked against the exact answers: denoisers trained with each objective, noisy classifiers
and classifier-free guidance networks, and the errors that measure them.

>>> trained = train_toy(Recipe(preset="two_modes", objective=DDPMSimple(), steps=3000))      # doctest: +SKIP
>>> score_error(trained.model, trained.mixture, trained.process, 0.1, 20000, torch.Generator())  # doctest: +SKIP
"""

from .errors import (
    RelativeError,
    classifier_gradient_error,
    guided_eps_error,
    implicit_classifier_error,
    joint_sample,
    optimal_log_variance,
    relative_error,
    rms_error,
    score_error,
    variance_error,
)
from .model import ToyClassifierModel, ToyModel, noise_input
from .objectives import EVAL_LEVELS, ContinuousVE, ContinuousVP, DDPMSimple, Hybrid, NCSNLadder, Objective, describe
from .train import CFGRecipe, ClassifierRecipe, Recipe, Trained, data_std, draw_times, train_cfg, train_classifier, train_toy, training_set

__all__ = [
    "Recipe", "ClassifierRecipe", "CFGRecipe", "Trained", "train_toy", "train_classifier", "train_cfg",
    "training_set", "data_std", "draw_times",
    "Objective", "NCSNLadder", "DDPMSimple", "Hybrid", "ContinuousVP", "ContinuousVE", "EVAL_LEVELS", "describe",
    "ToyModel", "ToyClassifierModel", "noise_input",
    "RelativeError", "relative_error", "rms_error", "score_error", "classifier_gradient_error", "guided_eps_error",
    "implicit_classifier_error", "variance_error", "optimal_log_variance", "joint_sample",
]
