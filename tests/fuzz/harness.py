"""Bad-input fuzzing: a table of public callables, per argument a strategy of bad values, and a verdict per drawn case.

A ``Target`` is a public constructor or function with a factory of valid keyword arguments; each
``Bad`` replaces one argument by a value drawn from its strategy (a plain value, or a ``Mut`` that
derives the bad value from the valid one: a NaN poked into a tensor, a grid reversed). A drawn case
is ``clear`` when the call raises ValueError, TypeError or one of the project's own errors with a
message that names the argument, ``unclear`` when it raises anything else or a message without the
name, and ``silent`` when it returns (a NaN or a wrong answer handed back).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from hypothesis import strategies as st

from diffcheck.samplers import SamplingError
from diffcheck.training.checkpoint import CheckpointError as TrainCheckpointError
from diffcheck.nets.checkpoints import CheckpointError as NetCheckpointError

CLEAR_ERRORS = (ValueError, TypeError, SamplingError, TrainCheckpointError, NetCheckpointError)
VERDICTS = ("clear", "unclear", "silent")


@dataclass(frozen=True)
class Mut:
    """A bad value derived from the valid one: ``fn(valid)``; ``label`` says how."""

    fn: Callable[[Any], Any]
    label: str

    def __repr__(self) -> str:
        return f"<{self.label}>"


@dataclass(frozen=True)
class Bad:
    """Bad values of one argument; a clear error names one of ``names`` (default: the argument)."""

    arg: str
    values: st.SearchStrategy
    names: tuple[str, ...] = ()
    what: str = ""  # the kind of bad value, for the counts
    errors: tuple[type, ...] = ()  # errors clear here besides CLEAR_ERRORS (FileNotFoundError for a path)

    def __repr__(self) -> str:
        return f"Bad({self.arg}: {self.what})"

    @property
    def words(self) -> tuple[str, ...]:
        return self.names or (self.arg,)


@dataclass(frozen=True)
class Target:
    """A public callable: ``call(**kwargs)`` with ``valid()`` fresh valid keyword arguments, and its bad values."""

    name: str
    call: Callable[..., Any]
    valid: Callable[[], dict]
    bad: tuple[Bad, ...] = field(default_factory=tuple)

    def __repr__(self) -> str:
        return f"Target({self.name})"


@dataclass(frozen=True)
class Verdict:
    verdict: str
    target: str
    arg: str
    what: str
    value: str
    detail: str

    def __str__(self) -> str:
        return f"{self.verdict}: {self.target}({self.arg}={self.value}) [{self.what}] -> {self.detail}"


def _short(v: Any, limit: int = 80) -> str:
    text = repr(v).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def classify(target: Target, bad: Bad, value: Any) -> Verdict:
    """Call ``target`` with ``bad.arg`` replaced by ``value`` (or the ``Mut`` of the valid value) and judge it."""
    kwargs = target.valid()
    kwargs[bad.arg] = value.fn(kwargs.get(bad.arg)) if isinstance(value, Mut) else value
    shown = _short(value)
    try:
        out = target.call(**kwargs)
    except CLEAR_ERRORS + bad.errors as err:
        msg = str(err)
        named = any(w.lower() in msg.lower() for w in bad.words)
        return Verdict("clear" if named else "unclear", target.name, bad.arg, bad.what, shown,
                       f"{type(err).__name__}: {msg[:200]}" + ("" if named else f" (names none of {bad.words})"))
    except Exception as err:  # noqa: BLE001 - the point is to see every other kind of failure
        return Verdict("unclear", target.name, bad.arg, bad.what, shown, f"{type(err).__name__}: {str(err)[:200]}")
    return Verdict("silent", target.name, bad.arg, bad.what, shown, f"returned {_short(out, 120)}")
