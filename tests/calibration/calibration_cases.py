"""Calibration and power cases of the public statistical assertions and tests.

A null case draws exact samples with a seed and runs one assertion at a given alpha: over many
seeds its rejection rate must match alpha (``exact``: an exact or asymptotically exact test) or
stay at or below it (a Bonferroni combination, conservative by construction).

A power case runs an assertion at its default alpha and n on the output of a deliberately wrong
sampler that the test suite already uses to show a check can fail; its rejection rate is the
assertion's power against that mistake. The wrong samplers are re-created here as in
``tests/samplers/test_samplers.py``, ``tests/test_checks.py`` and ``tests/test_stats.py``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import torch

import toy
from diffcheck import process as P
from diffcheck import samplers as S
from diffcheck.exact import ExactModel
from diffcheck.param import function_model
from diffcheck.samplers.loop import walk
from diffcheck.testing import assert_mode_weights, assert_moments, assert_order, assert_samples_match
from diffcheck.testing import stats as st

SEEDS = 1000  # seeds of a null case in the slow suite
ALPHA = 0.05  # the false-alarm rate calibrated (over 1000 seeds a calibrated test rejects at a rate in [0.025, 0.079] with probability 1 - 1e-4)
POWER_SEEDS = 200  # seeds of a power case
N = 2000  # the sample size of the sampler checks (samplers.exact_law, mixture.noised_sampling)
DEFAULT_ALPHA = 1e-3  # every public assertion's default false-alarm rate


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(10_000 + seed)


# -- null cases: exact samples --------------------------------------------------------------------


@dataclass(frozen=True)
class NullCase:
    """One test on exact samples drawn with ``seed``: ``run(seed, alpha)`` returns its outcome or raises on rejection."""

    name: str
    exact: bool  # size exactly alpha (else: at most alpha)
    run: Callable[[int, float], Any]
    note: str = ""
    n: int = N  # samples per test


_TWO = toy.two_modes()
_ANISO_LAW = toy.anisotropic().noised(0.8, 0.4)
_RING = toy.ring(n=3, radius=2.0, std=0.3)


def _samples_match(law, n: int, modes: bool, fixed: bool = False, reference_n: int | None = None):
    """``fixed``: no generator is passed, so every seed's samples meet the same reference draws and projections."""
    def run(seed: int, alpha: float):
        g = _gen(seed)
        x = law.sample(n, g)
        return assert_samples_match(x, law, alpha=alpha, generator=None if fixed else g, modes=modes,
                                    reference_n=reference_n)
    return run


def _moments(law, n: int):
    return lambda seed, alpha: assert_moments(law.sample(n, _gen(seed)), law, alpha=alpha)


def _mode_weights(m, n: int, reference_n: int):
    def run(seed: int, alpha: float):
        g = _gen(seed)
        return assert_mode_weights(m.sample(n, g), m, alpha=alpha, generator=g, reference_n=reference_n)
    return run


ORDER_STEPS = (64, 128, 256, 512)
ORDER_NOISE = 0.05  # relative standard error of each Monte Carlo error estimate


def noisy_errors(true_errors, seed: int, rel: float = ORDER_NOISE) -> tuple[list[float], list[float]]:
    """Monte Carlo estimates of ``true_errors``: each with relative standard error ``rel`` (Gaussian), and those errors."""
    z = torch.randn(len(true_errors), generator=_gen(seed), dtype=torch.float64).tolist()
    return [e * (1.0 + rel * zi) for e, zi in zip(true_errors, z)], [rel * e for e in true_errors]


def _order_at_edge(order: float, band: float, at_least: bool):
    """Errors C steps^-(true order) with the true order at the edge of the band the assertion allows."""
    true = order - band if at_least else order + band

    def run(seed: int, alpha: float):
        errs, se = noisy_errors([3.0 * s ** -true for s in ORDER_STEPS], seed)
        return assert_order(ORDER_STEPS, errs, order, band=band, at_least=at_least, stderr=se, alpha=alpha)
    return run


