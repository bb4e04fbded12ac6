"""Publishing a checked checkpoint folder to the Hugging Face Hub in one commit."""

from __future__ import annotations

import os
import posixpath
import sys
from pathlib import Path

from ..cards import CARD_FILENAME, CONFIG_FILENAME, FIGURES_FOLDER, ZooCard, set_revision
from .errors import HubConnectionError
from .exporting import LAYOUT_GLOBS
from .integrity import verify_folder
from .locate import offline

__all__ = ["push", "stale_patterns", "upload_patterns"]


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
        if offline():
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
    return [posixpath.join(folder, pattern) for pattern in LAYOUT_GLOBS]
