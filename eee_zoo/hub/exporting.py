"""Writing a Hub-ready checkpoint folder (weights as one safetensors file or the standard shards + index,
``config.json``, the card), atomically."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._io import atomic_path, atomic_write_json, sha256_file
from ..cards import (
    CARD_FILENAME,
    CONFIG_FILENAME,
    DEFAULT_STORAGE_DTYPE,
    INDEX_FILENAME,
    SHARD_PATTERN,
    STORAGE_DTYPES,
    WEIGHTS_FILENAME,
    ZooCard,
    default_repo_id,
    parse_dataset,
    parse_threat_model,
    write_card,
)
from .integrity import INDEX_SHA256_KEY
from .locate import card_info

if TYPE_CHECKING:
    import torch.nn as nn

__all__ = ["LAYOUT_GLOBS", "checkpoint_files", "export"]

# The files of the layouts ``export`` writes (single file, or index + shards): what an overwrite replaces or removes.
_LAYOUT_RE = re.compile(r"model(-\d{5}-of-\d{5})?\.safetensors|model\.safetensors\.index\.json")
LAYOUT_GLOBS = ("model.safetensors", "model.safetensors.index.json", "model-?????-of-?????.safetensors")


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
        "metadata": {**split.metadata, INDEX_SHA256_KEY: dict(sorted(shards.items()))},
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
