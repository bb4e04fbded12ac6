"""Inference-time variants of a trained self-ensemble: the same weights with other knobs.

An ablation asks which knob moves robustness. Some knobs need no retraining: which predictors vote (a subset of
the trained heads and the backbone's classifier), the aggregator and CrossMax's k, and the stack's randomness
(jitter, noise amplitudes, colour and contrast ranges, stochastic or deterministic inference). :func:`derive` builds
such a variant as a new :class:`SelfEnsemble` sharing nothing with the original (its weights are copied), so the
original stays as it was. A variant is not a model trained with those settings: the weights were fitted to the
original ones, which is what an ablation of deployment choices measures.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from .self_ensemble import BACKBONE_PREDICTOR, SelfEnsemble

__all__ = ["STACK_KNOBS", "derive", "derived_config"]

# The stack settings a variant may change; the resolutions fix the backbone's input channels and stay.
STACK_KNOBS = ("jitter", "down_noise", "up_noise", "contrast_range", "color_range", "stochastic")


def derived_config(
    config: Mapping[str, Any],
    *,
    predictors: Sequence[str] | None = None,
    aggregator: str | None = None,
    k: int | None = None,
    stack: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(config, changes)``: a :class:`SelfEnsemble` config with the inference-time settings of :func:`derive`
    applied (without building a model: what a variant's results must have been computed with)."""
    config = copy.deepcopy(dict(config))
    names = list(config["taps"]) + ([BACKBONE_PREDICTOR] if config.get("include_backbone_head", True) else [])
    changes: dict[str, Any] = {}
    if predictors is not None:
        wanted = list(predictors)
        unknown = [p for p in wanted if p not in names]
        if unknown:
            raise ValueError(f"unknown predictors {unknown}; this model has {names}")
        if not wanted:
            raise ValueError("predictors must name at least one predictor")
        config["taps"] = [tap for tap in config["taps"] if tap in wanted]
        config["include_backbone_head"] = BACKBONE_PREDICTOR in wanted
        changes["predictors"] = [p for p in names if p in wanted]
    if aggregator is not None:
        config["aggregator"] = aggregator
        changes["aggregator"] = aggregator
    if k is not None:
        config["k"] = k
        changes["k"] = k
    if stack:
        unknown = sorted(set(stack) - set(STACK_KNOBS))
        if unknown:
            raise ValueError(f"stack settings {unknown} cannot change at inference; allowed: {list(STACK_KNOBS)}")
        config["stack"] = {**config["stack"], **copy.deepcopy(dict(stack))}
        changes["stack"] = dict(stack)
    return config, changes


def derive(
    model: SelfEnsemble,
    *,
    predictors: Sequence[str] | None = None,
    aggregator: str | None = None,
    k: int | None = None,
    stack: Mapping[str, Any] | None = None,
) -> SelfEnsemble:
    """A copy of ``model`` with other inference-time settings (``None``: as in ``model``).

    Args:
        model: a trained :class:`SelfEnsemble` (left unchanged).
        predictors: the predictors that vote, a subset of ``model.predictor_names`` (kept in the model's order).
        aggregator: ``"crossmax"`` or ``"mean"``.
        k: CrossMax's k; at most the number of predictors left (a subset smaller than ``model.k`` needs one).
        stack: new values for some of :data:`STACK_KNOBS`.

    The variant is in eval mode on ``model``'s device, its generator seeded as ``model``'s was, and its
    ``eee_info`` names what it was derived from (``variant_of``, ``changes``) and keeps the weights' sha256 (the
    weights are those of that file: anything keyed by that hash must also key on the variant's ``config``).
    """
    if not isinstance(model, SelfEnsemble):
        raise TypeError(f"derive takes a SelfEnsemble, got {type(model).__name__}")
    config, changes = derived_config(model.config, predictors=predictors, aggregator=aggregator, k=k, stack=stack)

    variant = SelfEnsemble.from_config(config)
    variant.load_state_dict(_remap_heads(model, config["taps"]))
    param = next(model.parameters())
    variant.to(device=param.device, dtype=param.dtype).eval()
    variant.manual_seed(model.stack.seed)
    variant.check_range = model.check_range
    info = {key: value for key, value in model.eee_info.items() if key != "card_path"}
    info["variant_of"] = model.eee_info.get("name")
    info["changes"] = changes
    variant.eee_info = info
    return variant


def _remap_heads(model: SelfEnsemble, taps: list[str]) -> dict[str, Any]:
    """``model``'s state dict with the heads renumbered for the kept ``taps`` and dropped ones left out."""
    state = {}
    for key, value in model.state_dict().items():
        if not key.startswith("heads."):
            state[key] = value
            continue
        _, index, rest = key.split(".", 2)
        tap = model.taps[int(index)]
        if tap in taps:
            state[f"heads.{taps.index(tap)}.{rest}"] = value
    return state
