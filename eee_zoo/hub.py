"""Weights on disk and on the Hugging Face Hub: finding them, checking them, exporting and pushing them.

Where ``load_model`` looks for a checkpoint's weights, in order:

1. an explicit ``model_dir`` in RobustBench's layout: ``<model_dir>/<dataset>/<threat_model>/<name>.safetensors``;
2. the card's own folder (``model_cards/<dataset>/<threat_model>/<Name>/<filename>``), when the weights ship there;
3. ``huggingface_hub.hf_hub_download(repo_id, filename, revision=<the card's pinned revision>)``, which with
   ``HF_HUB_OFFLINE=1`` serves the file from the local cache without touching the network.

Whatever the source, the file's sha256 must equal the card's before a single tensor is read.
"""

from __future__ import annotations

import json
import os
import shutil
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
    "HF_CACHE_ENV", "WeightsChecksumError", "WeightsNotFoundError", "export", "hub_cache_dir", "push",
    "resolve_weights", "robustbench_path", "verify_folder", "verify_sha256",
]  # fmt: skip

HF_CACHE_ENV = "HF_HUB_CACHE"
_HUB_ERRORS = (EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled)  # Local/RemoteEntryNotFound, repo, revision


class WeightsNotFoundError(FileNotFoundError):
    """The weights are in none of the places looked at; the message lists them and how to get the file."""


class WeightsChecksumError(ValueError):
    """A weights file whose sha256 differs from its card's: never loaded."""


# ---------------------------------------------------------------------------------------------- finding
def robustbench_path(model_dir: str | os.PathLike, name: str, dataset: str, threat_model: str) -> Path:
    """``<model_dir>/<dataset>/<threat_model>/<name>.safetensors`` (RobustBench's layout)."""
    return Path(model_dir) / parse_dataset(dataset) / parse_threat_model(threat_model) / f"{name}.safetensors"


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

    Raises:
        WeightsNotFoundError: not found anywhere; the message says exactly where it looked and how to get it.
    """
    looked = []
    if model_dir is not None:
        path = robustbench_path(model_dir, card.name, card.dataset, card.threat_model)
        if path.is_file():
            return path, "model_dir"
        looked.append(f"{path} (model_dir, RobustBench layout)")
    if card.folder is not None:
        path = card.folder / card.filename
        if path.is_file():
            return path, "card_folder"
        looked.append(f"{path} (beside the card)")

    revision = revision or card.revision
    cache = hub_cache_dir(cache_dir)
    offline = _offline()
    try:
        path = hf_hub_download(
            card.repo_id, card.filename, revision=revision, cache_dir=cache, local_files_only=offline
        )
        return Path(path), "hub"
    except _HUB_ERRORS as e:
        from huggingface_hub import constants

        storage = Path(cache or constants.HF_HUB_CACHE) / repo_folder_name(repo_id=card.repo_id, repo_type="model")
        looked.append(
            f"the Hugging Face Hub: {card.repo_id}/{card.filename} at revision {revision!r} "
            f"({'offline; ' if offline else ''}cache {storage}): {type(e).__name__}"
        )
        rb_path = robustbench_path(model_dir or "<model_dir>", card.name, card.dataset, card.threat_model)
        download = f"`hf download {card.repo_id} {card.filename} --revision {revision}`"
        how = (
            f"unset HF_HUB_OFFLINE so load_model can download them, or fetch them into the cache while online with "
            f"{download}"
            if offline
            else f"check the repo id, the revision and your connection, or fetch them with {download}"
        )
        raise WeightsNotFoundError(
            f"weights of {card.name!r} ({card.dataset}/{card.threat_model}) not found; looked in: "
            + "; ".join(looked)
            + f". To get them: {how}; or put the file at {rb_path} and pass model_dir, or beside the card"
        ) from e


def verify_sha256(path: str | os.PathLike, expected: str, *, card_path: str | os.PathLike | None = None) -> None:
    """Refuse a weights file whose sha256 is not the card's (corrupted, truncated, tampered with, or stale)."""
    actual = sha256_file(path)
    if actual != expected:
        raise WeightsChecksumError(
            f"sha256 mismatch for {path}: the file has {actual} but the card"
            f"{f' {card_path}' if card_path else ''} expects {expected}; refusing to load it "
            "(re-download the file, or re-export the model if the card is out of date)"
        )


