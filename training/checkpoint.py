"""The resumable state of a run, ``<run dir>/checkpoint.pt``, written atomically (a kill never leaves half a file).

It holds the model, the optimiser and scheduler of the current stage, the position (stage, epoch, next step),
the epoch's running sums, the history and the counters, and a record of the step-indexed seeds. No generator
state is needed to resume: every draw comes from a seed derived from the position (``training.randomness``).
Checkpoints written before the global RNG was known to be unused also hold its state (``rng.torch_cpu``); it is
read past, not restored.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from eee_zoo._io import atomic_path

from .distributed import DistInfo
from .randomness import derive_seed
from .recipe import Recipe, RecipeError
from .records import now

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_NAME", "Checkpoints", "Counters", "position"]

logger = logging.getLogger("eee_zoo.train")

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1


def position(stage: str, epoch: int = 0, step: int = 0) -> dict[str, Any]:
    """Where a run stands: the next step to take (``stage`` is backbone, heads, finalize or done)."""
    return {"stage": stage, "epoch": epoch, "step": step}


@dataclass
class Counters:
    """What the run has done so far, carried across sessions by the checkpoint."""

    steps_done: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per finished epoch
    elapsed_before: float = 0.0  # seconds spent in earlier sessions
    session_start: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.session_start

    def resume_from(self, state: dict[str, Any]) -> None:
        self.steps_done = state["steps_done"]
        self.history = list(state["history"])
        self.elapsed_before = float(state["elapsed_s"])


class Checkpoints:
    """Saving (rank 0) and loading (every rank) the checkpoint of the run in ``run_dir``."""

    def __init__(self, run_dir: Path, recipe: Recipe, recipe_path: Path, world: DistInfo, device: torch.device) -> None:
        self.run_dir = run_dir
        self.path = run_dir / CHECKPOINT_NAME
        self.recipe = recipe
        self.recipe_path = recipe_path
        self.world = world
        self.device = device
        self.last_save = time.monotonic()

    def due(self) -> bool:
        """Whether ``runtime.checkpoint_every_s`` has passed since the last save (mid-epoch saves)."""
        return time.monotonic() - self.last_save >= self.recipe.runtime.checkpoint_every_s

    def save(
        self,
        model: torch.nn.Module,
        at: dict[str, Any],
        counters: Counters,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        accum: list[float] | None = None,
    ) -> None:
        """The state at position ``at``; ``optimizer``/``scheduler``/``accum`` only inside a stage."""
        if not self.world.is_main:
            return
        r, rank = self.recipe, self.world.rank
        state = {
            "format": CHECKPOINT_FORMAT,
            "recipe": r.to_dict(),
            "world_size": self.world.world_size,
            "threads": torch.get_num_threads(),
            "device_type": self.device.type,
            "position": at,
            "steps_done": counters.steps_done,
            "model": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "accum": accum,
            "history": counters.history,
            "elapsed_s": counters.elapsed(),
            "rng": {  # a record for readers: resuming needs none of it but the model's own stack generator
                "scheme": "step-indexed: sha256(seed/stage/kind/epoch/step/rank) seeds each epoch order and step",
                "data_order_seed": derive_seed(r.seed, at["stage"], "order", at["epoch"]),
                "next_step_seed": derive_seed(r.seed, at["stage"], "step", at["epoch"], at["step"], rank),
                "model_stack": model.stack.generator_for(self.device).get_state().cpu(),
            },
            "saved": now(),
        }
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)
        self.last_save = time.monotonic()
        logger.debug("checkpoint %s at %s", self.path, at)

    def load(self) -> dict[str, Any]:
        """The saved state, after checking that it continues this recipe with this number of processes."""
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{self.path}: checkpoint format {state.get('format')} is not {CHECKPOINT_FORMAT}")
        if state["recipe"] != self.recipe.to_dict():
            diff = _diff_keys(state["recipe"], self.recipe.to_dict())
            raise RecipeError(
                f"{self.recipe_path}: the run in {self.run_dir} was started with a different recipe "
                f"(differs at {', '.join(diff[:5])}); resume it with the same recipe or start a new --out"
            )
        if state["world_size"] != self.world.world_size:
            raise ValueError(
                f"{self.path}: the run used {state['world_size']} process(es); resume it with the same number "
                f"(got {self.world.world_size}) so that every step sees the same data"
            )
        saved_on = (state.get("device_type"), state.get("threads"))
        if None not in saved_on and saved_on != (self.device.type, torch.get_num_threads()):
            logger.warning(
                "resuming a run saved on %s with %s threads on %s with %d threads: it continues correctly, but "
                "not bit for bit as an uninterrupted run would (CPU results depend on the thread count)",
                state.get("device_type"),
                state.get("threads"),
                self.device.type,
                torch.get_num_threads(),
            )
        return state

    def restore_model(self, model: torch.nn.Module, state: dict[str, Any]) -> None:
        """The saved weights and the model's own stack generator (``rng.torch_cpu`` of old checkpoints: unused)."""
        model.load_state_dict(state["model"])
        model.stack.generator_for(self.device).set_state(state["rng"]["model_stack"])


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """The dotted keys at which two nested dicts differ (to name what changed in a recipe)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
        return out
    return [] if a == b else [prefix or "<recipe>"]
