"""Errors that name the card file and the field, and typed access to the mappings a card holds."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["CardError", "Fields"]


class CardError(ValueError):
    """An invalid model card; the message names the file and the field."""

    def __init__(self, path: str | os.PathLike | None, field: str, problem: str) -> None:
        self.path = Path(path) if path is not None else None
        self.field = field
        self.problem = problem
        super().__init__(f"{path if path is not None else '<card>'}: field '{field}': {problem}")


class Fields:
    """Typed access to a mapping, raising :class:`CardError` with the dotted field name."""

    _MISSING = object()

    def __init__(self, mapping: dict[str, Any], path: str | os.PathLike | None, prefix: str) -> None:
        self.data, self.path, self.prefix = mapping, path, prefix

    def _error(self, key: str, problem: str) -> CardError:
        return CardError(self.path, f"{self.prefix}.{key}", problem)

    def value(self, key: str, required: bool = True) -> Any:
        value = self.data.get(key)
        if value is None and required:
            raise self._error(key, "missing")
        return value

    def _typed(self, key: str, ok: Callable[[Any], bool], expected: str, required: bool) -> Any:
        value = self.value(key, required)
        if value is not None and not ok(value):
            raise self._error(key, f"expected {expected}, got {type(value).__name__} {value!r}")
        return value

    def string(self, key: str, required: bool = True) -> str | None:
        return self._typed(key, lambda v: isinstance(v, str) and v != "", "a non-empty string", required)

    def boolean(self, key: str, required: bool = True) -> bool | None:
        return self._typed(key, lambda v: isinstance(v, bool), "true or false", required)

    def mapping(self, key: str, required: bool = True) -> dict | None:
        return self._typed(key, lambda v: isinstance(v, dict), "a mapping", required)

    def integer(self, key: str, lo: int | None = None, required: bool = True) -> int | None:
        value = self._typed(key, lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer", required)
        if value is not None and lo is not None and value < lo:
            raise self._error(key, f"{value} is below {lo}")
        return value

    def number(self, key: str, lo: float | None = None, hi: float | None = None, required: bool = True) -> Any:
        value = self._typed(
            key,
            lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
            "a finite number",
            required,
        )
        if value is not None and ((lo is not None and value < lo) or (hi is not None and value > hi)):
            raise self._error(key, f"{value} is outside [{lo}, {hi}]")
        return value

    def choice(self, key: str, choices: Sequence[str], required: bool = True) -> str | None:
        value = self.string(key, required)
        if value is not None and value not in choices:
            raise self._error(key, f"unknown value {value!r}; choose one of {list(choices)}")
        return value
