"""CERTIFY (Cohen, Rosenfeld & Kolter 2019, Algorithm "CERTIFY") for one image at one noise scale.

1. Draw ``n0`` noisy copies and take the most frequent class ``cA`` (selection).
2. Draw ``n`` *other* noisy copies and count how often the model says ``cA`` (estimation): ``nA``.
3. ``pA_lower`` = the one-sided ``(1 - alpha)`` Clopper-Pearson lower bound of ``nA / n``. If ``pA_lower <= 1/2``,
   abstain; otherwise predict ``cA`` with certified L2 radius ``sigma * Phi^-1(pA_lower)``.

With probability at least ``1 - alpha`` over the draws, a non-abstaining answer is the smoothed classifier's
prediction and that prediction is constant on the ball. The two steps use separate draws, so that choosing ``cA``
does not bias ``nA``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from .bounds import lower_bound, radius

__all__ = ["ABSTAIN", "ScaleCounts", "certify_counts", "select"]

ABSTAIN = -1


@dataclasses.dataclass(frozen=True)
class ScaleCounts:
    """One noise scale's draws for one image: the class selected on the ``n0`` draws and the ``n`` draws' counts."""

    sigma: float
    selected: int
    counts: list[int]  # per class, over the estimation draws

    @property
    def n(self) -> int:
        return sum(self.counts)


def select(selection_counts: Sequence[int]) -> int:
    """The most frequent class of the selection draws (the lowest index on a tie, like ``argmax``)."""
    return max(range(len(selection_counts)), key=lambda c: (selection_counts[c], -c))


def certify_counts(scale: ScaleCounts, alpha: float) -> tuple[int, float, float]:
    """``(prediction, pA_lower, radius)`` of CERTIFY from one scale's counts; prediction ``ABSTAIN`` (-1) when
    ``pA_lower <= 1/2`` (radius 0 then)."""
    p_lower = lower_bound(scale.counts[scale.selected], scale.n, alpha)
    if p_lower <= 0.5:
        return ABSTAIN, p_lower, 0.0
    return scale.selected, p_lower, radius(scale.sigma, p_lower)
