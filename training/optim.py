"""A stage's optimiser and learning-rate schedule, from the recipe's ``optimizer`` and ``schedule``."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .recipe import OptimizerSpec, ScheduleSpec

__all__ = ["lr_factor", "make_optimizer"]


def lr_factor(step: int, *, total: int, schedule: ScheduleSpec) -> float:
    """The learning-rate multiplier of optimiser step ``step`` (0-based) out of ``total``."""
    warm = int(round(schedule.warmup * total))
    if step < warm:
        return (step + 1) / warm
    if schedule.name == "constant":
        return 1.0
    progress = min(1.0, (step - warm) / max(1, total - warm))
    final = schedule.final_lr
    if schedule.name == "linear":
        return 1.0 - (1.0 - final) * progress
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(spec: OptimizerSpec, named_params: list[tuple[str, nn.Parameter]]) -> torch.optim.Optimizer:
    """SGD/AdamW with weight decay on conv/linear weights only (not on norm scales or biases)."""
    decay = [p for _, p in named_params if p.ndim >= 2]
    no_decay = [p for _, p in named_params if p.ndim < 2]
    groups = [g for g in ({"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay}) if g["params"]]
    for g in groups:
        g.setdefault("weight_decay", 0.0)
    if spec.name == "sgd":
        return torch.optim.SGD(groups, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov)
    return torch.optim.AdamW(groups, lr=spec.lr, betas=(spec.betas[0], spec.betas[1]))
