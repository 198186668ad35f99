"""Training toy models: deterministic given the seed, resumable, label dropout as specified, each objective runs."""

import dataclasses
import json

import pytest
import torch

import toy
from diffcheck.exact import ExactModel
from diffcheck.learned import (
    EVAL_LEVELS,
    CFGRecipe,
    ClassifierRecipe,
    ContinuousVE,
    ContinuousVP,
    DDPMSimple,
    Hybrid,
    NCSNLadder,
    Recipe,
    data_std,
    draw_times,
    train_cfg,
    train_classifier,
    train_toy,
    training_set,
)
from diffcheck.learned.objectives import ode_grid, technique1_sigma_max
from diffcheck.learned.report import markdown_table, score_report
from diffcheck.process import VP, DiscreteVP

SMALL = dict(steps=12, batch_size=32, n_data=256, hidden=16, blocks=1, embed_dim=8, warmup_steps=2)
OBJECTIVES = [NCSNLadder(levels=5), DDPMSimple(T=100), Hybrid(T=100), ContinuousVP(), ContinuousVE()]


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("objective", OBJECTIVES, ids=lambda o: o.name)
def test_every_objective_trains_deterministically(objective):
    recipe = Recipe(preset="anisotropic", objective=objective, **SMALL)
    state = torch.get_rng_state()
    one, two = train_toy(recipe, progress=False), train_toy(recipe, progress=False)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's global generator is untouched
    assert _same_weights(one.model, two.model) and _same_weights(one.last, two.last)
    assert not _same_weights(one.model, one.initial)  # it did train
    assert len(one.losses) == SMALL["steps"] and all(torch.isfinite(torch.tensor(one.losses)))
    other = train_toy(dataclasses.replace(recipe, seed=1), progress=False)
    assert not _same_weights(one.model, other.model)


def test_classifier_and_cfg_train_deterministically():
    for recipe, fit in ((ClassifierRecipe(**SMALL), train_classifier), (CFGRecipe(**SMALL), train_cfg)):
        one, two = fit(recipe, progress=False), fit(recipe, progress=False)
        assert _same_weights(one.model, two.model)
        assert not _same_weights(one.model, one.initial)


@pytest.mark.parametrize("p_uncond, untouched", [(0.0, "null"), (1.0, "classes")])
def test_label_dropout_trains_only_the_labels_it_feeds(p_uncond, untouched):
    # p = 0 never feeds the null label, p = 1 feeds nothing else: those embedding rows get no gradient and stay put
    trained = train_cfg(CFGRecipe(p_uncond=p_uncond, **SMALL), progress=False)
    before = trained.initial.net.label.weight
    after = trained.last.net.label.weight
    null = trained.last.net.null_label
    rows = [null] if untouched == "null" else list(range(null))
    moved = [r for r in range(null + 1) if r not in rows]
    assert torch.equal(after[rows], before[rows])
    assert all(not torch.equal(after[r], before[r]) for r in moved)


def test_progress_bar_and_atomic_outputs_and_resume(tmp_path, capfd):
    recipe = Recipe(preset="two_modes", objective=DDPMSimple(T=100), **SMALL)
    first = train_toy(recipe, progress=True, out_dir=tmp_path)
    assert "training" in capfd.readouterr().err
    saved = json.loads((tmp_path / "recipe.json").read_text())
    assert saved["preset"] == "two_modes" and saved["objective"]["objective"] == "ddpm"
    assert (tmp_path / "log.jsonl").exists() and (tmp_path / "checkpoints" / "latest.json").exists()
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))
    # continuing to more steps from the checkpoint gives what one uninterrupted run gives
    longer = dataclasses.replace(recipe, steps=2 * SMALL["steps"])
    resumed = train_toy(longer, progress=False, out_dir=tmp_path)
    fresh = train_toy(longer, progress=False)
    assert _same_weights(resumed.model, fresh.model) and _same_weights(resumed.last, fresh.last)
    assert not _same_weights(first.model, fresh.model)


@pytest.mark.parametrize("kw, name", [
    (dict(preset="spiral"), "preset"), (dict(lr=-1.0), "lr"), (dict(steps=-1), "steps"), (dict(n_data=8), "n_data"),
])
def test_recipe_errors_name_the_argument(kw, name):
    with pytest.raises((ValueError, TypeError), match=name):
        Recipe(**kw)


