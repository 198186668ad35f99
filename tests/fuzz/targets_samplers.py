"""Fuzz targets above the processes: every sampler, guidance, losses, ELBO terms, the training config, checkpoint loaders."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import torch
from hypothesis import strategies as st

import toy
from diffcheck import elbo, losses, vlb
from diffcheck import process as P
from diffcheck import samplers as S
from diffcheck.exact import ExactModel
from diffcheck.guidance import ClassifierFree, ClassifierGuided, ExactClassifier, classifier_guided_ancestral, tilted_log_density
from diffcheck.training.config import TrainConfig

from bad_values import broken_models, choice, grids, integer, poked, scalar, tensors_of_wrong_dtype, wrong_shape_models
from harness import Bad, Mut, Target
from targets_core import F64, _grid, _x

M = toy.three_classes()
VP, VE, DVP = P.VP(), P.VE(sigma_max=20.0), P.DiscreteVP.linear(50)
_X = st.one_of(poked(), tensors_of_wrong_dtype(), st.sampled_from([
    Mut(lambda x: x[:, 0], "no batch dimension"), Mut(lambda x: torch.cat([x, x[:, :1]], 1), "three coordinates for a 2D model"),
    Mut(lambda x: x.long(), "integer tensor")]))
_GEN = st.sampled_from(["seed", 1234, None, [torch.Generator()]])


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _base(process, pred: str = "eps", stochastic: bool = True, grid=_grid) -> dict:
    kw = {"model": ExactModel(M, process, pred), "process": process, "x": _x(), "grid": grid()}
    if stochastic:
        kw["generator"] = _gen()
    return kw


def _common(stochastic: bool = True, pred: str = "eps") -> tuple[Bad, ...]:
    bad = [Bad("model", broken_models(pred), names=("model", "non-finite"), what="model returning NaN/inf or not callable"),
           Bad("model", wrong_shape_models(pred), names=("model", "shape"), what="model output of the wrong shape"),
           Bad("process", st.sampled_from([None, "VP", M]), what="type"),
           Bad("x", _X, names=("x", "sample", "dimension"), what="samples"),
           Bad("grid", grids(), what="grid")]
    if stochastic:
        bad.append(Bad("generator", _GEN, what="generator"))
    return tuple(bad)


def _sampler(name, fn, process, stochastic=True, extra=(), options=None, pred="eps", grid=_grid):
    def valid():
        return {**_base(process, pred, stochastic, grid), **(options or {})}
    return Target(f"samplers.{name}", fn, valid, _common(stochastic, pred) + tuple(extra))


def _ladder() -> torch.Tensor:
    return P.sigma_grid(VE, torch.tensor([16.0, 4.0, 1.0], dtype=F64))  # geometric, as Song & Ermon 2020, technique 4 needs


def _invert(model, process, x, grid):
    return S.ddim_invert(model, process, x, grid)


def _langevin(model, process, x, grid, generator, t, step_size, n_steps):
    return S.langevin(model, process, x, t, step_size=step_size, n_steps=n_steps, generator=generator)


def sampler_targets() -> list[Target]:
    clip = Bad("clip_x0", st.sampled_from([(1.0, -1.0), (float("nan"), 1.0), "box", (1.0,), 3.0]), what="box")
    return [
        _sampler("ddpm_ancestral", S.ddpm_ancestral, DVP, extra=(Bad("variance", choice(), what="choice"), clip),
                 options={"variance": "beta_tilde", "clip_x0": None}),
        _sampler("vp_ancestral", S.vp_ancestral, VP),
        _sampler("ve_ancestral", S.ve_ancestral, VE, grid=_ladder),
        _sampler("ddim", S.ddim, DVP, extra=(Bad("eta", scalar(0.0, 1.5), what="eta outside [0, its largest valid value]"),),
                 options={"eta": 0.5}),
        Target("samplers.ddim_invert", _invert, lambda: _base(DVP, stochastic=False), _common(False)),
        _sampler("euler_maruyama", S.euler_maruyama, VP),
        _sampler("reverse_diffusion", S.reverse_diffusion, VP),
        _sampler("predictor_corrector", S.predictor_corrector, VP,
                 extra=(Bad("snr", scalar(0.0, include_low=True), what="scalar"), Bad("n_corrector", integer(0), what="integer"),
                        Bad("norm", choice(), what="choice")), options={"snr": 0.16, "n_corrector": 1, "norm": "batch"}),
        _sampler("euler_ode", S.euler_ode, VP, stochastic=False),
        _sampler("heun_ode", S.heun_ode, VP, stochastic=False),
        _sampler("adaptive_ode", S.adaptive_ode, VP, stochastic=False,
                 extra=(Bad("rtol", scalar(0.0, include_low=True), what="scalar"), Bad("atol", scalar(0.0, include_low=True), what="scalar"),
                        Bad("method", choice(), what="choice")), options={"rtol": 1e-3, "atol": 1e-3, "method": "RK45"}),
        _sampler("annealed_langevin", S.annealed_langevin, VE, grid=_ladder,
                 extra=(Bad("eps", scalar(0.0, include_low=True), what="scalar"), Bad("steps_per_level", integer(1), what="integer")),
                 options={"eps": 1e-3, "steps_per_level": 2}),
        _sampler("ncsnv2", S.ncsnv2, VE, grid=_ladder, extra=(Bad("steps_per_level", integer(1), what="integer"),),
                 options={"steps_per_level": 2}),
        Target("samplers.langevin", _langevin, lambda: {**_base(VE), "t": 0.5, "step_size": 0.01, "n_steps": 2},
               tuple(b for b in _common() if b.arg != "grid") + (
                   Bad("t", scalar(0.0, 1.0), what="time outside [0, 1]"), Bad("step_size", scalar(0.0, include_low=True), what="scalar"),
                   Bad("n_steps", integer(1), what="integer"))),
    ]


def _guided_ancestral(model, classifier, process, x, grid, y, scale, generator, variance):
    return classifier_guided_ancestral(model, classifier, process, x, grid, y, scale=scale, generator=generator, variance=variance)


def _cfg_call(model, process, w, x, t, y):
    return ClassifierFree(model, process, w)(x, t, y=y)


def _guided_call(model, classifier, process, scale, x, t, y):
    return ClassifierGuided(model, classifier, process, scale)(x, t, y=y)


def guidance_targets() -> list[Target]:
    labels = st.sampled_from([torch.tensor([0, 1, 7, 2]), torch.tensor([0.5, 1.0, 0.0, 2.0]), "a", torch.tensor([0, 1])])
    return [
        Target("ClassifierFree", _cfg_call, lambda: {"model": ExactModel(M, VP, "eps"), "process": VP, "w": 2.0, "x": _x(), "t": 0.5,
                                                     "y": torch.tensor([0, 1, 2, 0])}, (
            Bad("w", scalar(-1.0), what="guidance scale"), Bad("y", labels, names=("y", "label"), what="labels"))),
        Target("ClassifierGuided", _guided_call, lambda: {"model": ExactModel(M, VP, "eps"), "classifier": ExactClassifier(M, VP), "process": VP,
                                                          "scale": 2.0, "x": _x(), "t": 0.5, "y": torch.tensor([0, 1, 2, 0])}, (
            Bad("scale", scalar(0.0), what="guidance scale"), Bad("classifier", st.sampled_from([None, "clf", 3]), what="type"),
            Bad("y", labels, names=("y", "label"), what="labels"))),
        Target("classifier_guided_ancestral", _guided_ancestral,
               lambda: {**_base(DVP), "classifier": ExactClassifier(M, DVP), "y": 1, "scale": 2.0, "variance": "beta"},
               (Bad("scale", scalar(0.0), what="guidance scale"), Bad("variance", choice(), what="choice"),
                Bad("y", st.sampled_from([7, -1, 0.5, "a", None]), names=("y", "label"), what="labels")) + _common()),
        Target("tilted_log_density", tilted_log_density, lambda: {"mixture": M, "process": VP, "t": 0.5, "x": _x(), "c": 1, "w": 2.0}, (
            Bad("w", scalar(-1.0), what="guidance scale"), Bad("c", integer(0, 2), names=("c", "class", "label"), what="labels"),
            Bad("t", scalar(0.0, 1.0), what="time outside [0, 1]"))),
    ]


def _schedule():
    p = P.DiscreteVP.linear(20, 1e-3, 0.2)
    return P.discretize(p, torch.arange(21, dtype=F64) / 20)


_MODEL_BAD = (Bad("model", wrong_shape_models(), names=("model", "shape"), what="model output of the wrong shape"),)
_X0 = st.one_of(poked(), tensors_of_wrong_dtype(), st.sampled_from([Mut(lambda x: x[:, 0], "no batch dimension")]))
_T = st.one_of(scalar(0.0, 1.0), st.builds(lambda v: torch.tensor([0.5, 0.5, v, 0.5], dtype=F64), st.floats(1.0, 10.0, exclude_min=True)),
               st.sampled_from([Mut(lambda t: t[:2], "one time per two samples")]))
_STEP = st.one_of(integer(1, 20).filter(lambda v: v is not None), st.sampled_from([torch.tensor([1, 2, 30, 4]), torch.tensor([1, 2])]))


def _learned_variance():
    from diffcheck.variance import ExactLearnedVariance

    sched = _schedule()
    return ExactLearnedVariance(M, sched.process, sched.t.flip(0), "eps")


def _eight_bit() -> torch.Tensor:
    return torch.tensor([[0, 255], [128, 3], [77, 200], [254, 1]], dtype=F64) * 2 / 255 - 1


def loss_targets() -> list[Target]:
    def base():
        return {"model": ExactModel(M, VP, "eps"), "process": VP, "x0": _x(), "t": torch.full((4,), 0.5, dtype=F64)}

    def sched_base():
        return {"model": ExactModel(M, _schedule().process, "eps"), "schedule": _schedule(), "x0": _x()}

    x0_bad = Bad("x0", _X0, names=("x0", "x_0"), what="samples")
    return [
        Target("losses.eps_mse", losses.eps_mse, lambda: {**base(), "reduce": "sum"}, (
            x0_bad, Bad("t", _T, what="time outside [0, 1]"), Bad("reduce", choice(), what="choice"),
            Bad("eps", st.sampled_from([Mut(lambda e: _x()[:, :1], "wrong shape"), Mut(lambda e: _x()[:2], "two rows")]), what="noise")) + _MODEL_BAD),
        Target("losses.denoising_score_matching", losses.denoising_score_matching, lambda: {**base(), "weight": "sigma2"}, (
            x0_bad, Bad("t", _T, what="time outside [0, 1]"), Bad("weight", choice(), what="choice")) + _MODEL_BAD),
        Target("losses.score_sde_loss", losses.score_sde_loss, lambda: {**base(), "weighting": "sigma2", "t_eps": 1e-3, "t": None}, (
            x0_bad, Bad("weighting", choice(), what="choice"), Bad("t_eps", scalar(0.0, 1.0, include_high=True, none=False), what="scalar")) + _MODEL_BAD),
        Target("losses.sliced_score_matching", losses.sliced_score_matching, lambda: {**base(), "projections": 2, "distribution": "gaussian"}, (
            x0_bad, Bad("projections", integer(1), what="integer"), Bad("distribution", choice(), what="choice")) + _MODEL_BAD),
        Target("losses.ncsn_loss", losses.ncsn_loss, lambda: {"model": ExactModel(M, VE, "score"), "process": VE, "x0": _x(),
                                                              "sigmas": torch.tensor([15.0, 2.0, 0.5], dtype=F64), "generator": _gen()}, (
            x0_bad, Bad("sigmas", st.one_of(poked(), st.sampled_from([Mut(lambda s: -s, "negative"), Mut(lambda s: s[None], "two dimensions"),
                                                                     Mut(lambda s: s[:0], "empty")])), what="sigma ladder"))),
        Target("losses.simple_loss", losses.simple_loss, lambda: {**sched_base(), "steps": torch.tensor([1, 5, 10, 20])}, (
            x0_bad, Bad("steps", _STEP, names=("step",), what="steps outside the table"),
            Bad("schedule", st.sampled_from([None, VP, "schedule"]), what="type"))),
        Target("losses.hybrid_loss", losses.hybrid_loss, lambda: {**sched_base(), "model": _learned_variance(), "step": torch.tensor([1, 5, 10, 20]), "lam": 1e-3,
                                                                  "decoder": "gaussian", "cdf": "exact"}, (
            x0_bad, Bad("step", _STEP, what="steps outside the table"), Bad("lam", scalar(0.0), what="scalar"),
            Bad("decoder", choice(), what="choice"), Bad("cdf", choice(), what="choice"))),
        Target("vlb.vlb_term", vlb.vlb_term, lambda: {**sched_base(), "step": torch.tensor([1, 5, 10, 20]), "variance": "small",
                                                      "decoder": "gaussian", "cdf": "exact"}, (
            x0_bad, Bad("step", _STEP, what="steps outside the table"), Bad("variance", choice(), what="choice"),
            Bad("decoder", choice(), what="choice"), Bad("cdf", choice(), what="choice"))),
        Target("vlb.prior_kl", vlb.prior_kl, lambda: {"schedule": _schedule(), "x0": _x()}, (
            x0_bad, Bad("schedule", st.sampled_from([None, VP]), what="type"))),
        Target("vlb.posterior", vlb.posterior, lambda: {"schedule": _schedule(), "x0": _x(), "xt": _x(), "step": torch.tensor([1, 2, 3, 4])}, (
            x0_bad, Bad("xt", _X0, names=("xt", "x_t"), what="samples"), Bad("step", _STEP, what="steps outside the table"))),
        Target("vlb.discretized_log_likelihood", vlb.discretized_log_likelihood,
               lambda: {"x": _eight_bit(), "mean": _x() / 2, "log_scale": torch.full((4, 2), -2.0, dtype=F64), "cdf": "exact"}, (
            Bad("x", st.one_of(poked(), st.sampled_from([Mut(lambda x: x * 3, "outside [-1, 1]")])), what="data outside [-1, 1]"),
            Bad("log_scale", tensors_of_wrong_dtype(), what="type"), Bad("cdf", choice(), what="choice"))),
        Target("vlb.normal_kl", vlb.normal_kl, lambda: {"mean0": _x(), "log_var0": 0.0, "mean1": _x(), "log_var1": -1.0}, (
            Bad("mean0", st.sampled_from(["m", None]), what="type"), Bad("log_var1", st.sampled_from(["v", None]), what="type"))),
    ]


def elbo_targets() -> list[Target]:
    sched = _schedule()
    return [
        Target("elbo.prior_term", elbo.prior_term, lambda: {"mixture": M, "schedule": sched}, (
            Bad("mixture", st.sampled_from([None, "m", VP]), what="type"), Bad("schedule", st.sampled_from([None, VP]), what="type"))),
        Target("elbo.optimal_bound", elbo.optimal_bound, lambda: {"mixture": M, "schedule": sched, "n": 8, "generator": _gen(),
                                                                  "kind": "isotropic", "average": "posterior"}, (
            Bad("n", integer(1), what="integer"), Bad("kind", choice(), what="choice"), Bad("average", choice(), what="choice"))),
        Target("elbo.entropy_mc", elbo.entropy_mc, lambda: {"mixture": M, "n": 8, "generator": _gen()}, (Bad("n", integer(1), what="integer"),)),
        Target("elbo.entropy_grid", elbo.entropy_grid, lambda: {"mixture": M, "points_per_std": 2.0, "width": 4.0}, (
            Bad("points_per_std", scalar(0.0, include_low=True), what="scalar"), Bad("width", scalar(0.0, include_low=True), what="scalar"))),
        Target("elbo.sde_bound", elbo.sde_bound, lambda: {"mixture": M, "process": VP, "n": 4, "generator": _gen(), "nodes": 3, "levels": (0.1, 1.0)}, (
            Bad("n", integer(1), what="integer"), Bad("nodes", integer(1), what="integer"),
            Bad("levels", st.sampled_from([(-1.0,), (float("nan"),), (0.1, float("inf")), "a", ((0.1,),)]), what="levels"))),
    ]


_CONFIG = {"steps": integer(0), "batch_size": integer(1), "lr": scalar(0.0), "optimizer": choice(),
           "adam_betas": st.sampled_from([(1.5, 0.9), (0.9,), (-0.1, 0.9), (float("nan"), 0.9), "ab", 0.9]),
           "adam_eps": scalar(0.0, include_low=True), "weight_decay": scalar(0.0), "warmup_steps": integer(0),
           "grad_clip": scalar(0.0, include_low=True, types=False), "ema_rate": scalar(0.0, 1.0, include_high=True), "precision": choice(),
           "chunks": integer(1).filter(lambda v: v is not None), "log_every": integer(1),
           "checkpoint_every": integer(1).filter(lambda v: v is not None), "keep_checkpoints": integer(1)}


@functools.lru_cache(maxsize=None)
def _scratch() -> Path:
    """One folder per test process for the broken files the fuzzer writes, removed when the process exits."""
    root = Path(tempfile.mkdtemp(prefix="diffcheck-fuzz-"))
    atexit.register(shutil.rmtree, root, True)
    return root


@functools.lru_cache(maxsize=None)
def _checkpoint_template() -> Path:
    from diffcheck.training.checkpoint import save_checkpoint

    root = Path(tempfile.mkdtemp(prefix="fuzz-ckpt-", dir=_scratch()))
    w = {"layer.weight": torch.ones(2, 2)}
    return save_checkpoint(root, step=3, model=w, ema=w, state={"rng": torch.zeros(3)}, meta={"kind": "fuzz"})


def _broken_checkpoint(file: str, how: str, k: int, data: bytes) -> Path:
    src = _checkpoint_template()
    dst = Path(tempfile.mkdtemp(prefix="fuzz-ckpt-", dir=_scratch())) / "fuzzcase"
    shutil.copytree(src, dst)
    path = dst / file
    raw = path.read_bytes()
    keep = len(raw.rstrip())  # a cut that drops only trailing whitespace (meta.json's newline) corrupts nothing
    path.write_bytes(raw[: k % max(keep, 1)] if how == "truncated" else data)
    return dst


def _load_checkpoint(path):
    from diffcheck.training.checkpoint import load_checkpoint

    return load_checkpoint(path)


def _load_net(name, path):
    from diffcheck.nets.checkpoints import load

    return load(name, path)


def _garbage_file(data: bytes, suffix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="fuzz-net-", dir=_scratch())) / f"fuzzcase{suffix}"
    path.write_bytes(data)
    return path


def training_targets() -> list[Target]:
    files = ("model.safetensors", "ema.safetensors", "state.pt", "meta.json")
    broken = st.builds(_broken_checkpoint, st.sampled_from(files), st.sampled_from(["truncated", "garbage"]),
                       st.integers(0, 10**6), st.one_of(st.binary(max_size=64), st.binary(max_size=16).map(lambda b: b"\x80" + b)))
    return [
        Target("TrainConfig", TrainConfig, lambda: {"steps": 10, "batch_size": 4},
               tuple(Bad(a, s, what="config field") for a, s in _CONFIG.items())),
        Target("training.load_checkpoint", _load_checkpoint, lambda: {"path": _checkpoint_template()}, (
            Bad("path", broken, names=("fuzzcase",), what="truncated or garbage checkpoint file"),
            Bad("path", st.sampled_from([Path("/nonexistent/fuzzcase")]), names=("fuzzcase",), errors=(FileNotFoundError,), what="missing"))),
        Target("nets.checkpoints.load", _load_net, lambda: {"name": None, "path": _garbage_file(b"", ".safetensors")}, (
            Bad("path", st.builds(_garbage_file, st.one_of(st.binary(max_size=64), st.binary(max_size=16).map(lambda b: b"\x80" + b)),
                                  st.sampled_from([".safetensors", ".pt", ".ckpt", ".pth", ""])),
                names=("fuzzcase",), errors=(FileNotFoundError,), what="truncated or garbage checkpoint file"),
            Bad("name", st.one_of(choice().filter(lambda v: v is not None), st.sampled_from(["ddpm_cifar10x", 3])), what="choice"))),
    ]


def all_targets() -> list[Target]:
    from targets_core import core_targets

    return core_targets() + sampler_targets() + guidance_targets() + loss_targets() + elbo_targets() + training_targets()
