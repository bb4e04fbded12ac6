"""Aggregation of many predictors' logits into one prediction.

CrossMax is the robust aggregation of Fort & Lakshminarayanan (2024), arXiv:2408.05446, Alg. 1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["crossmax", "mean_logits", "AGGREGATORS", "get_aggregator"]


def _check_logits(logits: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if logits.ndim != 3:
        raise ValueError(f"logits must have shape [batch, predictors, classes], got {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be floating point, got {logits.dtype}")


def crossmax(logits: torch.Tensor, k: int = 3) -> torch.Tensor:
    """CrossMax aggregation: ``[batch, predictors, classes] -> [batch, classes]``.

    1. subtract each predictor's max over classes (no predictor wins by being confident overall);
    2. subtract each class's max over predictors (no single predictor dominates a class);
    3. take the k-th largest value over predictors (a robust "vote" that ignores the top k-1 outliers).
    """
    _check_logits(logits)
    n_predictors = logits.shape[1]
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > n_predictors:
        raise ValueError(f"k={k} exceeds the number of predictors ({n_predictors}); use k <= {n_predictors}")
    z = logits - logits.max(dim=2, keepdim=True).values
    z = z - z.max(dim=1, keepdim=True).values
    return torch.topk(z, k, dim=1).values[:, k - 1, :]


def mean_logits(logits: torch.Tensor, k: int | None = None) -> torch.Tensor:
    """Plain average over predictors (the non-robust baseline aggregation); ``k`` is ignored."""
    _check_logits(logits)
    return logits.mean(dim=1)


AGGREGATORS: dict[str, Callable[..., torch.Tensor]] = {"crossmax": crossmax, "mean": mean_logits}


def get_aggregator(name: str) -> Callable[..., torch.Tensor]:
    try:
        return AGGREGATORS[name]
    except KeyError:
        raise ValueError(f"unknown aggregator {name!r}; choose one of {sorted(AGGREGATORS)}") from None
