"""Every random draw of a training run, from seeds derived from the recipe seed (step-indexed randomness).

Each epoch's data order and each step's augmentation, stack and attack draws come from their own
``torch.Generator``, seeded with a hash of (recipe seed, stage, kind, epoch, step, rank). A run resumed at
any step boundary therefore draws exactly what an uninterrupted run draws, with no generator state to save.

The global RNG is never a source of randomness in training. The one thing that must draw from it, weight
initialisation in ``nn.Module`` constructors, runs inside :func:`seeded_global_rng`: a forked global RNG
seeded explicitly, so that the caller's global state neither matters nor changes.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any

import torch

from eee_zoo.models import SelfEnsemble

from .recipe import Recipe

__all__ = ["build_model", "derive_seed", "epoch_order", "seeded_global_rng", "step_generator"]


def derive_seed(seed: int, *keys: Any) -> int:
    """A 63-bit seed from the recipe seed and a path of keys (stage, purpose, epoch, step, rank)."""
    text = "/".join(str(k) for k in (seed, *keys))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)


def epoch_order(seed: int, stage: str, epoch: int, n: int) -> torch.Tensor:
    """The data order of one epoch (drawn on the CPU: the same order on every device and rank)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, stage, "order", epoch)))


def step_generator(seed: int, stage: str, epoch: int, step: int, rank: int, device: torch.device) -> torch.Generator:
    """The generator of one training step on one rank: augmentation, the stack's draws, attack starts."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, stage, "step", epoch, step, rank))


@contextlib.contextmanager
def seeded_global_rng(seed: int) -> Iterator[None]:
    """The CPU global RNG forked and seeded with ``seed`` for the block (module constructors draw from it)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_model(recipe: Recipe) -> SelfEnsemble:
    """The recipe's architecture with weights initialised from a seed derived from the recipe seed."""
    with seeded_global_rng(derive_seed(recipe.seed, "init")):
        return SelfEnsemble.from_config(recipe.model_config())
