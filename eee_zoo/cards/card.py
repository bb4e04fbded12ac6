"""The typed card (:class:`ZooCard`), the names a checkpoint may take and the constants of the file format."""

from __future__ import annotations

import copy
import math
import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..datasets import DEFAULT_EPS, NUM_CLASSES, TITLES, parse_dataset, parse_threat_model
from .results import best_known_result

__all__ = [
    "CARD_FILENAME",
    "CARD_FORMAT_VERSION",
    "CONFIG_FILENAME",
    "DATASETS",
    "DATASET_TITLES",
    "DEFAULT_ORG",
    "DEFAULT_STORAGE_DTYPE",
    "INDEX_FILENAME",
    "INDEX_SUFFIX",
    "META_KEY",
    "ORG_ENV",
    "SHA256_RE",
    "SHARD_NAME_RE",
    "SHARD_PATTERN",
    "STORAGE_DTYPES",
    "TASK_TYPE",
    "WEIGHTS_FILENAME",
    "ZooCard",
    "default_org",
    "default_repo_id",
    "is_valid_name",
]

CARD_FORMAT_VERSION = 1
CARD_FILENAME = "README.md"
CONFIG_FILENAME = "config.json"
WEIGHTS_FILENAME = "model.safetensors"
INDEX_FILENAME = "model.safetensors.index.json"  # a sharded checkpoint: the standard Hugging Face index
SHARD_PATTERN = "model{suffix}.safetensors"  # its shards: model-00001-of-00003.safetensors, ...
# How floating-point tensors are stored; integer buffers (BatchNorm's num_batches_tracked) are kept as they are.
STORAGE_DTYPES = ("float32", "bfloat16")
DEFAULT_STORAGE_DTYPE = "float32"

DEFAULT_ORG = "eee-zoo"
ORG_ENV = "EEE_ZOO_HUB_ORG"

# RobustBench's names; value = number of classes (checked against the architecture): eee_zoo.datasets' table.
DATASETS: dict[str, int] = NUM_CLASSES
DATASET_TITLES = TITLES

META_KEY = "eee_zoo"
TASK_TYPE = "image-classification"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
SHARD_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.safetensors$")
INDEX_SUFFIX = ".safetensors.index.json"


def is_valid_name(name: Any) -> bool:
    """Whether ``name`` can name a checkpoint (a folder and part of a Hub repo name)."""
    return isinstance(name, str) and bool(_NAME_RE.match(name)) and "--" not in name and ".." not in name


def default_org() -> str:
    """The Hub organisation for new cards: env ``EEE_ZOO_HUB_ORG``, else ``DEFAULT_ORG``."""
    return os.environ.get(ORG_ENV) or DEFAULT_ORG


def default_repo_id(name: str, dataset: str, threat_model: str, org: str | None = None) -> str:
    """``<org>/<dataset>-<threat_model>-<name>``: RobustBench names are unique only per dataset/threat model."""
    return f"{org or default_org()}/{parse_dataset(dataset)}-{parse_threat_model(threat_model)}-{name}"


@dataclass
class ZooCard:
    """Typed view of one model card (see the module docstring for the file format)."""

    name: str
    dataset: str
    threat_model: str
    architecture: dict[str, Any]
    repo_id: str
    revision: str
    filename: str
    sha256: str
    stochastic_inference: bool
    training: dict[str, Any] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)
    card_path: Path | None = None
    storage_dtype: str = DEFAULT_STORAGE_DTYPE
    shards: dict[str, str] = field(default_factory=dict)  # shard file name (beside the index) -> sha256

    @property
    def sharded(self) -> bool:
        """Whether ``filename`` is a Hugging Face index naming the :attr:`shards`."""
        return bool(self.shards)

    def shard_filenames(self) -> list[str]:
        """The shards' paths in the repo (beside the index), in order; empty for a single-file checkpoint."""
        folder = posixpath.dirname(self.filename)
        return [posixpath.join(folder, name) for name in sorted(self.shards)]

    @property
    def folder(self) -> Path | None:
        """The card's Hub-ready folder (weights may ship beside the README)."""
        return self.card_path.parent if self.card_path is not None else None

    def metadata(self) -> dict[str, Any]:
        """The ``eee_zoo`` front-matter block."""
        return {
            "format_version": CARD_FORMAT_VERSION,
            "name": self.name,
            "dataset": self.dataset,
            "threat_model": self.threat_model,
            "repo_id": self.repo_id,
            "revision": self.revision,
            "filename": self.filename,
            "sha256": self.sha256,
            **({"shards": dict(sorted(self.shards.items()))} if self.shards else {}),
            "stochastic_inference": self.stochastic_inference,
            # Recorded only when not the default, so that older cards are rewritten unchanged.
            **({"storage_dtype": self.storage_dtype} if self.storage_dtype != DEFAULT_STORAGE_DTYPE else {}),
            "architecture": copy.deepcopy(self.architecture),
            "training": copy.deepcopy(self.training),
        }

    def best_known(self, eps: float | None = None) -> dict[str, Any] | None:
        """The headline: the lowest robust accuracy any attack reached on the deployed model at ``eps`` (default: the
        threat model's default eps), as :func:`~eee_zoo.cards.best_known_result` picks it; None where none was."""
        eps = DEFAULT_EPS[self.threat_model] if eps is None else eps
        same = [r for r in self.results if r["norm"] == self.threat_model and r["eps"] is not None]
        same = [r for r in same if math.isclose(r["eps"], eps, rel_tol=1e-4)]
        return best_known_result(same, self.stochastic_inference)

    def deployed_clean(self) -> dict[str, Any] | None:
        """The clean accuracy of the inference mode the checkpoint ships with (or of a result that did not record its
        mode) measured on the most examples; None where there is none."""
        cleans = [r for r in self.results if r["metric"] == "clean_accuracy"]
        deployed = [r for r in cleans if r.get("stochastic") in (None, self.stochastic_inference)]
        return max(deployed, key=lambda r: r["n_examples"], default=None)

    def best_result(self, metric: str, version: str | None = None) -> dict[str, Any] | None:
        """The result with the most examples for ``metric`` (and AutoAttack ``version``), if any."""
        matches = [r for r in self.results if r["metric"] == metric and (version is None or r["version"] == version)]
        return max(matches, key=lambda r: r["n_examples"], default=None)
