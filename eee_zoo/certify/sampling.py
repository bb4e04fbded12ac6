"""The base classifier under Gaussian noise: class counts of ``model(x + sigma * eps)`` over many draws.

The base classifier is the model exactly as given (a zoo model from ``load_model`` is in its deployed mode: its own
random stack stays on) fed ``x + N(0, sigma^2 I)``. The noisy images are **not clamped to [0, 1]**, as in Cohen et
al.'s code: the theorem is about ``f(x + delta)`` for every real ``x + delta``, and the stack of a self-ensemble
clamps its own output anyway. A self-ensemble refuses pixels outside [0, 1] (that check guards against
pre-normalised images), so :func:`unclamped_inputs` turns its ``check_range`` off during a run; the shape,
dtype and NaN checks stay.

A model with its own randomness (the stack's jitter and noise) is a random base classifier; randomized smoothing
holds for it too: with ``h(z) = P_omega[f(z; omega) = c]``, the count estimates ``E_delta[h(x + delta)]``, and Cohen's
bound holds for soft classifiers (Salman et al. 2019, Lemma 2). All draws, the input noise and the model's own, come
from one ``torch.Generator`` per (image, scale, phase), passed to the model as ``generator=`` where its ``forward``
takes one, so a run is a pure function of its seed. The draws are batched: ``batch_size`` noisy copies per forward
pass, the same ``(seed, batch_size)`` giving the same counts.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator

import torch
import torch.nn as nn

__all__ = ["sample_counts", "takes_generator", "unclamped_inputs"]


def takes_generator(model: nn.Module) -> bool:
    """Whether ``model.forward`` accepts ``generator=`` (eee_zoo's SelfEnsemble does): its draws then come from ours."""
    try:
        return "generator" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


@contextlib.contextmanager
def unclamped_inputs(model: nn.Module) -> Iterator[None]:
    """Let ``model`` (a SelfEnsemble: its ``check_range``) take pixels outside [0, 1] inside the block; its shape,
    dtype and NaN checks stay. Other models are left alone."""
    if not hasattr(model, "check_range"):
        yield
        return
    before = model.check_range
    model.check_range = False
    try:
        yield
    finally:
        model.check_range = before


@torch.no_grad()
def sample_counts(
    model: nn.Module,
    x: torch.Tensor,
    num: int,
    sigma: float,
    generator: torch.Generator,
    *,
    batch_size: int,
    num_classes: int,
    pass_generator: bool,
) -> list[int]:
    """How often ``model(x + sigma * eps)`` predicts each class over ``num`` draws (``x``: one image ``[C, H, W]``)."""
    counts = torch.zeros(num_classes, dtype=torch.long, device=x.device)
    done = 0
    while done < num:
        b = min(batch_size, num - done)
        batch = x.unsqueeze(0).expand(b, *x.shape)
        noise = torch.randn(batch.shape, generator=generator, dtype=x.dtype, device=x.device)
        noisy = batch + sigma * noise  # not clamped: see the module docstring
        logits = model(noisy, generator=generator) if pass_generator else model(noisy)
        if not isinstance(logits, torch.Tensor) or logits.shape != (b, num_classes):
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ValueError(f"the model must return scores [B, {num_classes}] for B images, got {shape} for B={b}")
        counts += torch.bincount(logits.argmax(dim=1), minlength=num_classes)
        done += b
    return counts.cpu().tolist()
