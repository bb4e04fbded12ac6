"""``load_model``: the one build path for every checkpoint (RobustBench's call shape, timm's discipline).

card -> ``SelfEnsemble.from_config(card.architecture)`` -> find weights -> sha256 check -> safetensors ->
``load_state_dict(strict=True)`` -> eval -> inference mode from the card -> ``model.eee_info``.
Weights are only ever read with ``safetensors`` (no pickle), and only after their sha256 matched the card.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .cards import CardError, ZooCard
from .hub import card_info, resolve_weights, verify_sha256
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
) -> SelfEnsemble:
    """Load a checkpoint of the zoo, ready for inference.

    Args:
        name: the checkpoint's name (see ``eee_zoo.list_models()``).
        dataset: ``"cifar10"`` or ``"cifar100"`` (case-insensitive; RobustBench's enums work too).
        threat_model: ``"Linf"`` or ``"L2"`` (case-insensitive).
        model_dir: a folder in RobustBench's layout, ``<model_dir>/<dataset>/<threat_model>/<name>.safetensors``,
            searched first.
        revision: Hub revision to download instead of the card's pinned one.
        device: where to put the model.
        cards_dir: the cards root (default: ``$EEE_ZOO_CARDS`` or the shipped ``model_cards/``).
        stochastic: override the card's inference mode (``False``: deterministic stack).
        seed: reseed the model's generator (same seed, same stochastic logits).
        cache_dir: the Hugging Face cache (default: ``$HF_HUB_CACHE`` or huggingface_hub's default).

    Returns:
        The :class:`~eee_zoo.models.SelfEnsemble` in eval mode, with the card data in ``model.eee_info``.

    Raises:
        UnknownModelError: no such checkpoint (the message suggests close names or the right dataset).
        WeightsNotFoundError: the weights are nowhere to be found (the message says where it looked).
        WeightsChecksumError: the weights' sha256 differs from the card's.
        ValueError: malformed safetensors, or weights that do not fit the architecture.
    """
    card = get_card(name, dataset, threat_model, cards_dir=cards_dir)
    model = build_model(card)
    path, source = resolve_weights(card, model_dir=model_dir, revision=revision, cache_dir=cache_dir)
    verify_sha256(path, card.sha256, card_path=card.card_path)  # before a single byte is parsed
    load_weights(model, path)
    model.to(device).eval()
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
    """Load a safetensors file into ``model`` strictly: every key present, none extra, every shape equal."""
    path = Path(path)
    try:
        state = load_file(path)
    except SafetensorError as e:
        raise ValueError(f"{path} is not a valid safetensors file ({e})") from None
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
    model.load_state_dict(state, strict=True)


def _preview(items: list[str], n: int = 5) -> str:
    return "[" + ", ".join(items[:n]) + (", ...]" if len(items) > n else "]")