def _stats(fn: Callable[[torch.Generator], st.TestResult]):
    return lambda seed, alpha: fn(_gen(seed), alpha)


def _gauss_with_ring_moments(n: int, g: torch.Generator) -> torch.Tensor:
    chol = torch.linalg.cholesky(_RING.covariance())
    return _RING.mean() + torch.randn(n, 2, generator=g, dtype=torch.float64) @ chol.T


def null_cases(fast: bool = False) -> list[NullCase]:
    """The null cases; ``fast`` uses small samples (the default suite's version)."""
    n = 200 if fast else N
    cases = [
        NullCase("assert_samples_match, modes=False (two_modes)", False,
                 _samples_match(_TWO, n, modes=False, reference_n=5000 if fast else None), "Bonferroni over 19 KS slices", n),
        NullCase("assert_samples_match, modes=False, no generator (one fixed reference)", False,
                 _samples_match(_TWO, n, modes=False, fixed=True, reference_n=5000 if fast else None),
                 "the projections need no reference draw, so a fixed one does not bias the rate", n),
        NullCase("assert_mode_weights (two_modes)", True, _mode_weights(_TWO, n, 20_000 if fast else 200_000), n=n),
        NullCase("assert_moments (anisotropic, noised)", False, _moments(_ANISO_LAW, n), "mean chi-square + covariance z, Bonferroni", n),
        NullCase("assert_order, stderr given, order at the band's edge", True, _order_at_edge(2.0, 0.1, False), "4 step counts, 5% relative Monte Carlo error each", len(ORDER_STEPS)),
        NullCase("assert_order, at_least, order at the band's edge", True, _order_at_edge(1.0, 0.1, True), "4 step counts, 5% relative Monte Carlo error each", len(ORDER_STEPS)),
        NullCase("assert_moments on a Gaussian with the ring's moments", False,
                 lambda seed, alpha: assert_moments(_gauss_with_ring_moments(n, _gen(seed)), _RING, alpha=alpha),
                 "moments cannot see the difference: a null case for them", n),
    ]
    if fast:
        return cases
    m = toy.anisotropic()
    return [
        NullCase("assert_samples_match (two_modes)", False, _samples_match(_TWO, N, modes=True), "KS slices and mode weights, Bonferroni"),
        NullCase("assert_samples_match (anisotropic, noised)", False, _samples_match(_ANISO_LAW, N, modes=True)),
        *cases,
        NullCase("two_sample_test sliced (anisotropic, n=2000 each)", False,
                 _stats(lambda g, a: st.two_sample_test(m.sample(N, g), m.sample(N, g), alpha=a, generator=g, features=m.log_prob))),
        NullCase("two_sample_test energy (two_modes, n=200 each, 199 permutations)", True,
                 _stats(lambda g, a: st.two_sample_test(_TWO.sample(200, g), _TWO.sample(200, g), alpha=a, method="energy",
                                                        permutations=199, generator=g)), n=200),
        NullCase("mean_test, exact covariance (anisotropic)", True, _stats(lambda g, a: st.mean_test(m.sample(N, g), m.mean(), m.covariance(), alpha=a))),
        NullCase("mean_test, Hotelling (anisotropic, n=100)", True, _stats(lambda g, a: st.mean_test(m.sample(100, g), m.mean(), alpha=a)), n=100),
        NullCase("covariance_test (anisotropic)", False, _stats(lambda g, a: st.covariance_test(m.sample(N, g), m.covariance(), alpha=a))),
        NullCase("zero_mean_test (3 columns, n=300)", False,
                 _stats(lambda g, a: st.zero_mean_test(torch.randn(300, 3, generator=g, dtype=torch.float64), alpha=a)), n=300),
        NullCase("mode_weights_test (ring of 4)", True,
                 _stats(lambda g, a: st.mode_weights_test(toy.ring(n=4, std=0.4).sample(400, g), toy.ring(n=4, std=0.4), alpha=a, generator=g)), n=400),
        NullCase("proportions_test (0.2/0.8, n=2000)", False,
                 _stats(lambda g, a: st.proportions_test(torch.bincount((torch.rand(N, generator=g) < 0.8).long(), minlength=2), [0.2, 0.8], alpha=a))),
    ]


