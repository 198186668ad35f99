"""Measured false-alarm rate and power of a statistical check: run it over many seeds and compare with its alpha.

    from diffcheck.testing.calibration import rejection_rate
    r = rejection_rate(lambda seed: my_test(seed, alpha=0.05), range(1000), alpha=0.05)
    assert r.calibrated()        # the count of rejections is a plausible Binomial(1000, 0.05) draw

``run(seed)`` performs one test on data drawn with ``seed``. It rejects by raising
``DiffcheckAssertionError`` (the public assertions) or by returning a failed ``TestResult``, a
sequence holding one, or ``False``; anything else counts as a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from scipy import stats

from toy.validate import check_float

from .assertions import DiffcheckAssertionError
from .stats import TestResult, binomial_interval

__all__ = ["RejectionRate", "rejection_rate", "rejected"]


def rejected(outcome: Any) -> bool:
    """Whether one test's outcome is a rejection (see the module's docstring)."""
    if isinstance(outcome, TestResult):
        return not outcome.passed
    if isinstance(outcome, (list, tuple)):
        return any(rejected(o) for o in outcome)
    return outcome is False


@dataclass(frozen=True)
class RejectionRate:
    """Rejections of one test over independent seeds, against its nominal false-alarm rate ``alpha``.

    ``null_interval`` is the central interval of the rejection rate of a test of size exactly ``alpha``
    (Binomial(seeds, alpha) quantiles at ``level / 2`` and ``1 - level / 2``); ``interval`` is the
    Clopper-Pearson interval of the measured rate at confidence ``1 - level``.
    """

    name: str
    seeds: int
    rejections: int
    alpha: float | None = None
    level: float = 1e-4

    @property
    def rate(self) -> float:
        return self.rejections / self.seeds

    @property
    def interval(self) -> tuple[float, float]:
        return binomial_interval(self.rejections, self.seeds, self.level)

    @property
    def null_interval(self) -> tuple[float, float]:
        if self.alpha is None:
            raise ValueError("no nominal alpha was given")
        lo = stats.binom.ppf(self.level / 2, self.seeds, self.alpha)
        hi = stats.binom.isf(self.level / 2, self.seeds, self.alpha)
        return float(lo) / self.seeds, float(hi) / self.seeds

    def calibrated(self) -> bool:
        """The count is a plausible draw of a test of size exactly alpha (inside ``null_interval``)."""
        lo, hi = self.null_interval
        return lo <= self.rate <= hi

    def valid(self) -> bool:
        """The rate is not significantly above alpha (at most the upper end of ``null_interval``): P(reject) <= alpha."""
        return self.rate <= self.null_interval[1]

    def to_dict(self) -> dict:
        out = {"name": self.name, "seeds": self.seeds, "rejections": self.rejections, "rate": self.rate,
               "interval": list(self.interval), "level": self.level}
        if self.alpha is not None:
            out.update(alpha=self.alpha, null_interval=list(self.null_interval), calibrated=self.calibrated(),
                       valid=self.valid())
        return out

    def __str__(self) -> str:
        lo, hi = self.interval
        text = f"{self.name}: {self.rejections}/{self.seeds} rejected (rate {self.rate:.4f}, interval [{lo:.4f}, {hi:.4f}])"
        if self.alpha is not None:
            nlo, nhi = self.null_interval
            text += f"; alpha = {self.alpha:g}, a calibrated test rejects at a rate in [{nlo:.4f}, {nhi:.4f}]"
        return text


def rejection_rate(run: Callable[[int], Any], seeds: Iterable[int], *, alpha: float | None = None, name: str = "",
                   level: float = 1e-4) -> RejectionRate:
    """Run ``run(seed)`` for every seed and count the rejections."""
    level = check_float(level, "level", low=0.0, high=1.0, low_open=True, high_open=True)
    if alpha is not None:
        alpha = check_float(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)
    n = k = 0
    for seed in seeds:
        n += 1
        try:
            k += rejected(run(seed))
        except DiffcheckAssertionError:
            k += 1
    if n == 0:
        raise ValueError("seeds must hold at least one seed")
    return RejectionRate(name or getattr(run, "__name__", "test"), n, k, alpha, level)
