"""Fuzz targets of the ground truth and the processes: toy's mixtures and presets, processes, schedules, grids, the exact model."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

import toy
from diffcheck import process as P
from diffcheck.exact import ExactModel

from bad_values import NONFINITE, NOT_A_NUMBER, choice, covariances, grids, integer, poked, scalar, tensors_of_wrong_dtype
from harness import Bad, Mut, Target

F64 = torch.float64


def _x(n: int = 4, d: int = 2) -> torch.Tensor:
    return torch.linspace(-1.0, 1.0, n * d, dtype=F64).reshape(n, d)


def _grid() -> torch.Tensor:
    return torch.tensor([0.9, 0.5, 0.1], dtype=F64)


def _mixture_kwargs() -> dict:
    return {"weights": torch.tensor([0.3, 0.7], dtype=F64), "means": torch.tensor([[-1.0, 0.0], [1.0, 0.5]], dtype=F64),
            "covs": torch.tensor([[[1.0, 0.3], [0.3, 0.5]], [[0.4, -0.1], [-0.1, 0.2]]], dtype=F64),
            "labels": [0, 1]}


_WEIGHTS = st.one_of(
    poked(), tensors_of_wrong_dtype(),
    st.builds(lambda s: Mut(lambda w: w * s, f"scaled by {s:.3g}"), st.floats(0.0, 10.0).filter(lambda s: abs(s - 1) > 1e-4)),
    st.builds(lambda a: Mut(lambda w: w + torch.tensor([-a, a], dtype=F64), f"one negative ({a:.3g})"), st.floats(0.31, 10.0)),
    st.sampled_from([Mut(lambda w: torch.cat([w, w]) / 2, "one per component too many"), Mut(lambda w: w[None], "two dimensions")]),
)
_MEANS = st.one_of(poked(), tensors_of_wrong_dtype(), st.sampled_from([
    Mut(lambda m: m[:1], "one component too few"), Mut(lambda m: m[0], "one dimension"), Mut(lambda m: m[None], "three dimensions")]))


def _mixture(**kw):
    return toy.GaussianMixture(kw.pop("weights"), kw.pop("means"), kw.pop("covs"), kw.pop("labels"))


def _noised(mixture, alpha, sigma):
    return mixture.noised(alpha, sigma)


def _method(name: str):
    return lambda process, t: getattr(process, name)(t)


_TIMES = st.one_of(NONFINITE, st.floats(1.0, 1e6, exclude_min=True), st.floats(-1e6, 0.0, exclude_max=True), st.sampled_from(["0.5", None]),
                   st.builds(lambda v: torch.tensor([0.5, v], dtype=F64), st.one_of(NONFINITE, st.floats(1.0, 1e3, exclude_min=True))))

_PROCESSES = [("VP", P.VP()), ("SubVP", P.SubVP()), ("VE", P.VE()), ("LinearVE", P.LinearVE()), ("CosineVP", P.CosineVP()),
              ("DiscreteVP", P.DiscreteVP.linear(50))]

_DVP = P.DiscreteVP.linear(50)


def core_targets() -> list[Target]:
    t: list[Target] = [
        Target("toy.GaussianMixture", _mixture, _mixture_kwargs, (
            Bad("weights", _WEIGHTS, what="weights"),
            Bad("means", _MEANS, what="means"),
            Bad("covs", covariances(), what="covariance"),
            Bad("labels", st.sampled_from([[0], [0.5, 1.0], "ab", [0, 1, 2]]), what="labels"),
        )),
        Target("GaussianMixture.noised", _noised, lambda: {"mixture": toy.two_modes(), "alpha": 0.8, "sigma": 0.6}, (
            Bad("alpha", scalar(0.0), what="scalar"), Bad("sigma", scalar(0.0), what="scalar"))),
        Target("GaussianMixture.sample", lambda mixture, n: mixture.sample(n, torch.Generator().manual_seed(0)),
               lambda: {"mixture": toy.two_modes(), "n": 3}, (Bad("n", integer(0), what="integer"),)),
        Target("toy.single_gaussian", toy.single_gaussian, lambda: {"mean": [0.0, 1.0], "cov": torch.eye(2, dtype=F64)}, (
            Bad("mean", st.one_of(poked(), st.sampled_from(["m", None])), what="vector"),
            Bad("cov", st.one_of(scalar(0.0), covariances().filter(lambda m: "component" not in m.label)), what="covariance"))),
        Target("toy.preset", toy.preset, lambda: {"name": "ring"}, (Bad("name", choice(), what="choice"),)),
    ]
    for name, fn, args in [("ring", toy.ring, {"n": integer(1), "radius": scalar(0.0), "std": scalar(0.0, include_low=True)}),
                           ("grid", toy.grid, {"n": integer(1), "spacing": scalar(0.0, include_low=True), "std": scalar(0.0, include_low=True)}),
                           ("three_classes", toy.three_classes, {"radius": scalar(0.0, include_low=True), "std": scalar(0.0, include_low=True)}),
                           ("narrow", toy.narrow, {"std": scalar(0.0, include_low=True)}),
                           ("ar1_video", toy.ar1_video, {"frames": integer(1), "frame_dim": integer(1), "rho": scalar(-1.0, 1.0, include_low=True, include_high=True),
                                                         "std": scalar(0.0, include_low=True)})]:
        t.append(Target(f"toy.{name}", fn, dict, tuple(Bad(a, s, what="parameter") for a, s in args.items())))
    t += [
        Target("VP", P.VP, lambda: {"beta_min": 0.1, "beta_max": 20.0}, (
            Bad("beta_min", scalar(0.0, include_low=True), what="scalar"), Bad("beta_max", scalar(0.0, include_low=True), what="scalar"))),
        Target("SubVP", P.SubVP, lambda: {"beta_min": 0.1, "beta_max": 20.0}, (
            Bad("beta_min", scalar(0.0, include_low=True), what="scalar"), Bad("beta_max", scalar(0.0, include_low=True), what="scalar"))),
        Target("VE", P.VE, lambda: {"sigma_min": 0.01, "sigma_max": 50.0, "kernel": "exact"}, (
            Bad("sigma_min", scalar(0.0, 50.0, include_low=True, include_high=True), what="reversed or non-finite range"),
            Bad("sigma_max", st.one_of(scalar(0.0, include_low=True), st.floats(1e-6, 0.01)), what="reversed or non-finite range"),
            Bad("kernel", choice(), what="choice"))),
        Target("LinearVE", P.LinearVE, lambda: {"sigma_max": 80.0}, (Bad("sigma_max", scalar(0.0, include_low=True), what="scalar"),)),
        Target("CosineVP", P.CosineVP, lambda: {"s": 0.008}, (Bad("s", scalar(0.0, include_low=True), what="scalar"),)),
        Target("DiscreteVP", P.DiscreteVP, lambda: {"betas": torch.linspace(1e-4, 0.02, 20, dtype=F64)}, (
            Bad("betas", st.one_of(poked(), tensors_of_wrong_dtype(), NOT_A_NUMBER,
                                   st.builds(lambda v: Mut(lambda b: torch.cat([b, torch.tensor([v], dtype=F64)]), f"an entry {v:.3g}"),
                                             st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0, exclude_min=True))),
                                   st.sampled_from([Mut(lambda b: b[:0], "empty"), Mut(lambda b: b[None], "two dimensions")])),
                what="betas outside (0, 1)"),)),
        Target("DiscreteVP.linear", P.DiscreteVP.linear, lambda: {"T": 10, "beta_start": 1e-4, "beta_end": 0.02}, (
            Bad("T", integer(1), what="integer"), Bad("beta_start", scalar(0.0, 1.0, include_low=True, include_high=True), what="betas outside (0, 1)"),
            Bad("beta_end", scalar(0.0, 1.0, include_low=True, include_high=True), what="betas outside (0, 1)"))),
        Target("DiscreteVP.cosine", P.DiscreteVP.cosine, lambda: {"T": 10, "s": 0.008, "max_beta": 0.999}, (
            Bad("T", integer(1), what="integer"), Bad("s", scalar(0.0, include_low=True), what="scalar"),
            Bad("max_beta", scalar(0.0, 1.0, include_low=True, include_high=True), what="betas outside (0, 1)"))),
        Target("cosine_alpha_bar", P.cosine_alpha_bar, lambda: {"t": torch.tensor([0.0, 0.5], dtype=F64), "s": 0.008}, (
            Bad("t", _TIMES, what="time outside [0, 1]"), Bad("s", scalar(0.0, include_low=True), what="scalar"))),
    ]
    for pname, proc in _PROCESSES:
        for m in ("alpha", "sigma", "log_snr", "f", "g2"):
            t.append(Target(f"{pname}.{m}", _method(m), lambda proc=proc: {"process": proc, "t": 0.5},
                            (Bad("t", _TIMES, what="time outside [0, 1]"),)))
    t += [
        Target("check_grid", P.check_grid, lambda: {"grid": _grid()}, (Bad("grid", grids(), what="grid"),)),
        Target("uniform_grid", P.uniform_grid, lambda: {"steps": 4, "t_start": 1.0, "t_end": 1e-3}, (
            Bad("steps", integer(1), what="integer"), Bad("t_start", scalar(1e-3, 1.0, include_low=True), what="reversed or outside [0, 1]"),
            Bad("t_end", scalar(0.0, 1.0, include_high=True), what="reversed or outside [0, 1]"))),
        Target("ddpm_grid", P.ddpm_grid, lambda: {"process": _DVP}, (Bad("process", st.sampled_from([P.VP(), "ddpm", None]), what="type"),)),
        Target("respaced_grid", P.respaced_grid, lambda: {"process": _DVP, "steps": [0, 10, 49]}, (
            Bad("steps", st.one_of(st.sampled_from([[], [0, 50], [-1, 3], [3.5], "ab", [[1, 2]]]), st.lists(st.integers(51, 10**6), min_size=1, max_size=3)),
                what="steps outside the table"),)),
        Target("ddim_grid", P.ddim_grid, lambda: {"process": _DVP, "S": 5, "kind": "uniform"}, (
            Bad("S", integer(1, 50), what="integer"), Bad("kind", choice(), what="choice"),
            Bad("process", st.sampled_from([P.VP(), None]), what="type"))),
        Target("iddpm_grid", P.iddpm_grid, lambda: {"process": _DVP, "section_counts": [5]}, (
            Bad("section_counts", st.sampled_from([[0], [51], [-3], "ddimx", "ddim0", [1.5], [], None, "a,b"]), what="section counts"),)),
        Target("karras_grid", P.karras_grid, lambda: {"process": P.VE(0.002, 80.0), "n": 5, "sigma_min": 0.01, "sigma_max": 20.0, "rho": 7.0}, (
            Bad("n", integer(1), what="integer"), Bad("sigma_min", scalar(0.0, 20.0, include_low=True, include_high=True), what="reversed or non-finite range"),
            Bad("sigma_max", st.one_of(scalar(0.0, include_low=True), st.floats(1e-6, 0.01)), what="reversed or non-finite range"),
            Bad("rho", scalar(0.0, include_low=True), what="scalar"))),
        Target("karras_sigmas", P.karras_sigmas, lambda: {"n": 5, "sigma_min": 0.01, "sigma_max": 20.0, "rho": 7.0}, (
            Bad("n", integer(1), what="integer"), Bad("sigma_min", scalar(0.0, 20.0, include_low=True, include_high=True), what="reversed or non-finite range"),
            Bad("rho", scalar(0.0, include_low=True), what="scalar"))),
        Target("sigma_grid", P.sigma_grid, lambda: {"process": P.VE(), "sigmas": torch.tensor([40.0, 1.0, 0.1], dtype=F64)}, (
            Bad("sigmas", st.one_of(poked(), st.sampled_from([Mut(lambda s: s.flip(0), "increasing"), Mut(lambda s: -s, "negative"),
                                                              Mut(lambda s: s[None], "two dimensions"), Mut(lambda s: s[:0], "empty"),
                                                              Mut(lambda s: s * 100, "beyond the process's range")])), what="sigma ladder"),)),
        Target("geometric_sigmas", P.geometric_sigmas, lambda: {"sigma_max": 50.0, "sigma_min": 0.01, "L": 10}, (
            Bad("sigma_max", scalar(0.0, include_low=True), what="scalar"),
            Bad("sigma_min", scalar(0.0, 50.0, include_low=True, include_high=True), what="reversed or non-finite range"),
            Bad("L", integer(1), what="integer"))),  # one level (sigma_max alone) is a valid ladder
        Target("ExactModel", ExactModel, lambda: {"mixture": toy.two_modes(), "process": P.VP(), "prediction": "eps"}, (
            Bad("mixture", st.sampled_from([None, "two_modes", torch.zeros(2)]), what="type"),
            Bad("process", st.sampled_from([None, "VP", toy.two_modes()]), what="type"),
            Bad("prediction", choice(), what="choice"))),
        Target("ExactModel.__call__", lambda model, x, t: model(x, t),
               lambda: {"model": ExactModel(toy.two_modes(), P.VP(), "eps"), "x": _x(), "t": 0.5}, (
            Bad("x", st.one_of(poked(), tensors_of_wrong_dtype(), st.sampled_from([
                Mut(lambda x: x[:, :1], "one coordinate"), Mut(lambda x: torch.cat([x, x], 1), "four coordinates"),
                Mut(lambda x: x[0, 0], "a scalar")])), what="samples"),
            Bad("t", _TIMES, what="time outside [0, 1]"))),
        Target("ExactModel.law", lambda model, t: model.law(t), lambda: {"model": ExactModel(toy.two_modes(), P.VP(), "eps"), "t": 0.5},
               (Bad("t", _TIMES, what="time outside [0, 1]"),)),
    ]
    return t
