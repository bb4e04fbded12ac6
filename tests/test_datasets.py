"""eee_zoo.datasets: the one table of datasets, threat models and budgets, and the parsers every caller uses."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path

import numpy as np
import pytest

from eee_zoo import datasets
from eee_zoo.datasets import (
    DEFAULT_EPS,
    NUM_CLASSES,
    SPLIT_SIZE,
    THREAT_MODELS,
    check_eps,
    parse_dataset,
    parse_threat_model,
)

REPO = Path(__file__).resolve().parents[1]


class _Dataset(Enum):  # the shape of RobustBench's BenchmarkDataset / ThreatModel enums
    cifar_100 = "cifar100"
    linf = "Linf"


def test_parsers_accept_spellings_and_enums_and_name_the_choices() -> None:
    for spelling in ("cifar10", "CIFAR-10", " Cifar_10 "):
        assert parse_dataset(spelling) == "cifar10"
    assert parse_dataset(_Dataset.cifar_100) == "cifar100"
    assert (
        parse_threat_model("linf") == parse_threat_model(_Dataset.linf) == "Linf" and parse_threat_model("l2") == "L2"
    )
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'; choose one of \['cifar10', 'cifar100'\]"):
        parse_dataset("mnist")
    with pytest.raises(ValueError, match=r"unknown threat model 'L1'; choose one of \['Linf', 'L2'\]"):
        parse_threat_model("L1")
    with pytest.raises(ValueError, match="unknown dataset"):
        parse_dataset(10)


def test_eps_is_checked_against_its_threat_model() -> None:
    assert check_eps(np.float32(0.5), "L2") == 0.5 and type(check_eps(np.float32(0.5), "L2")) is float
    assert check_eps(DEFAULT_EPS["Linf"], "Linf") == 8 / 255
    with pytest.raises(ValueError, match=r"did you mean 8/255 = 0\.031373\?"):
        check_eps(8, "Linf")
    for bad, threat in ((True, "Linf"), (float("nan"), "Linf"), ("8/255", "Linf"), (0, "L2"), (60.0, "L2")):
        with pytest.raises(ValueError, match="eps"):
            check_eps(bad, threat)


def test_every_caller_reads_the_one_table() -> None:
    import sys

    from eee_zoo import cards, data, evaluation

    sys.path.insert(0, str(REPO))
    from training import recipe

    assert cards.DATASETS is NUM_CLASSES and cards.THREAT_MODELS is THREAT_MODELS
    assert cards.parse_dataset is parse_dataset and cards.parse_threat_model is datasets.parse_threat_model
    assert evaluation.DEFAULT_EPS is DEFAULT_EPS and evaluation.THREAT_MODELS is THREAT_MODELS
    for name, spec in data.DATASETS.items():
        assert spec.num_classes == NUM_CLASSES[name] and spec.sizes == datasets.SPLIT_SIZES[name]
        assert recipe.TEST_SIZE[name] == SPLIT_SIZE[name] and recipe.TRAIN_SIZE[name] == spec.sizes["train"]
    assert sorted(data.DATASETS) == sorted(NUM_CLASSES)


def test_no_module_keeps_a_table_of_its_own() -> None:
    """A literal like {"cifar10": 10} or {"Linf": 8 / 255} anywhere but eee_zoo/datasets.py is a second table."""
    table = re.compile(r'"cifar10":\s*(10|10000|50000)\b|"cifar100":\s*100\b|"Linf":\s*8\s*/\s*255')
    found = []
    for folder in ("eee_zoo", "training", "benchmarks"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if path == REPO / "eee_zoo" / "datasets.py":
                continue
            lines = enumerate(path.read_text().splitlines(), start=1)
            found += [f"{path.relative_to(REPO)}:{i}" for i, line in lines if table.search(line)]
    assert found == []
