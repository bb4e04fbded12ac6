"""How the tables write a figure: percent floored to 0.01, intervals widened outwards."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from ..results import interval_percent, percent_floor

__all__ = ["fraction_floor", "interval_text", "table_start"]


def fraction_floor(value: Fraction) -> float:
    """Percent floored to 0.01, like :func:`percent_floor`."""
    return percent_floor(value.numerator, value.denominator)


def interval_text(interval: Sequence[float]) -> str:
    lo, hi = interval_percent(interval)
    return f"[{lo:.2f}, {hi:.2f}]"


def table_start(title: str, columns: Sequence[str], align: str) -> list[str]:
    """A subsection's heading and its table's header rows; ``align`` has one letter per column (l, r)."""
    rule = "|".join("---:" if a == "r" else "---" for a in align)
    return [f"### {title}", "", "| " + " | ".join(columns) + " |", f"|{rule}|"]
