"""Adversarial training attacks at Linf: FGSM with a random start (Wong et al. 2020) and PGD-k (Madry et al. 2018).

The attacks take a ``loss_fn(x_adv) -> scalar`` that runs the *whole stochastic model as deployed*: every
call draws a fresh multi-resolution stack from the training step's generator, so the perturbation is
optimised against the model's randomness, not against one frozen noise draw. Gradients are taken with
``torch.autograd.grad`` with respect to the perturbation only, so no parameter gradient is touched.
These are training attacks; robustness is measured with AutoAttack by the benchmark runner.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["fgsm", "pgd", "perturb", "default_step_size"]

LossFn = Callable[[torch.Tensor], torch.Tensor]


def default_step_size(method: str, eps: float, steps: int) -> float:
    """1.25 eps for FGSM with random start (Wong et al. 2020); 2.5 eps / steps for PGD (Madry et al. 2018)."""
    return 1.25 * eps if method == "fgsm" else 2.5 * eps / steps


def _random_start(x: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    delta = (2 * noise - 1) * eps
    return (x + delta).clamp(0, 1) - x  # keep x + delta a valid image


def _ascent_step(loss_fn: LossFn, x: torch.Tensor, delta: torch.Tensor, eps: float, step: float) -> torch.Tensor:
    delta = delta.detach().requires_grad_(True)
    loss = loss_fn(x + delta)
    (grad,) = torch.autograd.grad(loss, delta)
    delta = (delta.detach() + step * grad.sign()).clamp(-eps, eps)
    return (x + delta).clamp(0, 1) - x


def fgsm(
    loss_fn: LossFn,
    x: torch.Tensor,
    eps: float = 8 / 255,
    *,
    step_size: float | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One signed-gradient step of ``step_size`` (default 1.25 eps) from a random point of the eps-ball."""
    x = x.detach()
    step = default_step_size("fgsm", eps, 1) if step_size is None else step_size
    delta = _random_start(x, eps, generator) if random_start else torch.zeros_like(x)
    delta = _ascent_step(loss_fn, x, delta, eps, step)
    return (x + delta).detach()


def pgd(
    loss_fn: LossFn,
    x: torch.Tensor,
    eps: float = 8 / 255,
    steps: int = 10,
    *,
    step_size: float | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``steps`` projected signed-gradient steps (default size 2.5 eps / steps) inside the Linf eps-ball."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    x = x.detach()
    step = default_step_size("pgd", eps, steps) if step_size is None else step_size
    delta = _random_start(x, eps, generator) if random_start else torch.zeros_like(x)
    for _ in range(steps):
        delta = _ascent_step(loss_fn, x, delta, eps, step)
    return (x + delta).detach()


def perturb(
    method: str,
    loss_fn: LossFn,
    x: torch.Tensor,
    *,
    eps: float,
    steps: int,
    step_size: float | None,
    random_start: bool,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Dispatch on a recipe's ``adversarial.method`` (``"none"`` returns ``x``)."""
    if method == "none":
        return x
    if method == "fgsm":
        return fgsm(loss_fn, x, eps, step_size=step_size, random_start=random_start, generator=generator)
    if method == "pgd":
        return pgd(loss_fn, x, eps, steps, step_size=step_size, random_start=random_start, generator=generator)
    raise ValueError(f"unknown adversarial method {method!r}; choose none, fgsm or pgd")
