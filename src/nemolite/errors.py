"""User-facing errors: one line that names the field, the value and the fix.

Every check that guards user input (recipe fields, CLI overrides, parallel layouts, data files,
cluster settings) raises one of these before anything is launched or written. The CLI prints
`str(error)` on one line and exits non-zero, without a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class NemoliteError(Exception):
    """Base class of errors caused by user input; `str()` is a single line."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = " ".join(str(message).split())

    def __str__(self) -> str:
        return self.message


def one_line(error: NemoliteError) -> str:
    """The user-facing line of `error`.

    fiddle re-raises an error from a constructor as a proxy subclass whose `str()` appends
    "Fiddle context: ..." (fiddle/_src/building.py); the line wanted is the original's.
    """
    return str(getattr(error, "proxy_base_exception", error))


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Returns ' (did you mean X?)' for the closest of `choices`, or '' when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class ConfigError(NemoliteError):
    """A configuration value that cannot work.

    Args:
        field: dotted path of the field as the user types it, e.g. `trainer.strategy.tensor_model_parallel_size`.
        value: the offending value.
        problem: what is wrong with it.
        fix: what to do instead.
    """

    def __init__(self, field: str, value: Any, problem: str, fix: str) -> None:
        self.field, self.value, self.problem, self.fix = field, value, problem, fix
        super().__init__(f"{field}={value!r}: {problem}; fix: {fix}")


class UnknownChoiceError(ConfigError):
    """A name (field, factory, executor, tokenizer...) that is not among the valid ones."""

    def __init__(self, field: str, value: str, choices: Iterable[str], what: str = "value") -> None:
        names = sorted(set(choices))
        super().__init__(
            field,
            value,
            f"unknown {what}{did_you_mean(value, names)}",
            f"use one of: {', '.join(names)}",
        )


class DataFileError(NemoliteError):
    """A data, tokenizer or checkpoint file that is missing, truncated or malformed."""

    def __init__(self, path: Any, problem: str, fix: str) -> None:
        self.path, self.problem, self.fix = path, problem, fix
        super().__init__(f"{path}: {problem}; fix: {fix}")


class ClusterError(NemoliteError):
    """A cluster or executor setting that is missing or rejected by the scheduler."""

    def __init__(self, field: str, value: Any, problem: str, fix: str) -> None:
        self.field, self.value = field, value
        super().__init__(f"{field}={value!r}: {problem}; fix: {fix}")
