"""``load_model``: the one build path for every checkpoint (RobustBench's call shape, timm's discipline).

card -> ``SelfEnsemble.from_config(card.architecture)`` -> find weights -> sha256 checks -> safetensors ->
``load_state_dict(strict=True)`` -> eval -> inference mode from the card -> ``model.eee_info``.
Weights are only ever read with ``safetensors`` (no pickle), and only after their sha256 matched the card (for a
sharded checkpoint: the index's and every shard's).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .cards import CardError, ZooCard
from .hub import card_info, read_index, resolve_weights, verify_weights
from .models import SelfEnsemble
from .registry import get_card

__all__ = ["load_model", "build_model", "load_weights"]


def load_model(
    name: str,
    dataset: Any = "cifar10",
    threat_model: Any = "Linf",
    *,
    model_dir: str | os.PathLike | None = None,
    revision: str | None = None,
    device: str | torch.device = "cpu",
    cards_dir: str | os.PathLike | None = None,
    stochastic: bool | None = None,
    seed: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    channels_last: bool = False,
) -> SelfEnsemble:
    """Load a checkpoint of the zoo, ready for inference.

    Args:
        name: the checkpoint's name (see ``eee_zoo.list_models()``).
        dataset: ``"cifar10"`` or ``"cifar100"`` (case-insensitive; RobustBench's enums work too).
        threat_model: ``"Linf"`` or ``"L2"`` (case-insensitive).
        model_dir: a folder in RobustBench's layout, ``<model_dir>/<dataset>/<threat_model>/<name>.safetensors``
            (a sharded checkpoint: ``<name>.safetensors.index.json`` with its shards beside it); when given, the
            only place looked at (no fall-back to the card's folder or the Hub).
        revision: Hub revision to download instead of the card's pinned one.
        device: where to put the model.
        cards_dir: the cards root (default: ``$EEE_ZOO_CARDS`` or the shipped ``model_cards/``).
        stochastic: override the card's inference mode (``False``: deterministic stack).
        seed: reseed the model's generator (same seed, same stochastic logits).
        cache_dir: the Hugging Face cache (default: ``$HF_HUB_CACHE`` or huggingface_hub's default).
        channels_last: store the convolutions NHWC (``model.to(memory_format=torch.channels_last)``): attack steps
            1.21-1.33x faster on 2 CPU cores (``benchmarks/perf/attack_layout.py``), the same model up to float
            rounding, so an attack may break other images than in the default layout (evaluations record it).

    Returns:
        The :class:`~eee_zoo.models.SelfEnsemble` in eval mode, with the card data in ``model.eee_info``.

    Raises:
        UnknownModelError: no such checkpoint (the message suggests close names or the right dataset).
        WeightsNotFoundError: the weights are nowhere to be found, or not in ``model_dir`` (the message says where
            it looked), or a shard is missing beside its index (the message names it).
        WeightsChecksumError: the weights' sha256 (a shard's, for a sharded checkpoint) differs from the card's.
        ValueError: malformed safetensors, or weights that do not fit the architecture.
    """
    card = get_card(name, dataset, threat_model, cards_dir=cards_dir)
    model = build_model(card)
    path, source = resolve_weights(card, model_dir=model_dir, revision=revision, cache_dir=cache_dir)
    verify_weights(card, path)  # every file, before a single tensor is parsed
    load_weights(model, path)
    model.to(device).eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.set_stochastic(card.stochastic_inference if stochastic is None else stochastic)
    if seed is not None:
        model.manual_seed(seed)
    model.eee_info = card_info(card, weights_path=path, source=source, revision=revision)
    return model


def build_model(card: ZooCard) -> SelfEnsemble:
    """The card's architecture with fresh weights; a bad architecture is reported as a card error."""
    try:
        return SelfEnsemble.from_config(card.architecture)
    except ValueError as e:
        raise CardError(card.card_path, "eee_zoo.architecture", str(e)) from None


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load safetensors weights into ``model`` strictly: every key present, none extra, every shape equal.

    ``path`` is a ``.safetensors`` file or a Hugging Face index (``*.safetensors.index.json``) whose shards lie
    beside it; every tensor must be in the shard the index names. Floating-point tensors may be stored in another
    floating-point dtype (``bfloat16`` storage): ``load_state_dict`` copies them into the model's dtype, exactly for
    bfloat16 into float32. This checks shapes, not checksums: :func:`~eee_zoo.hub.verify_weights` does that first.
    """
    path = Path(path)
    if path.name.endswith(".index.json"):
        state = _load_sharded(path)
    else:
        state = _load_file(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{path} does not fit the architecture: "
            f"{len(missing)} missing keys {_preview(missing)}, {len(unexpected)} unexpected keys {_preview(unexpected)}"
        )
    shapes = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items() if state[k].shape != v.shape
    ]
    if shapes:
        raise ValueError(f"{path} does not fit the architecture; shape mismatches (file vs model): {_preview(shapes)}")
    dtypes = [
        f"{k}: {state[k].dtype} vs {v.dtype}"
        for k, v in expected.items()
        if (state[k].dtype != v.dtype) and not (state[k].is_floating_point() and v.is_floating_point())
    ]
    if dtypes:
        raise ValueError(f"{path} does not fit the architecture; dtype mismatches (file vs model): {_preview(dtypes)}")
    model.load_state_dict(state, strict=True)


def _load_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except SafetensorError as e:
        raise ValueError(f"{path} is not a valid safetensors file ({e})") from None


def _load_sharded(index_path: Path) -> dict[str, torch.Tensor]:
    weight_map = read_index(index_path)["weight_map"]
    state: dict[str, torch.Tensor] = {}
    for name in sorted(set(weight_map.values())):
        shard = index_path.parent / name
        if not shard.is_file():
            raise FileNotFoundError(f"shard {name!r} is missing: no {shard} beside its index {index_path}")
        tensors = _load_file(shard)
        misplaced = sorted(k for k in tensors if weight_map.get(k) != name)
        if misplaced:
            raise ValueError(
                f"{shard} holds tensors its index {index_path} puts elsewhere (or nowhere): {_preview(misplaced)}"
            )
        state.update(tensors)
    absent = sorted(set(weight_map) - set(state))
    if absent:
        raise ValueError(f"{index_path} names tensors that are in none of its shards: {_preview(absent)}")
    return state


def _preview(items: list[str], n: int = 5) -> str:
    return "[" + ", ".join(items[:n]) + (", ...]" if len(items) > n else "]")
