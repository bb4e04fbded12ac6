"""The one table of what the zoo evaluates on: datasets, their splits, threat models and default budgets.

Every module that needs a dataset's number of classes or split size, the list of threat models or the default
eps reads it here, and every user-facing name is parsed here (cards, data loaders, evaluations, recipes).

    >>> parse_dataset("CIFAR-10"), parse_threat_model("linf"), check_eps(8 / 255, "Linf")
    ('cifar10', 'Linf', 0.03137254901960784)

No torch, no numpy: cards and recipes import this without paying for either.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = [
    "DEFAULT_EPS", "IMAGE_SHAPE", "NUM_CLASSES", "SPLITS", "SPLIT_SIZE", "SPLIT_SIZES", "THREAT_MODELS", "TITLES",
    "check_eps", "parse_dataset", "parse_threat_model",
]  # fmt: skip

# RobustBench's dataset names; value: the number of classes.
NUM_CLASSES: dict[str, int] = {"cifar10": 10, "cifar100": 100}
TITLES: dict[str, str] = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
SPLITS = ("train", "test")
SPLIT_SIZES: dict[str, dict[str, int]] = {
    "cifar10": {"train": 50000, "test": 10000},
    "cifar100": {"train": 50000, "test": 10000},
}
# The test split, which evaluations draw their first n images from.
SPLIT_SIZE: dict[str, int] = {name: sizes["test"] for name, sizes in SPLIT_SIZES.items()}
IMAGE_SHAPE = (3, 32, 32)  # channels, height, width of every dataset above

THREAT_MODELS = ("Linf", "L2")
DEFAULT_EPS: dict[str, float] = {"Linf": 8 / 255, "L2": 0.5}


def parse_dataset(value: Any) -> str:
    """Canonical dataset name from a string or RobustBench enum, case-insensitive (``"CIFAR-10"`` -> ``"cifar10"``)."""
    raw = getattr(value, "value", value)  # robustbench.model_zoo.enums.BenchmarkDataset
    if isinstance(raw, str):
        key = raw.strip().lower().replace("-", "").replace("_", "")
        if key in NUM_CLASSES:
            return key
    raise ValueError(f"unknown dataset {value!r}; choose one of {sorted(NUM_CLASSES)}")


def parse_threat_model(value: Any) -> str:
    """Canonical threat model from a string or RobustBench enum, case-insensitive (``"linf"`` -> ``"Linf"``)."""
    raw = getattr(value, "value", value)  # robustbench.model_zoo.enums.ThreatModel
    if isinstance(raw, str):
        for name in THREAT_MODELS:
            if raw.strip().lower() == name.lower():
                return name
    raise ValueError(f"unknown threat model {value!r}; choose one of {list(THREAT_MODELS)}")


def check_eps(eps: Any, threat_model: str) -> float:
    """``eps`` as a float, checked against the range that makes sense for ``threat_model`` on images in [0, 1].

    A Linf budget given in pixel units (``8`` for ``8/255``) is refused with the fraction it probably meant.
    """
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps):
        raise ValueError(f"eps must be a finite number, got {eps!r}")
    eps = float(eps)
    if threat_model == "Linf" and not 0 < eps < 1:
        hint = f"; did you mean {eps:g}/255 = {eps / 255:.6f}?" if 1 <= eps <= 255 else ""
        raise ValueError(f"eps={eps:g} is out of range for Linf on images in [0, 1]: need 0 < eps < 1{hint}")
    channels, height, width = IMAGE_SHAPE
    diameter = math.sqrt(channels * height * width)  # L2 distance between the all-zero and all-one images
    if threat_model == "L2" and not 0 < eps < diameter:
        raise ValueError(
            f"eps={eps:g} is out of range for L2 on 32x32 RGB images in [0, 1]: need 0 < eps < {diameter:.1f}"
        )
    return eps
