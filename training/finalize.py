"""Stage 3: the self-ensemble's clean accuracy (every predictor and the aggregate), then the Hub-ready export.

The model is scored as it will be stored: weights rounded to the export's storage dtype first, fp32 compute
(TF32 off), the stack drawn from the recipe's inference seed, in the recipe's inference mode (and also
deterministically when asked). Metrics go to ``results.json``, never into the card's result fields.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from eee_zoo._io import sha256_file
from eee_zoo._precision import strict_fp32
from eee_zoo.models import SelfEnsemble

from .augment import to_float
from .randomness import seeded_global_rng
from .recipe import Recipe
from .records import rel_path

__all__ = ["evaluate_clean", "export_model", "final_accuracies", "format_accuracy", "round_to_storage_dtype"]

logger = logging.getLogger("eee_zoo.train")


@torch.no_grad()
def evaluate_clean(
    model: SelfEnsemble,
    x_uint8: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    stochastic: bool,
    seed: int,
    predictors: bool = True,
) -> dict[str, Any]:
    """Clean accuracy of every predictor and of the aggregate, fp32, the stack drawn from ``seed``.

    ``x_uint8`` is ``[N, 3, H, W]`` uint8 on the model's device. The model's own generator is left untouched;
    a fresh generator seeded with ``seed`` plays its role (what a freshly loaded model with that seed draws).
    ``predictors=False`` scores the backbone's own head only (used while the heads are untrained).
    """
    modes = {m: m.training for m in model.modules()}  # per module: stage 2 trains the heads of an eval model
    was_stochastic = model.stochastic
    model.eval()
    model.set_stochastic(stochastic)
    device = x_uint8.device
    gen = torch.Generator(device=device).manual_seed(seed)
    names = model.predictor_names if predictors else ["backbone"]
    correct = torch.zeros(len(names), dtype=torch.long, device=device)
    correct_agg = torch.zeros((), dtype=torch.long, device=device)
    try:
        for i in range(0, len(y), batch_size):
            with strict_fp32():  # TF32 off on GPUs: the accuracy of the model as a CPU computes it
                x = to_float(x_uint8[i : i + batch_size])
                target = y[i : i + batch_size]
                if predictors:
                    logits = model.predictor_logits(x, generator=gen)
                    correct_agg += (model.aggregate(logits).argmax(1) == target).sum()
                else:
                    logits = model.backbone(model.stack(x, generator=gen)).unsqueeze(1)
                correct += (logits.argmax(2) == target.unsqueeze(1)).sum(0)
    finally:
        for module, training in modes.items():
            module.training = training
        model.set_stochastic(was_stochastic)
    n = len(y)
    result: dict[str, Any] = {
        "mode": "stochastic" if stochastic else "deterministic",
        "n_examples": n,
        "seed": seed,
        "per_predictor": {
            name: {"correct": int(c), "accuracy": 100.0 * int(c) / n} for name, c in zip(names, correct.tolist())
        },
    }
    if predictors:
        result["aggregated"] = {
            "aggregator": model.aggregator,
            "k": model.k,
            "correct": int(correct_agg),
            "accuracy": 100.0 * int(correct_agg) / n,
        }
    return result


def format_accuracy(result: dict[str, Any]) -> str:
    parts = []
    if "aggregated" in result:
        parts.append(f"{result['aggregated']['aggregator']} {result['aggregated']['accuracy']:.2f}%")
    parts += [f"{name} {r['accuracy']:.2f}%" for name, r in result["per_predictor"].items()]
    return " | ".join(parts)


def round_to_storage_dtype(model: nn.Module, dtype: torch.dtype) -> None:
    """Round every floating-point parameter and buffer to ``dtype`` and back, in place (the stored values)."""
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(dtype))


def final_accuracies(model: SelfEnsemble, recipe: Recipe, x: torch.Tensor, y: torch.Tensor) -> list[dict[str, Any]]:
    """Round to the storage dtype, then the clean accuracy in the inference mode (and deterministic if asked)."""
    r, ev = recipe, recipe.evaluation
    if r.export.storage_dtype != "float32":
        # Round once, here: every accuracy below, and every later evaluation, is of the stored model.
        round_to_storage_dtype(model, getattr(torch, r.export.storage_dtype))
        logger.info("weights rounded to %s, the export's storage dtype", r.export.storage_dtype)
    seed = r.model.stack.seed
    evaluations = [
        evaluate_clean(model, x, y, batch_size=ev.batch_size, stochastic=r.model.stack.stochastic, seed=seed)
    ]
    if r.model.stack.stochastic and ev.also_deterministic:
        evaluations.append(evaluate_clean(model, x, y, batch_size=ev.batch_size, stochastic=False, seed=seed))
    for result in evaluations:
        logger.info(
            "clean accuracy (%s stack, first %d %s test images): %s",
            result["mode"],
            result["n_examples"],
            r.dataset,
            format_accuracy(result),
        )
    return evaluations


def export_model(
    model: SelfEnsemble,
    recipe: Recipe,
    recipe_path: Path,
    run_dir: Path,
    *,
    git_commit: str | None,
    world_size: int,
    device: str,
) -> tuple[Path, str]:
    """``eee_zoo.hub.export`` into ``<run_dir>/model_cards/...``; returns the folder and the weights' sha256."""
    from eee_zoo.hub import export
    from eee_zoo.registry import card_folder

    r = recipe
    export_dir = card_folder(r.name, r.dataset, r.threat_model, cards_dir=run_dir / "model_cards")
    record = {
        "recipe": rel_path(recipe_path),
        "recipe_sha256": sha256_file(recipe_path),
        "seed": r.seed,
        "run_dir": rel_path(run_dir),
        "command": f"python -m training.train --recipe {rel_path(recipe_path)}",
        "git_commit": git_commit,
        "world_size": world_size,
        "device": device,
    }
    with seeded_global_rng(0):  # a throwaway init, overwritten below; the caller's global RNG stays as it was
        cpu_model = SelfEnsemble.from_config(model.config)
    cpu_model.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    cpu_model.eval()
    export(
        cpu_model,
        r.name,
        export_dir,
        dataset=r.dataset,
        threat_model=r.threat_model,
        training=record,
        description=r.description,
        overwrite=True,
        storage_dtype=r.export.storage_dtype,
        max_shard_size=r.export.max_shard_size,
    )
    weights_sha = cpu_model.eee_info["sha256"]  # of the index file when the weights are sharded
    logger.info("exported %s to %s (weights sha256 %s)", r.name, export_dir, weights_sha)
    return export_dir, weights_sha
