"""Parsing a card's text into a :class:`ZooCard` and checking every field; problems raise :class:`CardError`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from ..datasets import THREAT_MODELS
from .card import (
    CARD_FORMAT_VERSION,
    DATASETS,
    DEFAULT_STORAGE_DTYPE,
    INDEX_SUFFIX,
    META_KEY,
    SHA256_RE,
    SHARD_NAME_RE,
    STORAGE_DTYPES,
    ZooCard,
    is_valid_name,
)
from .fields import CardError, Fields
from .results import IDENTITY_KEYS, result_identity, validate_result

__all__ = ["model_card_from_text", "parse_card", "validate_card"]


def model_card_from_text(text: str, path: Path | None) -> ModelCard:
    """``huggingface_hub.ModelCard`` of a card's text; unparsable front matter raises :class:`CardError`."""
    try:
        return ModelCard(text)
    except Exception as e:  # yaml.YAMLError, or ValueError from an unparsable model-index
        raise CardError(path, "front matter", f"cannot be parsed: {e}") from None


def parse_card(model_card: ModelCard, path: Path | None) -> ZooCard:
    """The checked :class:`ZooCard` of a parsed card: its ``eee_zoo`` block, then its results against it."""
    data = model_card.data
    meta = data.get(META_KEY)
    if meta is None:
        raise CardError(path, META_KEY, "missing (not an eee-zoo card?)")
    if not isinstance(meta, dict):
        raise CardError(path, META_KEY, f"expected a mapping, got {type(meta).__name__}")
    f = Fields(meta, path, META_KEY)
    version = f.integer("format_version")
    if version != CARD_FORMAT_VERSION:
        raise CardError(path, f"{META_KEY}.format_version", f"{version} is not supported ({CARD_FORMAT_VERSION})")
    card = ZooCard(
        name=f.string("name"),
        dataset=f.string("dataset"),
        threat_model=f.string("threat_model"),
        architecture=f.mapping("architecture"),
        repo_id=f.string("repo_id"),
        revision=f.string("revision"),
        filename=f.string("filename"),
        sha256=f.string("sha256"),
        stochastic_inference=f.boolean("stochastic_inference"),
        training=f.mapping("training", required=False) or {},
        card_path=path,
        storage_dtype=f.string("storage_dtype", required=False) or DEFAULT_STORAGE_DTYPE,
        shards=f.mapping("shards", required=False) or {},
    )
    validate_card(card, path)  # the card's own fields first: results are checked against them
    card.results = _parse_results(data.eval_results or [], card, path)
    return card


def _parse_results(eval_results: list[EvalResult], card: ZooCard, path: Path | None) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    seen: set[tuple] = set()
    for i, er in enumerate(eval_results):
        where = f"model-index.results[{i}]"
        if er.dataset_type != card.dataset:
            raise CardError(path, f"{where}.dataset.type", f"{er.dataset_type!r} but the card is for {card.dataset!r}")
        args = er.metric_args if er.metric_args is not None else {}
        if not isinstance(args, dict):
            raise CardError(path, f"{where}.args", f"expected a mapping, got {type(args).__name__}")
        raw = {"metric": er.metric_type, "value": er.metric_value, "version": None, "norm": None, "eps": None}
        raw.update(args)  # None-valued keys are dropped by huggingface_hub when writing; they default to None here
        result = validate_result(raw, threat_model=card.threat_model, path=path, where=where)
        key = result_identity(result)
        if key in seen:
            raise CardError(path, where, f"duplicate result {dict(zip(IDENTITY_KEYS, key))}")
        seen.add(key)
        results.append(result)
    return results


