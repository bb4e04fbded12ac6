"""What the deployed model says about images: every predictor's logits on seeded draws of the stochastic stack.

Draws come from one ``torch.Generator`` seeded per call and are batched (draw ``d`` of image ``i`` is row
``d * B + i``, as :func:`eee_zoo.adaptive.worst_case.judge` does), so the same seed gives the same draws; the
model's own generator is not touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..adaptive.surrogates import stochastic_mode

__all__ = ["Draws", "draw_logits"]

MAX_ROWS = 2048  # images per forward pass (draws x images batched together)


@dataclass
class Draws:
    """Every predictor's logits ``[D, B, P, C]`` on ``D`` draws, with the deployed aggregate ``[D, B, C]``."""

    predictor_logits: torch.Tensor
    logits: torch.Tensor

    @property
    def draws(self) -> int:
        return self.logits.shape[0]

    def mean_probabilities(self) -> torch.Tensor:
        """``[B, C]``: the deployed model's class probabilities, averaged over the draws."""
        return self.logits.softmax(dim=-1).mean(dim=0)

    def hits(self, y: torch.Tensor) -> torch.Tensor:
        """``[B]``: on how many draws the deployed model is right."""
        return (self.logits.argmax(dim=-1) == y.view(1, -1)).sum(dim=0)

    def predictor_hits(self, y: torch.Tensor) -> torch.Tensor:
        """``[B, P]``: on how many draws each predictor alone is right."""
        return (self.predictor_logits.argmax(dim=-1) == y.view(1, -1, 1)).sum(dim=0)


@torch.no_grad()
def draw_logits(model: nn.Module, x: torch.Tensor, draws: int, seed: int) -> Draws:
    """The self-ensemble ``model`` on ``draws`` seeded draws of its stochastic stack (whatever its current mode)."""
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    b = len(x)
    gen = torch.Generator(device=x.device).manual_seed(seed)
    per_chunk = max(1, MAX_ROWS // max(b, 1))
    chunks = []
    with stochastic_mode(model, True):
        for first in range(0, draws, per_chunk):
            e = min(per_chunk, draws - first)
            z = model.predictor_logits(x.repeat(e, 1, 1, 1), generator=gen)
            chunks.append(z.view(e, b, *z.shape[1:]).float().cpu())
    predictor = torch.cat(chunks)
    aggregate = model.aggregate(predictor.flatten(0, 1)).view(*predictor.shape[:2], -1)
    return Draws(predictor_logits=predictor, logits=aggregate)