def verify_folder(folder: str | os.PathLike) -> ZooCard:
    """Check a Hub-ready folder before publishing: valid card, weights matching its sha256, matching config.json."""
    folder = Path(folder)
    card = load_card(folder / CARD_FILENAME)
    weights = folder / card.filename
    if not weights.is_file():
        raise FileNotFoundError(f"{folder}: the card names weights {card.filename!r} but there is no {weights}")
    verify_sha256(weights, card.sha256, card_path=card.card_path)
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
) -> Path:
    """Write a Hub-ready checkpoint folder: ``model.safetensors``, ``config.json`` and the card ``README.md``.

    The card records the architecture (``model.config``), the weights' sha256, whether inference is stochastic
    (``model.stochastic``), the training record, and the Hub location (``repo_id`` defaults to
    ``<org>/<dataset>-<threat_model>-<name>``). It holds no results: ``eee-zoo benchmark --write-card`` adds them.

    All files are written into a temporary folder beside ``out_dir`` first. A new ``out_dir`` appears with one
    rename; an existing one (``overwrite=True``) gets each file replaced atomically, weights first and the card
    last, so a crash can leave old and new files side by side but never a half-written file, and the sha256
    check refuses such a mix. Old results are dropped: they belonged to the old weights.

    Args:
        model: a :class:`~eee_zoo.models.SelfEnsemble` built with ``from_config`` (DDP/compiled wrappers are unwrapped).
        name: the checkpoint's name (letters, digits, ``_``, ``.``, ``-``).
        out_dir: the folder to write; to register the model use ``registry.card_folder(name, dataset, threat_model)``.
        training: e.g. ``{"recipe": "training/recipes/x.yaml", "seed": 0, "command": "eee-zoo train ..."}``.
        description: a paragraph for the top of the card.
        overwrite: replace an existing checkpoint in ``out_dir``.

    Returns:
        ``out_dir``. ``model.eee_info`` is set to the new card's data.
    """
    from safetensors.torch import save_file

    model = _unwrap(model)
    dataset, threat_model = parse_dataset(dataset), parse_threat_model(threat_model)
    out_dir = Path(out_dir)
    existing = [f for f in (WEIGHTS_FILENAME, CONFIG_FILENAME, CARD_FILENAME) if (out_dir / f).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{out_dir} already holds a checkpoint ({', '.join(existing)}); pass overwrite=True")
    config = model.config
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()  # not mkdtemp: its 0700 mode would stick to the published folder
    try:
        with atomic_path(tmp / WEIGHTS_FILENAME) as weights:  # gives the file a normal mode (safetensors: 0600)
            save_file(state, str(weights), metadata={"format": "pt"})
        atomic_write_json(tmp / CONFIG_FILENAME, config)
        card = ZooCard(
            name=name,
            dataset=dataset,
            threat_model=threat_model,
            architecture=config,
            repo_id=repo_id or default_repo_id(name, dataset, threat_model),
            revision=revision,
            filename=WEIGHTS_FILENAME,
            sha256=sha256_file(tmp / WEIGHTS_FILENAME),
            stochastic_inference=bool(model.stochastic),
            training=dict(training or {}),
            card_path=out_dir / CARD_FILENAME,
        )
        write_card(card, tmp / CARD_FILENAME, description=description)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        _move_into_place(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    model.eee_info = card_info(card, weights_path=out_dir / WEIGHTS_FILENAME, source="export")
    return out_dir


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        os.rename(tmp, out_dir)  # atomic: the folder appears complete or not at all
        return
    for name in (WEIGHTS_FILENAME, CONFIG_FILENAME, CARD_FILENAME):  # the card, holding the sha256, last
        os.replace(tmp / name, out_dir / name)


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

    A thin wrapper: checks the folder first (:func:`verify_folder`), creates the repo (and the branch
    ``revision``) if needed, uploads only the card, ``config.json`` and the weights, and with ``pin=True``
    rewrites the local card's ``revision`` to the new commit so later downloads are pinned to it (when
    ``repo_id`` is the card's own). Needs the
    network and a write token (``token`` or ``hf auth login``); not exercised by the offline tests.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    card = verify_folder(folder)
    repo_id = repo_id or card.repo_id
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision not in (None, "main"):
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        revision=revision,
        commit_message=commit_message or f"Upload {card.name} ({card.dataset}/{card.threat_model})",
        allow_patterns=[CARD_FILENAME, CONFIG_FILENAME, card.filename],
    )
    if pin and repo_id == card.repo_id:  # a commit of another repo means nothing to this card
        set_revision(folder / CARD_FILENAME, commit.oid)
    return commit.oid