# -- power cases: the deliberately wrong samplers of the test suite ------------------------------------


def _wrong_variance_step(model, process, x, t, s, noise, *, last=False, **kw):
    x, mean = S.ancestral_step(model, process, x, t, s, noise, last=last)
    return mean + 1.5 * (x - mean), mean  # variance 2.25x too large


def _off_by_one(model, process, x, t, s, noise, *, last=False, **kw):
    return S.ancestral_step(function_model(lambda y, tt: model(y, s), model.prediction), process, x, t, s, noise, last=last)


_DDPM = P.DiscreteVP.linear()
PRESETS = ("two_modes", "ring", "anisotropic")  # the presets of samplers.exact_law

# (sampler, its grid's respaced steps), as tests/samplers/test_samplers.py runs them
SAMPLERS: dict[str, tuple[Callable, int]] = {
    "DDPM step with 2.25x the variance": (lambda m, p, x, g, gen: walk(_wrong_variance_step, m, p, x, g, generator=gen), 100),
    "DDPM with the model at the next time (off by one)": (lambda m, p, x, g, gen: walk(_off_by_one, m, p, x, g, generator=gen), 100),
    "DDPM started one step late": (lambda m, p, x, g, gen: S.ddpm_ancestral(m, p, x, g[1:], generator=gen), 50),
    "DDPM ancestral, correct, 250 respaced steps as samplers.exact_law runs it (discretisation error only)": (lambda m, p, x, g, gen: S.ddpm_ancestral(m, p, x, g, generator=gen), 250),
}


def _grid(wrong: str) -> torch.Tensor:
    return P.iddpm_grid(_DDPM, [SAMPLERS[wrong][1]])


@functools.lru_cache(maxsize=None)
def sampler_batches(wrong: str, seeds: int, preset: str) -> tuple[torch.Tensor, ...]:
    """``seeds`` independent sets of N samples of a (wrong) sampler on the exact model, from one batched run."""
    model = ExactModel(toy.preset(preset), _DDPM, "eps")
    grid = _grid(wrong)
    gen = torch.Generator().manual_seed(777)
    x_T = model.law(grid[0]).sample(seeds * N, gen)
    x = SAMPLERS[wrong][0](model, _DDPM, x_T, grid, gen)
    return tuple(x.reshape(seeds, N, -1))


@dataclass(frozen=True)
class PowerCase:
    """``run(k)`` runs one assertion at its default alpha on the k-th set of samples of a wrong sampler."""

    assertion: str
    wrong: str
    run: Callable[[int], Any]


def _law_checks(law, mixture) -> dict[str, Callable[[torch.Tensor, torch.Generator], Any]]:
    return {
        "assert_samples_match": lambda x, g: assert_samples_match(x, law, generator=g),
        "assert_moments": lambda x, g: assert_moments(x, law),
        "assert_mode_weights": lambda x, g: assert_mode_weights(x, mixture, generator=g),
    }


def _drawn(draw: Callable[[torch.Generator], torch.Tensor], check: Callable[[torch.Tensor, torch.Generator], Any]):
    """run(k): samples drawn with seed k, then the assertion with the same generator (its reference independent)."""
    def run(k: int):
        g = _gen(k)
        return check(draw(g), g)
    return run


def _heun_wrong_time(model, process, x, t, s, noise=None, *, last=False, **kw):
    h = float(s) - float(t)  # second stage evaluated at t instead of s: a first-order method in disguise
    v = S.probability_flow(model, process, x, t)
    return x + 0.5 * h * (v + S.probability_flow(model, process, x + h * v, t)), None


@functools.lru_cache(maxsize=None)
def heun_errors(wrong: bool) -> tuple[float, ...]:
    """Noise-free errors in law of Heun (or the wrong Heun) at ORDER_STEPS, VE process, eps model (samplers.orders)."""
    from diffcheck.checks.orders import law_error

    run = (lambda m, p, x, g, nz: walk(_heun_wrong_time, m, p, x, g, stochastic=False)) if wrong else \
        (lambda m, p, x, g, nz: S.heun_ode(m, p, x, g))
    return tuple(law_error(run, P.VE(sigma_max=20.0), "eps", 1.0, 1e-3, s) for s in ORDER_STEPS)


