"""Weights on disk and on the Hugging Face Hub: finding them, checking them, exporting and pushing them.

Where ``load_model`` looks for a checkpoint's weights, in order:

1. an explicit ``model_dir`` in RobustBench's layout: ``<model_dir>/<dataset>/<threat_model>/<name>.safetensors``;
   when one is given it is the only place looked at (a missing folder or file is an error naming the path, never
   a silent fall-back to the card's folder or the Hub);
2. the card's own folder (``model_cards/<dataset>/<threat_model>/<Name>/<filename>``), when the weights ship there;
3. ``huggingface_hub.hf_hub_download(repo_id, filename, revision=<the card's pinned revision>)``, which with
   ``HF_HUB_OFFLINE=1`` serves the file from the local cache without touching the network.

A sharded checkpoint (``export(..., max_shard_size=...)``) is the standard Hugging Face layout: an index
``model.safetensors.index.json`` and shards ``model-00001-of-0000N.safetensors`` beside it. It is found the same
way, by its index (``<model_dir>/<dataset>/<threat_model>/<name>.safetensors.index.json`` with the shards beside
it; the card's folder; or the Hub, the index and then every shard at the commit the index came from).

Whatever the source, every file's sha256 (the single file's, or the index's and each shard's) must equal the card's
before a single tensor is read.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import shutil
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled
from huggingface_hub.file_download import repo_folder_name

from ._io import atomic_path, atomic_write_json, sha256_file
from .cards import (
    CARD_FILENAME,
    CONFIG_FILENAME,
    DEFAULT_STORAGE_DTYPE,
    FIGURES_FOLDER,
    INDEX_FILENAME,
    SHARD_PATTERN,
    STORAGE_DTYPES,
    WEIGHTS_FILENAME,
    ZooCard,
    default_repo_id,
    load_card,
    parse_dataset,
    parse_threat_model,
    set_revision,
    write_card,
)

if TYPE_CHECKING:
    import torch.nn as nn

__all__ = [
    "HF_CACHE_ENV", "HubConnectionError", "WeightsChecksumError", "WeightsNotFoundError", "checkpoint_files",
    "export", "hub_cache_dir", "push", "read_index", "resolve_weights", "robustbench_path", "stale_patterns",
    "upload_patterns", "verify_folder", "verify_sha256", "verify_weights",
]  # fmt: skip

logger = logging.getLogger(__name__)  # a child of the "eee_zoo" logger

HF_CACHE_ENV = "HF_HUB_CACHE"
_HUB_ERRORS = (EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled)  # Local/RemoteEntryNotFound, repo, revision
# The files of the layouts ``export`` writes (single file, or index + shards): what an overwrite replaces or removes.
_LAYOUT_RE = re.compile(r"model(-\d{5}-of-\d{5})?\.safetensors|model\.safetensors\.index\.json")
_LAYOUT_GLOBS = ("model.safetensors", "model.safetensors.index.json", "model-?????-of-?????.safetensors")
_INDEX_SHA256_KEY = "eee_zoo_shards_sha256"  # in the index's metadata: its own sha256 then pins every shard


class WeightsNotFoundError(FileNotFoundError):
    """The weights are in none of the places looked at; the message lists them and how to get the file."""


class WeightsChecksumError(ValueError):
    """A weights file whose sha256 differs from its card's: never loaded."""


class HubConnectionError(ConnectionError):
    """The Hugging Face Hub could not be reached (no network, offline mode, proxy, DNS): nothing was changed there."""


# ---------------------------------------------------------------------------------------------- finding
def robustbench_path(
    model_dir: str | os.PathLike, name: str, dataset: str, threat_model: str, *, sharded: bool = False
) -> Path:
    """``<model_dir>/<dataset>/<threat_model>/<name>.safetensors`` (RobustBench's layout).

    With ``sharded=True``, the index ``<name>.safetensors.index.json``; its shards lie beside it under the names
    the index gives them.
    """
    suffix = ".safetensors.index.json" if sharded else ".safetensors"
    return Path(model_dir) / parse_dataset(dataset) / parse_threat_model(threat_model) / f"{name}{suffix}"