def validate_card(card: ZooCard, path: Path | None) -> None:
    """Check a card's own fields (not its results); the first problem raises :class:`CardError`."""
    m = META_KEY
    if not is_valid_name(card.name):
        raise CardError(path, f"{m}.name", f"{card.name!r} is not a valid model name (letters, digits, '_', '.', '-')")
    if card.dataset not in DATASETS:
        raise CardError(path, f"{m}.dataset", f"unknown dataset {card.dataset!r}; choose one of {sorted(DATASETS)}")
    if card.threat_model not in THREAT_MODELS:
        raise CardError(
            path,
            f"{m}.threat_model",
            f"unknown threat model {card.threat_model!r}; choose one of {list(THREAT_MODELS)}",
        )
    try:
        validate_repo_id(card.repo_id)
    except HFValidationError as e:
        raise CardError(path, f"{m}.repo_id", str(e)) from None
    if "/" not in card.repo_id:
        raise CardError(path, f"{m}.repo_id", f"{card.repo_id!r} must be '<organisation>/<name>'")
    if not card.revision.strip() or any(c.isspace() for c in card.revision):
        raise CardError(path, f"{m}.revision", f"{card.revision!r} is not a branch, tag or commit")
    _validate_shards(card, path)
    parts = card.filename.split("/")
    suffix = INDEX_SUFFIX if card.shards else ".safetensors"
    if not card.filename.endswith(suffix) or card.filename.startswith("/") or ".." in parts:
        what = "a Hugging Face index (*.safetensors.index.json)" if card.shards else "a .safetensors file"
        raise CardError(path, f"{m}.filename", f"{card.filename!r} must be a relative path to {what}")
    if not SHA256_RE.match(card.sha256):
        raise CardError(path, f"{m}.sha256", f"{card.sha256!r} is not 64 lowercase hex digits")
    if card.storage_dtype not in STORAGE_DTYPES:
        problem = f"unknown storage dtype {card.storage_dtype!r}; choose one of {list(STORAGE_DTYPES)}"
        raise CardError(path, f"{m}.storage_dtype", problem)
    if not isinstance(card.stochastic_inference, bool):
        raise CardError(path, f"{m}.stochastic_inference", "expected true or false")
    _validate_architecture(card, path)
    _validate_training(card.training, path)


def _validate_shards(card: ZooCard, path: Path | None) -> None:
    m = META_KEY
    if not isinstance(card.shards, dict):
        raise CardError(path, f"{m}.shards", f"expected a mapping of shard file name to sha256, got {card.shards!r}")
    if card.filename.endswith(INDEX_SUFFIX) and not card.shards:
        raise CardError(path, f"{m}.shards", f"missing: {card.filename!r} is an index; list every shard's sha256")
    for name, sha in card.shards.items():
        if not isinstance(name, str) or not SHARD_NAME_RE.match(name) or ".." in name:
            raise CardError(path, f"{m}.shards", f"{name!r} is not a shard file name (*.safetensors beside the index)")
        if not isinstance(sha, str) or not SHA256_RE.match(sha):
            raise CardError(path, f"{m}.shards.{name}", f"{sha!r} is not 64 lowercase hex digits")


def _validate_architecture(card: ZooCard, path: Path | None) -> None:
    f = Fields(card.architecture, path, f"{META_KEY}.architecture")
    num_classes = f.integer("num_classes", lo=2)
    if num_classes != DATASETS.get(card.dataset, num_classes):
        raise CardError(
            path,
            f"{META_KEY}.architecture.num_classes",
            f"{num_classes} but {card.dataset} has {DATASETS[card.dataset]}",
        )
    backbone = Fields(f.mapping("backbone"), path, f"{META_KEY}.architecture.backbone")
    backbone.string("name")
    backbone.mapping("kwargs", required=False)
    taps = f.value("taps")
    if not isinstance(taps, list) or not all(isinstance(t, str) for t in taps):
        raise CardError(path, f"{META_KEY}.architecture.taps", f"expected a list of strings, got {taps!r}")
    f.mapping("stack", required=False)


def _validate_training(training: dict[str, Any], path: Path | None) -> None:
    f = Fields(training, path, f"{META_KEY}.training")
    f.string("recipe", required=False)
    f.integer("seed", required=False)
