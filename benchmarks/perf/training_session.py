"""The zoo's own training loop (``training.train``) on in-memory images, for the perf scripts.

One CPU process, no run folder records, no test split (the recipe's ``evaluation.monitor_examples`` must be
0); the epoch-end checkpoints go to a scratch folder, as a real run writes them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from training.distributed import DistInfo
from training.recipe import Recipe
from training.train import Data, Session

__all__ = ["cpu_session"]


def cpu_session(recipe: Recipe, recipe_path: Path, x_uint8: np.ndarray, y: np.ndarray, workdir: Path) -> Session:
    """A session training on ``x_uint8`` (``[N, H, W, 3]`` uint8) and ``y``, its model built and initialised."""
    args = argparse.Namespace(
        out=workdir, resume=False, device="cpu", data_dir=None, threads=None, stop_after_steps=None,
        no_export=True, no_progress=True,
    )  # fmt: skip
    session = Session.create(args, recipe, recipe_path, DistInfo(), torch.device("cpu"))
    images = torch.from_numpy(x_uint8).permute(0, 3, 1, 2).contiguous()
    session.data = Data(images, torch.from_numpy(y), images[:0], torch.from_numpy(y[:0]))
    session.set_runtime()  # the recipe's speed settings for the CPU, as a real run applies them
    session.init_model()
    return session