def hub_cache_dir(cache_dir: str | os.PathLike | None = None) -> str | None:
    """The Hub cache to use: ``cache_dir``, else ``$HF_HUB_CACHE`` read *now*, else huggingface_hub's default.

    huggingface_hub reads ``HF_HUB_CACHE`` once, at import; reading it at call time lets a process (or a
    test) point the cache elsewhere after ``huggingface_hub`` was imported.
    """
    if cache_dir is not None:
        return str(cache_dir)
    return os.environ.get(HF_CACHE_ENV) or None


def _offline() -> bool:
    # Same reason as above: HF_HUB_OFFLINE is read by huggingface_hub at import; honour a later setting too.
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {
        "1",
        "ON",
        "YES",
        "TRUE",
    }


def resolve_weights(
    card: ZooCard,
    *,
    model_dir: str | os.PathLike | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[Path, str]:
    """Find a checkpoint's weights; returns ``(path, source)`` with source ``model_dir``/``card_folder``/``hub``.

    For a sharded card, ``path`` is the index and every shard is beside it (from the Hub: each shard is downloaded
    at the commit the index came from). Nothing is checked or read here: :func:`verify_weights` does that.

    An explicit ``model_dir`` is the only place looked at: the weights must be there.

    Raises:
        WeightsNotFoundError: not found anywhere (or not in ``model_dir``), or a shard missing beside its index; the
            message says exactly where it looked and how to get the files.
    """
    looked = []
    if model_dir is not None:
        path = robustbench_path(model_dir, card.name, card.dataset, card.threat_model, sharded=card.sharded)
        if path.is_file():
            _require_shards(card, path, "model_dir")
            return path, "model_dir"
        what = "the index and its shards" if card.sharded else "the weights file"
        root = Path(model_dir)
        problem = (
            "does not exist"
            if not root.exists()
            else "is not a folder"
            if not root.is_dir()
            else f"holds no {path.relative_to(root)}"
        )
        raise WeightsNotFoundError(
            f"model_dir {model_dir} {problem}: expected {what} of {card.name!r} ({card.dataset}/{card.threat_model}) "
            f"at {path} (RobustBench layout <model_dir>/<dataset>/<threat_model>/{path.name}); fix the path, or "
            "leave model_dir out to load the weights from the card's folder or the Hugging Face Hub"
        )
    if card.folder is not None:
        path = card.folder / card.filename
        if path.is_file():
            _require_shards(card, path, "the card's folder")
            return path, "card_folder"
        looked.append(f"{path} (beside the card)")

    revision = revision or card.revision
    cache = hub_cache_dir(cache_dir)
    offline = _offline()
    if not offline and not _in_hub_cache(card, revision, cache):
        # Without a connection huggingface_hub retries for about 25 s before failing: say what is going on.
        logger.warning(
            "weights of %r are neither beside its card nor in the Hub cache: downloading %s from the Hugging Face "
            "Hub (%s at revision %s; without a connection huggingface_hub retries for about 25 s before giving up; "
            "HF_HUB_OFFLINE=1 uses the local cache only)",
            card.name,
            card.filename + (f" and its {len(card.shards)} shards" if card.sharded else ""),
            card.repo_id,
            revision,
        )
    try:
        return _download_weights(card, revision, cache_dir=cache, local_files_only=offline), "hub"
    except (*_HUB_ERRORS, _ShardNotFoundError) as e:
        from huggingface_hub import constants

        storage = Path(cache or constants.HF_HUB_CACHE) / repo_folder_name(repo_id=card.repo_id, repo_type="model")
        filename, at = (e.filename, e.commit) if isinstance(e, _ShardNotFoundError) else (card.filename, revision)
        cause = e.__cause__ if isinstance(e, _ShardNotFoundError) else e
        where = (
            f"the Hugging Face Hub: {card.repo_id}/{filename} at revision {at!r} "
            f"({'offline; ' if offline else ''}cache {storage}): {type(cause).__name__}"
        )
        files = " ".join([card.filename, *card.shard_filenames()])
        download = f"`hf download {card.repo_id} {files} --revision {at}`"
        how = (
            f"unset HF_HUB_OFFLINE so load_model can download them, or fetch them into the cache while online with "
            f"{download}"
            if offline
            else f"check the repo id, the revision and your connection, or fetch them with {download}"
        )
        if isinstance(e, _ShardNotFoundError):  # the index was there, one of its shards was not
            raise WeightsNotFoundError(
                f"shard {posixpath.basename(filename)!r} of {card.name!r} ({card.dataset}/{card.threat_model}) not "
                f"found (its index was); looked in {where}. To get it: {how}"
            ) from cause
        looked.append(where)
        rb_path = robustbench_path("<model_dir>", card.name, card.dataset, card.threat_model, sharded=card.sharded)
        what = "the index and its shards" if card.sharded else "the file"
        raise WeightsNotFoundError(
            f"weights of {card.name!r} ({card.dataset}/{card.threat_model}) not found; looked in: "
            + "; ".join(looked)
            + f". To get them: {how}; or put {what} at {rb_path} and pass model_dir, or beside the card"
        ) from e


def _in_hub_cache(card: ZooCard, revision: str, cache: str | None) -> bool:
    """Whether the card's weights file is already in the Hub cache at ``revision`` (no download needed)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(card.repo_id, card.filename, cache_dir=cache, revision=revision)
    return isinstance(found, str)


class _ShardNotFoundError(WeightsNotFoundError):
    def __init__(self, card: ZooCard, filename: str, commit: str) -> None:
        self.filename, self.commit = filename, commit
        super().__init__(f"shard {filename!r} of {card.name!r} not found in {card.repo_id} at revision {commit!r}")


def _download_weights(card: ZooCard, revision: str, **kwargs: Any) -> Path:
    """``hf_hub_download`` the card's weights file and, for an index, every shard at the commit the index came from
    (a branch may move between two downloads); returns the file or the index, with the shards beside it.

    Raises the Hub's errors for the file or index, :class:`_ShardNotFoundError` (from the Hub's) for a shard.
    """
    path = Path(hf_hub_download(card.repo_id, card.filename, revision=revision, **kwargs))
    if card.sharded:
        commit = _snapshot_commit(path, card.filename) or revision
        for filename in card.shard_filenames():
            try:
                hf_hub_download(card.repo_id, filename, revision=commit, **kwargs)
            except _HUB_ERRORS as e:
                raise _ShardNotFoundError(card, filename, commit) from e
    return path


def _require_shards(card: ZooCard, index: Path, where: str) -> None:
    """A sharded checkpoint found by its index must have every shard beside it; else name the first missing one."""
    for name in sorted(card.shards):
        if not (index.parent / name).is_file():
            raise WeightsNotFoundError(
                f"shard {name!r} of {card.name!r} ({card.dataset}/{card.threat_model}) is missing: its index "
                f"{index} is in {where} but {index.parent / name} is not; put all {len(card.shards)} shards "
                f"({', '.join(sorted(card.shards))}) beside the index"
            )


def _snapshot_commit(path: Path, filename: str) -> str | None:
    """The commit of a file hf_hub_download returned: ``.../snapshots/<commit>/<filename>``."""
    snapshot = path.parents[len(filename.split("/")) - 1]
    return snapshot.name if snapshot.parent.name == "snapshots" else None


def verify_sha256(path: str | os.PathLike, expected: str, *, card_path: str | os.PathLike | None = None) -> None:
    """Refuse a weights file whose sha256 is not the card's (corrupted, truncated, tampered with, or stale)."""
    actual = sha256_file(path)
    if actual != expected:
        raise WeightsChecksumError(
            f"sha256 mismatch for {path}: the file has {actual} but the card"
            f"{f' {card_path}' if card_path else ''} expects {expected}; refusing to load it "
            "(re-download the file, or re-export the model if the card is out of date)"
        )


