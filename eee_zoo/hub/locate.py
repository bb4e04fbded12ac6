"""Finding a checkpoint's weights: RobustBench's ``model_dir`` layout, the card's folder, then the Hub (its cache
offline), a sharded checkpoint's index and every shard at one commit; and ``model.eee_info``, where they came from."""

from __future__ import annotations

import logging
import os
import posixpath
from pathlib import Path
from typing import Any

from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled
from huggingface_hub.file_download import repo_folder_name

from ..cards import ZooCard, parse_dataset, parse_threat_model
from .errors import WeightsNotFoundError

logger = logging.getLogger(__name__)  # a child of the "eee_zoo" logger

__all__ = [
    "HF_CACHE_ENV",
    "HUB_ERRORS",
    "ShardNotFoundError",
    "card_info",
    "download_weights",
    "hub_cache_dir",
    "offline",
    "require_shards",
    "resolve_weights",
    "robustbench_path",
    "snapshot_commit",
]

HF_CACHE_ENV = "HF_HUB_CACHE"
HUB_ERRORS = (EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled)  # Local/RemoteEntryNotFound, repo, revision


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


def offline() -> bool:
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
            require_shards(card, path, "model_dir")
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
            require_shards(card, path, "the card's folder")
            return path, "card_folder"
        looked.append(f"{path} (beside the card)")

    revision = revision or card.revision
    cache = hub_cache_dir(cache_dir)
    is_offline = offline()
    if not is_offline and not _in_hub_cache(card, revision, cache):
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
        return download_weights(card, revision, cache_dir=cache, local_files_only=is_offline), "hub"
    except (*HUB_ERRORS, ShardNotFoundError) as e:
        from huggingface_hub import constants

        storage = Path(cache or constants.HF_HUB_CACHE) / repo_folder_name(repo_id=card.repo_id, repo_type="model")
        filename, at = (e.filename, e.commit) if isinstance(e, ShardNotFoundError) else (card.filename, revision)
        cause = e.__cause__ if isinstance(e, ShardNotFoundError) else e
        where = (
            f"the Hugging Face Hub: {card.repo_id}/{filename} at revision {at!r} "
            f"({'offline; ' if is_offline else ''}cache {storage}): {type(cause).__name__}"
        )
        files = " ".join([card.filename, *card.shard_filenames()])
        download = f"`hf download {card.repo_id} {files} --revision {at}`"
        how = (
            f"unset HF_HUB_OFFLINE so load_model can download them, or fetch them into the cache while online with "
            f"{download}"
            if is_offline
            else f"check the repo id, the revision and your connection, or fetch them with {download}"
        )
        if isinstance(e, ShardNotFoundError):  # the index was there, one of its shards was not
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


class ShardNotFoundError(WeightsNotFoundError):
    def __init__(self, card: ZooCard, filename: str, commit: str) -> None:
        self.filename, self.commit = filename, commit
        super().__init__(f"shard {filename!r} of {card.name!r} not found in {card.repo_id} at revision {commit!r}")


def download_weights(card: ZooCard, revision: str, **kwargs: Any) -> Path:
    """``hf_hub_download`` the card's weights file and, for an index, every shard at the commit the index came from
    (a branch may move between two downloads); returns the file or the index, with the shards beside it.

    Raises the Hub's errors for the file or index, :class:`ShardNotFoundError` (from the Hub's) for a shard.
    """
    path = Path(hf_hub_download(card.repo_id, card.filename, revision=revision, **kwargs))
    if card.sharded:
        commit = snapshot_commit(path, card.filename) or revision
        for filename in card.shard_filenames():
            try:
                hf_hub_download(card.repo_id, filename, revision=commit, **kwargs)
            except HUB_ERRORS as e:
                raise ShardNotFoundError(card, filename, commit) from e
    return path


def require_shards(card: ZooCard, index: Path, where: str) -> None:
    """A sharded checkpoint found by its index must have every shard beside it; else name the first missing one."""
    for name in sorted(card.shards):
        if not (index.parent / name).is_file():
            raise WeightsNotFoundError(
                f"shard {name!r} of {card.name!r} ({card.dataset}/{card.threat_model}) is missing: its index "
                f"{index} is in {where} but {index.parent / name} is not; put all {len(card.shards)} shards "
                f"({', '.join(sorted(card.shards))}) beside the index"
            )


def snapshot_commit(path: Path, filename: str) -> str | None:
    """The commit of a file hf_hub_download returned: ``.../snapshots/<commit>/<filename>``."""
    snapshot = path.parents[len(filename.split("/")) - 1]
    return snapshot.name if snapshot.parent.name == "snapshots" else None


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
