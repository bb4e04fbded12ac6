"""Adaptive evaluation of stochastic self-ensembles: the per-image worst case over every attack the zoo knows."""

from .attacks import Attack
from .evaluate import DEFAULT_BATCH_SIZE, DEFAULT_DRAWS, adaptive_evaluate
from .presets import AUTOATTACK_PROPOSALS, PRESETS, describe_preset
from .result import AdaptiveResult, Column

__all__ = [
    "AUTOATTACK_PROPOSALS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_DRAWS",
    "PRESETS",
    "AdaptiveResult",
    "Attack",
    "Column",
    "adaptive_evaluate",
    "describe_preset",
]