def read_index(path: str | os.PathLike) -> dict[str, Any]:
    """A Hugging Face safetensors index, checked for shape: ``{"metadata": {...}, "weight_map": {key: shard}}``."""
    path = Path(path)
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a valid safetensors index ({e})") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise ValueError(f"{path} is not a valid safetensors index (no 'weight_map' of tensor name -> shard file)")
    bad = sorted({v for v in weight_map.values() if "/" in v or "\\" in v or v in ("", ".", "..")})
    if bad:
        raise ValueError(f"{path}: shards must lie beside the index, got {bad}")
    return index


def verify_weights(card: ZooCard, path: str | os.PathLike) -> list[Path]:
    """Check the weights :func:`resolve_weights` found against the card *before* any tensor is read.

    A single file: its sha256. A sharded checkpoint: the index's sha256, then that the index names exactly the
    card's shards, then every shard's sha256 (a missing shard is a :class:`WeightsNotFoundError`, a tampered one a
    :class:`WeightsChecksumError`, both naming the shard). Returns the weights files, in loading order.
    """
    path = Path(path)
    verify_sha256(path, card.sha256, card_path=card.card_path)
    if not card.sharded:
        return [path]
    index = read_index(path)  # its bytes are the card's: safe to parse
    named = set(index["weight_map"].values())
    if named != set(card.shards):
        raise WeightsChecksumError(
            f"{path} names the shards {sorted(named)} but the card{f' {card.card_path}' if card.card_path else ''} "
            f"lists {sorted(card.shards)}; refusing to load (re-export the model)"
        )
    metadata = index.get("metadata")
    recorded = metadata.get(_INDEX_SHA256_KEY) if isinstance(metadata, dict) else None
    if recorded is not None and recorded != card.shards:
        raise WeightsChecksumError(f"{path} records other shard sha256s than the card {card.card_path}; refusing")
    files = []
    for name in sorted(card.shards):
        shard = path.parent / name
        if not shard.is_file():
            raise WeightsNotFoundError(
                f"shard {name!r} of {card.name!r} is missing: no {shard} beside its index {path}"
            )
        verify_sha256(shard, card.shards[name], card_path=card.card_path)
        files.append(shard)
    return files