def test_recipe_type_errors():
    with pytest.raises(TypeError, match="objective"):
        Recipe(objective="ddpm")
    with pytest.raises(TypeError, match="process"):
        ClassifierRecipe(process="vp")
    with pytest.raises(ValueError, match="p_uncond"):
        CFGRecipe(p_uncond=1.5)
    with pytest.raises(TypeError, match="Recipe"):
        train_toy(ClassifierRecipe())


def test_training_set_and_times(gen):
    m = toy.three_classes()
    x, y = training_set(m, 3000, 4, labels=True)
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and set(y.tolist()) == {0, 1, 2}
    assert torch.equal(x, training_set(m, 3000, 4))  # the same draw with or without labels
    # the standard deviation per coordinate, sqrt(tr Cov / D), within 5 standard errors of the exact one
    exact = float(m.covariance().diagonal().mean().sqrt())
    assert abs(data_std(x) - exact) < 5 * exact / (2 * 3000) ** 0.5
    t = draw_times(DiscreteVP.linear(50), 1000, gen)
    assert torch.allclose(t * 50, torch.round(t * 50), rtol=0, atol=1e-12) and float(t.min()) >= 1 / 50
    t = draw_times(VP(), 1000, gen)
    assert float(t.min()) >= VP().t_eps and float(t.max()) <= 1.0


def test_objective_processes_and_comparison_times():
    m = toy.two_modes()
    data = training_set(m, 3000, 0)
    std = data_std(data)
    top = float(torch.cdist(data[:2000].double(), data[:2000].double()).max())
    assert technique1_sigma_max(data) == pytest.approx(top, rel=1e-12)
    ncsn = NCSNLadder()
    ve = ncsn.process(data)
    ladder = ncsn.ladder(ve)
    assert float(ladder[0]) == pytest.approx(top, rel=1e-12) and float(ladder[-1]) == pytest.approx(ncsn.sigma_min)
    # continuous objectives compare at sigma/alpha = EVAL_LEVELS x std exactly
    for objective in (ContinuousVP(), ContinuousVE()):
        p = objective.process(data)
        got = p.edm_sigma(objective.eval_times(p, std))
        assert torch.allclose(got, torch.tensor(EVAL_LEVELS, dtype=torch.float64) * std, rtol=1e-9)
    # discrete ones at the nearest step, ladders at the nearest level (in log sigma)
    for objective, process in ((DDPMSimple(), DDPMSimple().process(data)), (ncsn, ve)):
        t = objective.eval_times(process, std)
        levels = process.edm_sigma(t)
        candidates = ladder if objective is ncsn else process.edm_sigma(process.times(torch.arange(1, process.T + 1)))
        for lv, want in zip(levels.sort().values, sorted(EVAL_LEVELS)):
            best = (torch.log(candidates) - torch.log(torch.tensor(want * std))).abs().min()
            assert abs(float(torch.log(lv)) - float(torch.log(torch.tensor(want * std)))) == pytest.approx(float(best), abs=1e-9)


def test_ode_grid_runs_from_one_to_zero():
    for p in (VP(), ContinuousVE().process(training_set(toy.ring(), 2000, 0))):
        g = ode_grid(p, 20, 1.0)
        assert float(g[0]) == 1.0 and float(g[-1]) == 0.0 and bool((g[1:] < g[:-1]).all()) and g.numel() == 21  # 20 steps


@pytest.mark.parametrize("objective", OBJECTIVES, ids=lambda o: o.name)
def test_every_objective_samples_from_an_exact_model(objective, gen):
    m = toy.anisotropic()
    data = training_set(m, 2000, 0)
    p = objective.process(data)
    small = dataclasses.replace(objective, steps_per_level=2) if isinstance(objective, NCSNLadder) else objective
    x = small.sample(ExactModel(m, p, objective.prediction), p, 64, gen, dim=2, data_std=data_std(data))
    assert x.shape == (64, 2) and x.dtype == torch.float64 and bool(torch.isfinite(x).all())


def test_score_report_and_table():
    trained = train_toy(Recipe(preset="ring", objective=Hybrid(T=100), **SMALL), progress=False)
    report = score_report(trained, n=200, n_samples=100)
    assert len(report.errors) == len(report.initial) == len(report.variance) == 4
    assert report.samples is not None and report.control is not None
    row = markdown_table([report]).splitlines()[-1]
    assert row.startswith("| ring | hybrid | 12 |")
    assert json.dumps(report.to_dict())
