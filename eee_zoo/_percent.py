"""How the zoo writes a fraction as a percentage: an accuracy floored to 0.01 %, an interval widened outwards
(lower end floored, upper end ceiled), so no stated figure is rounded in the model's favour (9.788 % reads 9.78 %).

Float dust is dropped first (0.1234 stored as 0.12339999... stays 12.34), so an exact two-decimal figure is kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["floor_percent", "interval_percent", "percent_text", "interval_percent_text"]


def _hundredths(fraction: float) -> float:
    return round(float(fraction) * 10000, 6)  # percent x 100, float dust rounded away


def floor_percent(fraction: float, decimals: int = 2) -> float:
    """``fraction`` in percent, floored to ``decimals`` places: 0.09788 -> 9.78 (``decimals=0``: 9.0)."""
    scale = 10 ** (2 - decimals)  # hundredths of a percent per step
    return math.floor(_hundredths(fraction) / scale) * scale / 100


def interval_percent(interval: Sequence[float]) -> list[float]:
    """A fractional interval in percent, widened outwards to 0.01: (0.12349, 0.369612) -> [12.34, 36.97]."""
    lo, hi = interval
    return [math.floor(_hundredths(lo)) / 100, math.ceil(_hundredths(hi)) / 100]


def percent_text(fraction: float, width: int = 0) -> str:
    """``floor_percent`` as text with a percent sign, right-aligned to ``width``: ``' 9.78%'``."""
    return f"{floor_percent(fraction):{max(width - 1, 0)}.2f}%"


def interval_percent_text(interval: Sequence[float], sep: str = ", ") -> str:
    """``interval_percent`` as text: ``'12.34%, 36.97%'`` (``sep='-'``: ``'12.34%-36.97%'``)."""
    lo, hi = interval_percent(interval)
    return f"{lo:.2f}%{sep}{hi:.2f}%"