def verify_folder(folder: str | os.PathLike) -> ZooCard:
    """Check a Hub-ready folder before publishing: valid card, weights matching its sha256s, matching config.json.

    For a sharded checkpoint, the index and every shard are checked (:func:`verify_weights`).
    """
    folder = Path(folder)
    card = load_card(folder / CARD_FILENAME)
    weights = folder / card.filename
    if not weights.is_file():
        raise FileNotFoundError(f"{folder}: the card names weights {card.filename!r} but there is no {weights}")
    verify_weights(card, weights)
    config_path = folder / CONFIG_FILENAME
    if config_path.is_file() and json.loads(config_path.read_text()) != card.architecture:
        raise ValueError(f"{config_path} differs from the architecture in {card.card_path}")
    return card


# ---------------------------------------------------------------------------------------------- export
def export(
    model: nn.Module,
    name: str,
    out_dir: str | os.PathLike,
    *,
    dataset: Any = "cifar10",
    threat_model: Any = "Linf",
    repo_id: str | None = None,
    revision: str = "main",
    training: dict[str, Any] | None = None,
    description: str | None = None,
    overwrite: bool = False,
    max_shard_size: int | str | None = None,
    storage_dtype: str | None = None,
) -> Path:
    """Write a Hub-ready checkpoint folder: ``model.safetensors``, ``config.json`` and the card ``README.md``.

    The card records the architecture (``model.config``), the weights' sha256, whether inference is stochastic
    (``model.stochastic``), the training record, and the Hub location (``repo_id`` defaults to
    ``<org>/<dataset>-<threat_model>-<name>``). It holds no results: ``eee-zoo benchmark --write-card`` adds them.

    With ``max_shard_size`` and a state dict larger than that, the weights are the standard Hugging Face sharded
    layout instead of ``model.safetensors``: shards ``model-00001-of-0000N.safetensors`` split by
    ``huggingface_hub.split_torch_state_dict_into_shards`` and the index ``model.safetensors.index.json``. The card
    then names the index (``filename``, ``sha256``) and lists every shard's sha256 (``shards``); the index's
    metadata records them too, so the index's sha256 alone identifies the whole checkpoint.

    All files are written into a temporary folder beside ``out_dir`` first. A new ``out_dir`` appears with one
    rename; an existing one (``overwrite=True``) gets each file replaced atomically, weights first and the card
    last, so a crash can leave old and new files side by side but never a half-written file, and the sha256
    check refuses such a mix. Weights files of the old layout that the new one does not use (old shards, an old
    single file or index) are removed only after the new card is in place. Old results are dropped: they belonged
    to the old weights.

    Args:
        model: a :class:`~eee_zoo.models.SelfEnsemble` built with ``from_config`` (DDP/compiled wrappers are unwrapped).
        name: the checkpoint's name (letters, digits, ``_``, ``.``, ``-``).
        out_dir: the folder to write; to register the model use ``registry.card_folder(name, dataset, threat_model)``.
        training: e.g. ``{"recipe": "training/recipes/x.yaml", "seed": 0, "command": "eee-zoo train ..."}``.
        description: a paragraph for the top of the card.
        overwrite: replace an existing checkpoint in ``out_dir``.
        max_shard_size: largest shard, in bytes or as ``"5GB"``/``"500MB"`` (huggingface_hub's units); ``None``
            writes one file whatever the size. A single tensor larger than this gets a shard of its own.
        storage_dtype: ``"float32"`` (what ``None`` means) or ``"bfloat16"``: the dtype floating-point tensors are
            stored in; integer buffers (BatchNorm's ``num_batches_tracked``) are kept as they are. ``load_model``
            copies bfloat16 values into the float32 model exactly. The card records ``storage_dtype: bfloat16``.

    Returns:
        ``out_dir``. ``model.eee_info`` is set to the new card's data.
    """
    import torch

    model = _unwrap(model)
    dataset, threat_model = parse_dataset(dataset), parse_threat_model(threat_model)
    storage_dtype = DEFAULT_STORAGE_DTYPE if storage_dtype is None else storage_dtype
    if storage_dtype not in STORAGE_DTYPES:
        raise ValueError(f"unknown storage_dtype {storage_dtype!r}; choose one of {list(STORAGE_DTYPES)}")
    if max_shard_size is not None and (
        isinstance(max_shard_size, bool)
        or not isinstance(max_shard_size, (int, str))
        or (isinstance(max_shard_size, int) and max_shard_size < 1)
    ):
        raise ValueError(
            f"max_shard_size must be a positive number of bytes, a size like '5GB', or None; got {max_shard_size!r}"
        )
    out_dir = Path(out_dir)
    existing = checkpoint_files(out_dir)
    if existing and not overwrite:
        raise FileExistsError(f"{out_dir} already holds a checkpoint ({', '.join(existing)}); pass overwrite=True")
    config = model.config
    dtype = getattr(torch, storage_dtype)
    state = {
        k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().to("cpu")).contiguous()
        for k, v in model.state_dict().items()
    }

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()  # not mkdtemp: its 0700 mode would stick to the published folder
    try:
        weights, shards = _save_weights(state, tmp, max_shard_size)
        atomic_write_json(tmp / CONFIG_FILENAME, config)
        card = ZooCard(
            name=name,
            dataset=dataset,
            threat_model=threat_model,
            architecture=config,
            repo_id=repo_id or default_repo_id(name, dataset, threat_model),
            revision=revision,
            filename=weights,
            sha256=sha256_file(tmp / weights),
            stochastic_inference=bool(model.stochastic),
            training=dict(training or {}),
            card_path=out_dir / CARD_FILENAME,
            storage_dtype=storage_dtype,
            shards=shards,
        )
        write_card(card, tmp / CARD_FILENAME, description=description)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        # Shards, then the single file or the index, then config.json, then the card (which holds the sha256s).
        _move_into_place(tmp, out_dir, [*sorted(shards), weights, CONFIG_FILENAME, CARD_FILENAME])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    model.eee_info = card_info(card, weights_path=out_dir / weights, source="export")
    return out_dir


