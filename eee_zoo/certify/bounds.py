"""The statistics of CERTIFY: one-sided Clopper-Pearson bounds on a class's probability, and the L2 radius.

Cohen, Rosenfeld & Kolter 2019 (arXiv:1902.02918), Theorem 1: if the smoothed classifier's top class has probability
at least ``pA_lower > 1/2`` under ``N(0, sigma^2 I)``, its prediction is constant on the L2 ball of radius
``sigma * Phi^-1(pA_lower)``. ``pA_lower`` is the one-sided ``(1 - alpha)`` Clopper-Pearson lower bound of the
count, ``Beta(alpha; k, n - k + 1)``: the lower end of the two-sided interval at confidence ``1 - 2 alpha``, which is
what Cohen's code computes (``proportion_confint(k, n, alpha=2 * alpha, method="beta")[0]``).
"""

from __future__ import annotations

import math

from ..evaluation.intervals import clopper_pearson_interval, normal_quantile

__all__ = ["largest_radius", "lower_bound", "radius", "upper_bound"]


def lower_bound(k: int, n: int, alpha: float) -> float:
    """One-sided ``(1 - alpha)`` Clopper-Pearson lower bound of a probability seen ``k`` times in ``n`` draws."""
    return clopper_pearson_interval(k, n, confidence=1.0 - 2.0 * alpha)[0]


def upper_bound(k: int, n: int, alpha: float) -> float:
    """One-sided ``(1 - alpha)`` Clopper-Pearson upper bound (``1`` at ``k = n``)."""
    return clopper_pearson_interval(k, n, confidence=1.0 - 2.0 * alpha)[1]


def radius(sigma: float, p_lower: float) -> float:
    """``sigma * Phi^-1(p_lower)``: the certified L2 radius for a lower bound above 1/2 (0 otherwise)."""
    if p_lower <= 0.5:
        return 0.0
    return float(sigma) * normal_quantile(p_lower)


def largest_radius(sigma: float, n: int, alpha: float) -> float:
    """The largest radius ``n`` draws can certify at ``alpha``: all ``n`` right gives ``p_lower = alpha^(1/n)``."""
    return radius(sigma, math.exp(math.log(alpha) / n))
