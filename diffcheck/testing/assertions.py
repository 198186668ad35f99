"""Assertions for users' tests: each failure says what was expected, what was measured, at what n and alpha.

    from diffcheck.testing import assert_samples_match
    assert_samples_match(samples, exact_law, alpha=1e-3)
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from toy.mixture import GaussianMixture, NoisedMixture
from toy.validate import check_float

from . import stats as st
from .exact_law import exact_law_test

__all__ = ["DiffcheckAssertionError", "assert_samples_match", "assert_moments", "assert_mode_weights", "assert_order", "assert_gaussian_kl"]


class DiffcheckAssertionError(AssertionError):
    """A failed verification; ``results`` holds the TestResult objects behind it."""

    def __init__(self, message: str, results: Sequence[st.TestResult] = ()) -> None:
        super().__init__(message)
        self.results = list(results)


def _law(law: Any) -> GaussianMixture | NoisedMixture:
    if not isinstance(law, (GaussianMixture, NoisedMixture)):
        raise TypeError(f"law must be a toy GaussianMixture or NoisedMixture (e.g. ExactModel(...).law(t)), got {type(law).__name__}")
    return law


def _flat(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"samples must be a tensor, got {type(x).__name__}")
    return x.detach().reshape(x.shape[0], -1).to(torch.float64).cpu()


def _raise(what: str, results: Sequence[st.TestResult]) -> None:
    failed = [r for r in results if not r.passed]
    if failed:
        lines = "\n".join(f"  - {r}" for r in failed)
        raise DiffcheckAssertionError(f"{what} failed:\n{lines}", results)


def assert_samples_match(samples: torch.Tensor, law: Any, *, alpha: float = 1e-3, reference_n: int | None = None,
                         generator: torch.Generator | None = None, modes: bool = True) -> list[st.TestResult]:
    """Assert that ``samples`` follow the exact ``law``: a sliced KS test against the exact law (with the exact
    log-density as a slice) and, with ``modes``, mode weights.

    The projections are tested against their exact CDFs, the log-density slice against ``reference_n`` exact
    draws (default 50 000) and the mode weights against at least 200 000. The false-alarm rate of the whole
    assertion is at most ``alpha`` (split between the tests), whatever the seed of ``generator``.
    """
    alpha = check_float(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)
    law = _law(law)
    x = _flat(samples)
    if x.shape[1] != law.dim:
        raise ValueError(f"samples have {x.shape[1]} values per sample, the law has dimension {law.dim}")
    if isinstance(law, NoisedMixture) and (law.alpha.ndim or law.sigma.ndim):
        raise ValueError("the law must have a single (alpha, sigma), not per-sample values")
    gen = generator if generator is not None else torch.Generator().manual_seed(20240601)
    mix = law.to_mixture() if isinstance(law, NoisedMixture) else law
    each = alpha / (2 if modes else 1)
    ref_n = 50_000 if reference_n is None else reference_n
    results = [exact_law_test(x, mix, alpha=each, generator=gen, features=law.log_prob, reference_n=ref_n)]
    if modes:
        results.append(st.mode_weights_test(x, mix, alpha=each, generator=gen, reference_n=max(ref_n, 200_000)))
    _raise(f"samples do not match the exact law (n={x.shape[0]}, alpha={alpha:g})", results)
    return results


def assert_moments(samples: torch.Tensor, law: Any, *, alpha: float = 1e-3) -> list[st.TestResult]:
    """Assert the sample mean (chi-square with the exact covariance) and covariance (z-scores) of ``law``, alpha split."""
    alpha = check_float(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)
    law = _law(law)
    x = _flat(samples)
    mean, cov = law.mean(), law.covariance()
    results = [st.mean_test(x, mean, cov, alpha=alpha / 2), st.covariance_test(x, cov, alpha=alpha / 2)]
    _raise(f"sample moments do not match the exact law (n={x.shape[0]}, alpha={alpha:g})", results)
    return results


def assert_mode_weights(samples: torch.Tensor, mixture: GaussianMixture, *, alpha: float = 1e-3,
                        generator: torch.Generator | None = None, reference_n: int = 200_000) -> st.TestResult:
    """Assert that the share of samples nearest each component matches the shares of ``reference_n`` exact draws."""
    res = st.mode_weights_test(_flat(samples), mixture, alpha=alpha, generator=generator, reference_n=reference_n)
    _raise("mode weights do not match", [res])
    return res


def assert_order(steps: Sequence[float], errors: Sequence[float], order: float, *, band: float = 0.1,
                 at_least: bool = False, stderr: Sequence[float] | None = None, alpha: float = 1e-3) -> st.OrderFit:
    """Assert that errors fall with steps at ``order``: the log-log slope within ``band`` (or at least order - band).

    Exact errors (``stderr`` None): the fitted order must lie in the band. Errors estimated by Monte
    Carlo: pass their standard errors as ``stderr``; the hypothesis "the order lies in the band" is then
    tested at false-alarm rate ``alpha``: rejected when the weighted fit's order lies outside the band by
    more than z * (its standard error), z = Phi^{-1}(1 - alpha) on the violated side (Phi^{-1}(1 - alpha/2)
    when ``band`` is 0). Its size is ``alpha`` at the band's edge and less inside it.
    """
    band = check_float(band, "band", low=0.0)
    order = check_float(order, "order")
    fit = st.fit_order(steps, errors, stderr)
    if stderr is None:
        slack, how = 0.0, "fitted"
    else:
        alpha = check_float(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)
        slack = fit.stderr * st.normal_quantile(1.0 - (alpha / 2 if band == 0 and not at_least else alpha))
        how = f"weighted fit, standard error {fit.stderr:.3g}, allowed slack {slack:.3g} at alpha = {alpha:g}"
    low_ok = fit.order >= order - band - slack
    ok = low_ok if at_least else low_ok and fit.order <= order + band + slack
    if not ok:
        bound = f">= {order - band:g}" if at_least else f"{order:g} +- {band:g}"
        raise DiffcheckAssertionError(
            f"convergence order: expected {bound}, measured {fit.order:.3f} ({how}; log-log slope over steps {list(steps)}, "
            f"errors {[f'{e:.3g}' for e in errors]}, fit R^2 = {fit.r2:.4f})")
    return fit


def assert_gaussian_kl(samples: torch.Tensor, law: Any, *, max_kl: float) -> float:
    """Assert that the Gaussian KL of the samples' fitted moments from the law's exact moments is at most ``max_kl`` nats."""
    import toy

    law = _law(law)
    x = _flat(samples)
    kl = float(toy.kl_gaussian(x.mean(0), torch.cov(x.T).reshape(x.shape[1], x.shape[1]), law.mean(), law.covariance()))
    if not kl <= max_kl:
        raise DiffcheckAssertionError(f"Gaussian KL of fitted moments: expected <= {max_kl:g} nats, measured {kl:.4g} (n={x.shape[0]})")
    return kl