def _save_weights(state: dict[str, Any], folder: Path, max_shard_size: int | str | None) -> tuple[str, dict[str, str]]:
    """Write ``model.safetensors``, or shards + index when ``state`` is larger than ``max_shard_size``.

    Returns the card's ``filename`` and ``shards`` (empty for a single file).
    """
    from huggingface_hub import split_torch_state_dict_into_shards
    from safetensors.torch import save_file

    def save(tensors: dict[str, Any], filename: str) -> None:
        with atomic_path(folder / filename) as path:  # gives the file a normal mode (safetensors: 0600)
            save_file(tensors, str(path), metadata={"format": "pt"})

    split = None
    if max_shard_size is not None:
        split = split_torch_state_dict_into_shards(state, filename_pattern=SHARD_PATTERN, max_shard_size=max_shard_size)
    if split is None or not split.is_sharded:
        save(state, WEIGHTS_FILENAME)
        return WEIGHTS_FILENAME, {}
    shards = {}
    for filename, keys in split.filename_to_tensors.items():
        save({k: state[k] for k in keys}, filename)
        shards[filename] = sha256_file(folder / filename)
    index = {
        "metadata": {**split.metadata, _INDEX_SHA256_KEY: dict(sorted(shards.items()))},
        "weight_map": dict(sorted(split.tensor_to_filename.items())),
    }
    atomic_write_json(folder / INDEX_FILENAME, index)
    return INDEX_FILENAME, shards


