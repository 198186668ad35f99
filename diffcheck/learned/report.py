"""Measure trained toy models against the exact answers and tabulate the results.

:func:`score_report` measures one trained denoiser: the relative L2 error of its score under p_t at the objective's
comparison times, before and after training; for a learned variance the error of log Sigma against the optimal
variance; and a two-sample test of its samples against fresh data, beside the same test of the same sampler run on
the exact model (the control: a sampler that fails with the exact score says nothing about the network).
:func:`error_table` trains and measures a list of recipes and writes ``table.json`` and ``table.md`` atomically.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm import tqdm

from toy.validate import check_float, check_int

from ..exact import ExactModel
from ..io import write_json, write_text
from ..testing.stats import TestResult, two_sample_test
from .errors import RelativeError, score_error, variance_error
from .objectives import ContinuousVE, ContinuousVP, DDPMSimple, Hybrid, NCSNLadder, describe
from .train import Recipe, Trained, train_toy

__all__ = ["ScoreReport", "score_report", "sample_test", "error_table", "markdown_table", "table_recipes", "TABLE_PRESETS"]

TABLE_PRESETS = ("two_modes", "three_classes", "ring", "grid", "anisotropic", "narrow", "single_gaussian", "ar1_video")
"""Every preset of ``toy``, each with its default parameters."""


def table_recipes(presets: Sequence[str] = TABLE_PRESETS, objectives: Sequence[Any] | None = None, *,
                  steps: int = 4000, seed: int = 0, **fields: Any) -> list[Recipe]:
    """One recipe per preset x objective (default: every objective with its default settings): the checks' network
    trained 4000 steps."""
    if objectives is None:
        objectives = (NCSNLadder(), DDPMSimple(), Hybrid(), ContinuousVP(), ContinuousVE())
    return [Recipe(preset=p, objective=o, steps=steps, seed=seed, **fields)
            for p in presets for o in objectives]


@dataclasses.dataclass(frozen=True)
class ScoreReport:
    """One trained denoiser measured against the exact answers (see the module docstring)."""

    preset: str
    objective: str
    steps: int
    times: list[float]
    levels: list[float]
    errors: list[RelativeError]
    initial: list[RelativeError]
    variance: list[RelativeError] | None
    variance_initial: list[RelativeError] | None
    samples: TestResult | None
    control: TestResult | None
    train_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        test = lambda r: None if r is None else {"passed": r.passed, "p_value": r.p_value, "alpha": r.alpha, "n": list(r.n)}
        return {
            "preset": self.preset, "objective": self.objective, "steps": self.steps, "times": self.times,
            "levels": self.levels, "errors": [e.to_dict() for e in self.errors],
            "initial": [e.to_dict() for e in self.initial],
            "variance": None if self.variance is None else [e.to_dict() for e in self.variance],
            "variance_initial": None if self.variance_initial is None else [e.to_dict() for e in self.variance_initial],
            "samples": test(self.samples), "control": test(self.control), "train_seconds": self.train_seconds,
        }


def sample_test(model: Any, trained: Trained, n: int, alpha: float, generator: torch.Generator) -> TestResult:
    """Two-sample test (sliced KS with the exact log-density as a feature) of n samples of ``model`` drawn with the
    recipe's sampler against n fresh draws of the data.

    The sampler starts from the exact marginal at its first time, not from the prior, so that the test sees the
    learned score alone: the prior's own mismatch (alpha(1) E[x_0] is 0.02 for the VP SDE on the two-mode toy,
    E[x_0] against sigma_max for VE) is a property of the process, not of the network.
    """
    mixture, process = trained.mixture, trained.process
    with torch.no_grad():
        x = trained.recipe.objective.sample(model, process, n, generator, dim=mixture.dim, data_std=trained.data_std,
                                            start=mixture)
    return two_sample_test(x, mixture.sample(n, generator), alpha=alpha, features=mixture.log_prob,
                           generator=torch.Generator().manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator))))


def score_report(trained: Trained, *, n: int = 20000, n_samples: int = 2000, alpha: float = 0.01, seed: int = 0,
                 samples: bool = True) -> ScoreReport:
    """Measure a trained denoiser (``train_toy``'s result) with ``n`` draws per time and ``n_samples`` samples."""
    if not isinstance(trained, Trained) or not isinstance(trained.recipe, Recipe):
        raise TypeError("trained must be the result of train_toy")
    n = check_int(n, "n", minimum=2)
    n_samples = check_int(n_samples, "n_samples", minimum=2)
    alpha = check_float(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)
    objective, process, mixture = trained.recipe.objective, trained.process, trained.mixture
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    times = objective.eval_times(process, trained.data_std)
    errors = [score_error(trained.model, mixture, process, t, n, gen) for t in times.tolist()]
    initial = [score_error(trained.initial, mixture, process, t, n, gen) for t in times.tolist()]
    variance = variance_initial = None
    if isinstance(objective, Hybrid):
        schedule = objective.schedule(process)  # type: ignore[arg-type]
        steps = [max(2, round(t * schedule.num_steps)) for t in times.tolist()]
        variance = [variance_error(trained.model, mixture, schedule, s, n, gen) for s in steps]
        variance_initial = [variance_error(trained.initial, mixture, schedule, s, n, gen) for s in steps]
    test = control = None
    if samples:
        test = sample_test(trained.model, trained, n_samples, alpha, gen)
        control = sample_test(ExactModel(mixture, process, objective.prediction), trained, n_samples, alpha, gen)
    return ScoreReport(trained.recipe.preset, objective.name, trained.recipe.steps, times.tolist(),
                       process.edm_sigma(times).tolist(), errors, initial, variance, variance_initial, test, control,
                       trained.seconds)


def markdown_table(reports: Sequence[ScoreReport]) -> str:
    """A markdown table: one row per (preset, objective), the errors at each comparison level."""
    rows = ["| preset | objective | steps | relative score error at sigma/alpha (± s.e.) | at init | log-variance RMS | samples p (control p) |",
            "|---|---|---|---|---|---|---|"]
    for r in reports:
        errs = "; ".join(f"{lv:.3g}: {e.value:.3f}±{e.se:.3f}" for lv, e in zip(r.levels, r.errors))
        init = ", ".join(f"{e.value:.2f}" for e in r.initial)
        var = "-" if r.variance is None else (", ".join(f"{e.value:.3f}" for e in r.variance) + " (init "
                                              + ", ".join(f"{e.value:.3f}" for e in r.variance_initial or []) + ")")
        p = "-" if r.samples is None else f"{r.samples.p_value:.3g} ({r.control.p_value:.3g})"  # type: ignore[union-attr]
        rows.append(f"| {r.preset} | {r.objective} | {r.steps} | {errs} | {init} | {var} | {p} |")
    return "\n".join(rows) + "\n"


def error_table(recipes: Sequence[Recipe], *, progress: bool = True, out_dir: str | Path | None = None,
                n: int = 20000, n_samples: int = 2000, alpha: float = 0.01) -> list[ScoreReport]:
    """Train and measure every recipe (a bar over recipes, and each training's own bar, on stderr); with ``out_dir``
    write ``table.json`` and ``table.md`` there after every recipe (atomically), and checkpoint each training under
    ``out_dir/runs/`` so that a second call resumes."""
    recipes = list(recipes)
    if not all(isinstance(r, Recipe) for r in recipes):
        raise TypeError("recipes must be Recipe instances")
    out = None if out_dir is None else Path(out_dir)
    reports: list[ScoreReport] = []
    bar = tqdm(recipes, desc="recipes", file=sys.stderr, disable=not progress)
    for i, recipe in enumerate(bar):
        bar.set_postfix_str(f"{recipe.preset}/{recipe.objective.name}")
        # with out_dir each training checkpoints into its own folder, so that a second call resumes
        run_dir = None if out is None else out / "runs" / f"{i:02d}-{recipe.preset}-{recipe.objective.name}"
        trained = train_toy(recipe, progress=progress, out_dir=run_dir)
        reports.append(score_report(trained, n=n, n_samples=n_samples, alpha=alpha))
        if out is not None:
            write_json(out / "table.json", {"recipes": [r.to_json() for r in recipes[: len(reports)]],
                                            "objectives": [describe(r.objective) for r in recipes[: len(reports)]],
                                            "reports": [r.to_dict() for r in reports]})
            write_text(out / "table.md", markdown_table(reports))
    return reports