def power_cases(seeds: int) -> list[PowerCase]:
    """Each assertion against each wrong sampler it is meant to catch, at its default alpha and n = N."""
    cases = []
    for wrong in SAMPLERS:
        for preset in PRESETS:
            m = toy.preset(preset)
            checks = _law_checks(ExactModel(m, _DDPM, "eps").law(_grid(wrong)[-1]), m)
            for a in ("assert_samples_match", "assert_moments"):
                cases.append(PowerCase(a, f"{wrong}, {preset}",
                                       lambda k, w=wrong, p=preset, c=checks[a]: c(sampler_batches(w, seeds, p)[k], _gen(k))))
    half = toy.GaussianMixture([0.5, 0.5], _TWO.means, 1.0)
    for a, check in _law_checks(_TWO, _TWO).items():
        cases.append(PowerCase(a, "two_modes with weights 0.5/0.5 for 0.2/0.8", _drawn(lambda g: half.sample(N, g), check)))
    aniso = toy.anisotropic()
    noised = aniso.noised(0.9, 0.3)
    wrongs = {
        "noised anisotropic with 1.5x the noise": lambda g: 0.9 * aniso.sample(N, g) + 1.5 * 0.3 * torch.randn(N, 2, generator=g, dtype=torch.float64),
        "noised anisotropic shifted by 0.15": lambda g: 0.9 * aniso.sample(N, g) + 0.3 * torch.randn(N, 2, generator=g, dtype=torch.float64) + 0.15,
    }
    for w, draw in wrongs.items():
        checks = _law_checks(noised, noised.to_mixture())
        for a in ("assert_samples_match", "assert_moments"):
            cases.append(PowerCase(a, w, _drawn(draw, checks[a])))
    cases.append(PowerCase("assert_samples_match", "a Gaussian with the ring's moments",
                           _drawn(lambda g: _gauss_with_ring_moments(N, g), _law_checks(_RING, _RING)["assert_samples_match"])))
    for wrong, name in ((True, "Heun with its second stage at t (order 1), declared order 2"),
                        (False, "Heun, correct (order 2; a null case)")):
        def run(k, wrong=wrong):
            errs, se = noisy_errors(list(heun_errors(wrong)), k)
            return assert_order(ORDER_STEPS, errs, 2.0, stderr=se)
        cases.append(PowerCase("assert_order, 5% Monte Carlo noise", name, run))
    return cases


# Power the suite relies on: the assertion that a check uses to fail a wrong sampler catches it
# nearly always (the lower end of the rate's interval at least MIN_POWER). samplers.exact_law fails when
# any preset rejects, so it needs one preset that catches each wrong sampler: the 2.25x variance on all
# three, the off-by-one model time on two_modes (on the ring it is caught about a third of the time and on
# anisotropic almost never at n = 2000), the late start on ring and anisotropic.
MIN_POWER = 0.9
CATCHES = {
    *(("assert_samples_match", f"DDPM step with 2.25x the variance, {p}") for p in PRESETS),
    ("assert_samples_match", "DDPM with the model at the next time (off by one), two_modes"),
    ("assert_samples_match", "DDPM started one step late, ring"),
    ("assert_samples_match", "DDPM started one step late, anisotropic"),
    ("assert_samples_match", "two_modes with weights 0.5/0.5 for 0.2/0.8"),
    ("assert_mode_weights", "two_modes with weights 0.5/0.5 for 0.2/0.8"),
    ("assert_samples_match", "noised anisotropic with 1.5x the noise"),
    ("assert_moments", "noised anisotropic shifted by 0.15"),
    ("assert_samples_match", "a Gaussian with the ring's moments"),
    ("assert_order, 5% Monte Carlo noise", "Heun with its second stage at t (order 1), declared order 2"),
}