def checkpoint_files(folder: str | os.PathLike) -> list[str]:
    """The names of the checkpoint files (weights of either layout, ``config.json``, card) already in ``folder``.

    :func:`export` refuses such a folder without ``overwrite=True``; callers can check first (before loading a model).
    """
    folder = Path(folder)
    existing = [f.name for f in _layout_files(folder)]
    return existing + [f for f in (CONFIG_FILENAME, CARD_FILENAME) if (folder / f).exists()]


def _layout_files(folder: Path) -> list[Path]:
    """The weights files of ``folder`` that belong to an ``export`` layout (single file, index, shards)."""
    if not folder.is_dir():
        return []
    return sorted(f for f in folder.iterdir() if _LAYOUT_RE.fullmatch(f.name))


def _move_into_place(tmp: Path, out_dir: Path, names: list[str]) -> None:
    if not out_dir.exists():
        os.rename(tmp, out_dir)  # atomic: the folder appears complete or not at all
        return
    for name in names:  # the card, holding the sha256s, last
        os.replace(tmp / name, out_dir / name)
    # Only now that the card names the new files: drop the old layout's leftovers (a crash before this point
    # leaves unused files, never a card naming missing ones).
    for stale in _layout_files(out_dir):
        if stale.name not in names:
            stale.unlink(missing_ok=True)


def _unwrap(model: Any) -> Any:
    import torch.nn as nn

    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
        else:
            return model


def card_info(card: ZooCard, *, weights_path: Path, source: str, revision: str | None = None) -> dict[str, Any]:
    """``model.eee_info``: the card's data and where the weights came from.

    ``weights_path`` is the single file or the index; ``shards`` lists a sharded checkpoint's files (file name,
    sha256, path beside the index) and is empty for a single file.
    """
    weights_path = Path(weights_path)
    return {
        "name": card.name,
        "dataset": card.dataset,
        "threat_model": card.threat_model,
        "sha256": card.sha256,
        "stochastic_inference": card.stochastic_inference,
        "repo_id": card.repo_id,
        "revision": revision or card.revision,
        "filename": card.filename,
        "card_path": str(card.card_path) if card.card_path is not None else None,
        "weights_path": str(weights_path),
        "weights_source": source,
        "storage_dtype": card.storage_dtype,
        "shards": [
            {"filename": name, "sha256": sha, "path": str(weights_path.parent / name)}
            for name, sha in sorted(card.shards.items())
        ],
    }


