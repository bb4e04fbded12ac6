"""Accuracies as the figures' JSON records them: the figure, its counts and its 95 % interval.

Counts of images (``k`` of ``n`` right) get the exact Clopper-Pearson interval
(:func:`eee_zoo.evaluation.intervals.clopper_pearson_interval`); a per-draw accuracy (the mean over images of the
share of ``draws`` draws on which the image is right) gets the same interval at the fractional count
(:func:`eee_zoo.adaptive.result.per_draw_interval`, exact for one draw per image and conservative for more).
"""

from __future__ import annotations

from typing import Any

import torch

from ..adaptive.result import per_draw_interval
from ..evaluation.intervals import CONFIDENCE, clopper_pearson_interval

__all__ = ["count_accuracy", "per_draw_accuracy"]


def count_accuracy(correct: torch.Tensor | list[bool]) -> dict[str, Any]:
    """``{"accuracy", "correct", "n", "interval", "interval_method"}`` of per-image correctness flags."""
    flags = torch.as_tensor(correct, dtype=torch.bool)
    k, n = int(flags.sum()), len(flags)
    lo, hi = clopper_pearson_interval(k, n)
    return {
        "accuracy": k / n, "correct": k, "n": n, "interval": [lo, hi],
        "interval_method": f"clopper-pearson {CONFIDENCE:.0%}",
    }  # fmt: skip


def per_draw_accuracy(hits: torch.Tensor | list[int], draws: int) -> dict[str, Any]:
    """``{"accuracy", "draws", "n", "interval", ...}`` of per-image hit counts out of ``draws`` draws."""
    hits = [int(h) for h in torch.as_tensor(hits).flatten().tolist()]
    lo, hi = per_draw_interval(hits, draws)
    return {
        "accuracy": sum(hits) / (len(hits) * draws), "draws": draws, "n": len(hits), "interval": [lo, hi],
        "interval_method": f"clopper-pearson {CONFIDENCE:.0%} at the fractional count (per draw)",
    }  # fmt: skip
