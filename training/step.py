"""What one training step computes in each stage: the trained module, its loss, and the adversarial examples.

Stage 1 (``backbone``) trains the backbone's own classifier on the stack; stage 2 (``heads``) trains the heads
on the frozen backbone's taps. Attacks target the model as it will be deployed at that point: the stochastic
stack and the backbone in stage 1, every predictor and the aggregator in stage 2. Numerics: the stack in fp32,
activations NHWC when ``channels_last``, bfloat16 autocast when ``amp`` (CUDA only).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from eee_zoo.models import SelfEnsemble

from .adversarial import perturb
from .recipe import AdversarialSpec

__all__ = ["StepModel"]


class _Heads(nn.Module):
    """The heads as one module (what DDP wraps in stage 2): tapped features -> ``[B, H, C]``."""

    def __init__(self, heads: nn.ModuleList) -> None:
        super().__init__()
        self.heads = heads

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([head(f) for head, f in zip(self.heads, features)], dim=1)


class StepModel:
    """A self-ensemble as the training steps run it (the model itself is shared, not copied)."""

    def __init__(self, model: SelfEnsemble, *, amp: bool, channels_last: bool) -> None:
        self.model = model
        self.amp = amp
        self.channels_last = channels_last

    def trained_module(self, stage: str) -> tuple[nn.Module, list[tuple[str, nn.Parameter]]]:
        """Set the modes and ``requires_grad`` of ``stage``; returns the module to train and its named parameters."""
        model = self.model
        if stage == "backbone":
            model.train()
            model.backbone.requires_grad_(True)
            model.heads.requires_grad_(False)
            return model.backbone, list(model.backbone.named_parameters())
        model.eval()  # frozen backbone: BatchNorm statistics stay as stage 1 left them
        model.backbone.requires_grad_(False)
        model.heads.requires_grad_(True)
        model.heads.train()
        return _Heads(model.heads), list(model.heads.named_parameters())

    def loss(
        self, stage: str, trained: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, smoothing: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The stage's training loss through ``trained`` (the module, or its DDP wrapper) and the number correct."""
        if stage == "backbone":
            stacked = self._stacked(x, gen)
            with self._autocast():
                logits = trained(stacked)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=smoothing)
            return loss, (logits.argmax(1) == y).sum()
        model = self.model
        with torch.no_grad(), self._autocast():
            _, tapped = model.backbone.forward_features(self._stacked(x, gen), model.taps)
        features = [tapped[t].float() for t in model.taps]
        with self._autocast():
            logits = trained(features).float()  # [B, H, C]
        n_heads = logits.shape[1]
        loss = sum(F.cross_entropy(logits[:, h], y, label_smoothing=smoothing) for h in range(n_heads))
        correct = (logits.argmax(2) == y.unsqueeze(1)).sum() / n_heads  # mean over heads
        return loss, correct

    def adversarial(
        self, stage: str, spec: AdversarialSpec, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        """Perturb ``x`` against the stochastic model in eval mode (BatchNorm statistics untouched by attacks)."""
        model = self.model
        attack_loss = self._backbone_attack_loss if stage == "backbone" else self._model_attack_loss
        modes = {m: m.training for m in (model.backbone, model.heads)}
        model.eval()
        try:
            return perturb(
                spec.method,
                lambda x_adv: attack_loss(x_adv, y, gen),
                x,
                eps=spec.eps,
                steps=spec.steps,
                step_size=spec.step_size,
                random_start=spec.random_start,
                generator=gen,
            )
        finally:
            for m, training in modes.items():
                m.train(training)

    def _backbone_attack_loss(self, x_adv: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Stage 1's deployed predictor: the stochastic stack followed by the backbone and its classifier."""
        with self._autocast():
            logits = self.model.backbone(self._stacked(x_adv, gen))
        return F.cross_entropy(logits.float(), y, reduction="sum")

    def _model_attack_loss(self, x_adv: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Stage 2's deployed model: stochastic stack -> every predictor -> the aggregator (CrossMax)."""
        with self._autocast():
            logits = self.model(x_adv, generator=gen)
        return F.cross_entropy(logits.float(), y, reduction="sum")

    def _stacked(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        stacked = self.model.stack(x, generator=gen)  # fp32: the stack is never autocast
        return stacked.contiguous(memory_format=torch.channels_last) if self.channels_last else stacked

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()
