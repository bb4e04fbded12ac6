"""Confidence intervals for a binomial proportion (an accuracy ``k / n``), from ``scipy.stats``.

``wilson_interval`` is the Wilson score interval (Wilson 1927; Newcombe 1998, method 3), the default of results
files; ``clopper_pearson_interval`` the exact interval (Clopper & Pearson 1934; Newcombe's method 5). Both are
``scipy.stats.binomtest(k, n).proportion_ci`` with the 95 % level of :data:`CONFIDENCE` unless told otherwise.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CONFIDENCE", "INTERVALS", "check_counts", "clopper_pearson_interval", "normal_quantile", "wilson_interval"]

CONFIDENCE = 0.95


def check_counts(k: Any, n: Any, confidence: float) -> None:
    """Refuse anything but integers ``0 <= k <= n``, ``n >= 1`` and a level strictly between 0 and 1."""
    if isinstance(k, bool) or isinstance(n, bool) or int(k) != k or int(n) != n:
        raise ValueError(f"k and n must be integers, got k={k!r}, n={n!r}")
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")


def _proportion_ci(k: int, n: int, confidence: float, method: str) -> tuple[float, float]:
    from scipy.stats import binomtest  # scipy is imported on first use: `import eee_zoo` stays cheap

    check_counts(k, n, confidence)
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method=method)
    return float(ci.low), float(ci.high)


def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval for ``k / n`` (0 and 1 exactly at ``k = 0`` and ``k = n``)."""
    return _proportion_ci(k, n, confidence, "wilson")


def clopper_pearson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval: Beta quantiles ``B(a/2; k, n-k+1)`` and ``B(1-a/2; k+1, n-k)``."""
    return _proportion_ci(k, n, confidence, "exact")


def normal_quantile(p: float) -> float:
    """The standard normal quantile ``Phi^-1(p)``."""
    from scipy.stats import norm

    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    return float(norm.ppf(p))


# Interval methods by the name results files record (``interval_method``).
INTERVALS = {"wilson": wilson_interval, "clopper-pearson": clopper_pearson_interval}
