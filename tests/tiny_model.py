"""The tests' tiny self-ensemble (``TINY_CONFIG``, also conftest's ``tiny_config`` / ``tiny_model`` fixtures) and
its short training, for tests whose attacks need a model that is right on some images.

Test code only: ``benchmarks/perf/eval_overhead.py`` trains its own model (the smoke recipe, through the zoo's
training loop) rather than importing this.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F

from eee_zoo.data import load_dataset
from eee_zoo.models import SelfEnsemble

# A real (tiny) architecture: airbench backbone, three tapped heads + the backbone head, CrossMax k=3.
TINY_CONFIG: dict[str, Any] = {
    "num_classes": 10,
    "backbone": {"name": "airbench", "kwargs": {"widths": [8, 16, 16], "stem_width": 8}},
    "taps": ["stem", "block1", "block2"],
    "head_pool": 4,
    "aggregator": "crossmax",
    "k": 3,
}


def train_tiny_model(config: dict[str, Any] | None = None, steps: int = 15) -> SelfEnsemble:
    """``config`` (default :data:`TINY_CONFIG`) trained for ``steps`` Adam steps on shipped test images 16..499.

    Images 0..15 stay unseen, so evaluations on them are not on training data. Returned in eval mode with its
    stack deterministic (as it was trained); callers switch it with ``set_stochastic``.
    """
    torch.manual_seed(0)  # weight init; the data order has its own generator below
    model = SelfEnsemble.from_config(copy.deepcopy(config if config is not None else TINY_CONFIG))
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative averages: usable running statistics after a few steps
    x, y = load_dataset("cifar10", 500)
    model.train().set_stochastic(False)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    order = 16 + torch.randperm(484, generator=torch.Generator().manual_seed(0))
    for step in range(steps):
        idx = order[(step * 100) % 400 :][:100]
        logits = model.predictor_logits(x[idx])
        loss = F.cross_entropy(logits.flatten(0, 1), y[idx].repeat_interleave(logits.shape[1]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()