# ---------------------------------------------------------------------------------------------- push
def push(
    folder: str | os.PathLike,
    repo_id: str | None = None,
    *,
    revision: str | None = None,
    token: str | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
    pin: bool = True,
) -> str:
    """Upload a checkpoint folder to the Hub with ``HfApi.upload_folder``; returns the commit hash.

    A thin wrapper: checks the folder first (:func:`verify_folder`, every shard included), creates the repo (and
    the branch ``revision``) if needed, uploads only the card, ``config.json`` and the weights (the single file, or
    the index and its shards), deletes in the same commit the repo's weights files of the other layout (an old
    ``model.safetensors``, index or shards this upload does not replace), and with ``pin=True``
    rewrites the local card's ``revision`` to the new commit so later downloads are pinned to it (when
    ``repo_id`` is the card's own). Needs the
    network and a write token (``token`` or ``hf auth login``); not exercised by the offline tests. A Hub that
    cannot be reached is a :class:`HubConnectionError` saying so in one line.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    card = verify_folder(folder)
    repo_id = repo_id or card.repo_id
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision not in (None, "main"):
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            revision=revision,
            commit_message=commit_message or f"Upload {card.name} ({card.dataset}/{card.threat_model})",
            allow_patterns=upload_patterns(card),
            delete_patterns=stale_patterns(card),  # upload_folder never deletes what the same commit uploads
        )
    except Exception as e:
        if not _is_connection_error(e):
            raise
        if _offline():
            how = "unset HF_HUB_OFFLINE and push again"
        else:
            how = "check the connection (and HF_ENDPOINT or proxy settings if set), then push again"
        raise HubConnectionError(
            f"could not reach the Hugging Face Hub at {api.endpoint} to push {folder} to {repo_id} "
            f"({type(e).__name__}: {e}); a push is one commit, so nothing was half-uploaded: {how}"
        ) from e
    if pin and repo_id == card.repo_id:  # a commit of another repo means nothing to this card
        set_revision(folder / CARD_FILENAME, commit.oid)
    return commit.oid


def _is_connection_error(error: BaseException) -> bool:
    """A failure to reach the Hub at all: socket errors, offline mode, and the HTTP client's transport errors.

    huggingface_hub's HTTP client (``httpx``, or ``httpx2`` in newer releases) raises transport errors that are not
    ``OSError``s; they are recognised by the client's base class, whichever module provides it.
    """
    if isinstance(error, (ConnectionError, TimeoutError)):  # OfflineModeIsEnabled is a ConnectionError
        return True
    for name in ("httpx2", "httpx"):
        transport = getattr(sys.modules.get(name), "TransportError", None)
        if isinstance(transport, type) and isinstance(error, transport):
            return True
    requests = sys.modules.get("requests")
    return requests is not None and isinstance(error, (requests.ConnectionError, requests.Timeout))


def upload_patterns(card: ZooCard) -> list[str]:
    """The files of a checkpoint folder that :func:`push` uploads: the card, ``config.json``, the weights and the
    card's figures (its relative image links must resolve on the Hub too)."""
    return [CARD_FILENAME, CONFIG_FILENAME, card.filename, *card.shard_filenames(), f"{FIGURES_FOLDER}/*.png"]


def stale_patterns(card: ZooCard) -> list[str]:
    """The repo's weights files (of either ``export`` layout) that :func:`push` replaces or deletes."""
    folder = posixpath.dirname(card.filename)
    return [posixpath.join(folder, pattern) for pattern in _LAYOUT_GLOBS]
