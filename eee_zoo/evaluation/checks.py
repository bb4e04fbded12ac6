"""Argument checks shared by the evaluations: one clear ``ValueError`` / ``TypeError`` per mistake."""

from __future__ import annotations

import numbers
from typing import Any

import torch.nn as nn

from ..datasets import SPLIT_SIZE

__all__ = ["check_eval_mode", "check_int", "check_ints", "check_n_examples"]


def check_int(name: str, value: Any, lo: int) -> None:
    """``value`` must be an integer (not a bool) of at least ``lo``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")


def check_ints(lo: int, **values: Any) -> None:
    """:func:`check_int` on each keyword, in order: ``check_ints(1, n=n, batch_size=batch_size)``."""
    for name, value in values.items():
        check_int(name, value, lo)


def check_n_examples(n_examples: Any, dataset: str) -> None:
    """A positive integer, at most the size of ``dataset``'s test split."""
    check_int("n_examples", n_examples, lo=1)
    if n_examples > SPLIT_SIZE[dataset]:
        raise ValueError(
            f"n_examples={n_examples} is larger than the {dataset} test split ({SPLIT_SIZE[dataset]} images)"
        )


def check_eval_mode(model: Any) -> None:
    """A ``torch.nn.Module`` in eval mode (BatchNorm with its running statistics, dropout off)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if model.training:
        raise ValueError(
            "the model is in training mode (BatchNorm would use batch statistics and update its running ones); "
            "call model.eval() before evaluating"
        )
