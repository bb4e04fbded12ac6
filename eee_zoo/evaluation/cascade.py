"""AutoAttack's cascade, driven here: its attack objects called on the still-robust images, flags and x_adv kept.

:func:`run_cascade` is ``AutoAttack.run_standard_evaluation`` (pyautoattack 0.2.0) operation for operation:

1. its checks on the first batch (:func:`.autoattack_checks.run_pre_checks`);
2. the clean pass, batch by batch: an image is robust while the model classifies it correctly (a stochastic
   model: on that one draw);
3. every attack in order on the images still robust, in batches of ``batch_size`` taken in index order: the
   attack object set up as AutoAttack sets it up (:func:`.autoattack.prepare_attack`, which also gives it its
   seed), ``perturb(x, y)``, then one forward pass on its output; an image it misclassifies is no longer robust
   and keeps that example as its ``x_adv``. An attack with nothing left to attack ends the cascade;
4. the Square check on the accuracies after every attack.

Same images, batches, seeds, forward passes and random draws as AutoAttack run directly, so the same flags and
the same ``x_adv`` (the clean image where no attack succeeded). The cascade can start at an attack boundary
(:class:`CascadePosition`: flags, examples and accuracies so far), which is how a run resumes; the caller then
restores the model's generators to their state at that boundary. A :class:`CascadeObserver` hears every
boundary, batch and log line; it only observes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any, Protocol

import torch

from .autoattack import prepare_attack
from .autoattack_checks import check_square, run_pre_checks

__all__ = ["CascadeObserver", "CascadePosition", "run_cascade"]


@dataclasses.dataclass
class CascadePosition:
    """Where a cascade stands at the start of attack ``attack_index`` (or at its end: ``len(attacks)``)."""

    attack_index: int
    flags: torch.Tensor  # bool [n], on the images' device: robust so far
    x_adv: torch.Tensor  # [n, C, H, W]: the example that broke each image, the clean image otherwise
    accuracies: dict[str, float]  # AutoAttack's robust_accuracy_dict: "clean", then each attack that ran


class CascadeObserver(Protocol):
    def log(self, level: int, message: str) -> None:
        """A line of the run's log (AutoAttack's own wording)."""

    def attack_started(self, index: int, attack: str, position: CascadePosition) -> None:
        """Attack ``index`` starts on the images flagged in ``position`` (before AutoAttack's empty check)."""

    def batch_done(self, attack: str, batch: int, batches: int, broken: int) -> None:
        """Batch ``batch`` (1-based) of ``attack`` broke ``broken`` images."""

    def attack_done(self, attack: str) -> None:
        """``attack`` finished (or was skipped)."""


def run_cascade(
    adversary: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    observer: CascadeObserver,
    checks_logger: logging.Logger,
    start: CascadePosition | None = None,
) -> CascadePosition:
    """Run AutoAttack's cascade on ``x, y`` (from ``start`` when given); returns its final position."""
    attacks = list(adversary.attacks_to_run)
    if start is None:
        observer.log(logging.DEBUG, f"using {adversary.version} version including {', '.join(attacks)}.")
        run_pre_checks(adversary, x, y, batch_size, checks_logger)
    started = time.time()
    with torch.no_grad():
        if start is None:
            position = _clean_pass(adversary, x, y, batch_size)
            observer.log(logging.DEBUG, f"initial accuracy: {position.accuracies['clean']:.2%}")
        else:
            position = CascadePosition(start.attack_index, start.flags, start.x_adv, dict(start.accuracies))
            for earlier in attacks[: start.attack_index]:  # their settings outlive them (FAB-T: one restart)
                prepare_attack(adversary, earlier)
        for index in range(position.attack_index, len(attacks)):
            attack = attacks[index]
            position.attack_index = index
            observer.log(logging.DEBUG, f"running {attack}")
            observer.attack_started(index, attack, position)
            num_robust = int(position.flags.sum())
            if num_robust == 0:
                observer.log(logging.DEBUG, "no robust datapoints left, skipping remaining attacks")
                observer.attack_done(attack)
                break
            _attack(adversary, attack, x, y, position, batch_size, observer)
            accuracy = int(position.flags.sum()) / len(x)
            position.accuracies[attack] = accuracy
            observer.log(
                logging.DEBUG,
                f"robust accuracy after {attack.upper()}: {accuracy:.2%} (total time {time.time() - started:.1f} s)",
            )
            observer.attack_done(attack)
        position.attack_index = len(attacks)
        check_square(position.accuracies, checks_logger)
        observer.log(logging.DEBUG, _perturbation_line(adversary.norm, x, position.x_adv))
        observer.log(logging.DEBUG, f"robust accuracy: {int(position.flags.sum()) / len(x):.2%}")
    return position


def _clean_pass(adversary: Any, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> CascadePosition:
    flags = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for b in range(math.ceil(len(x) / batch_size)):
        lo, hi = b * batch_size, min((b + 1) * batch_size, len(x))
        xb, yb = x[lo:hi].clone().to(adversary.device), y[lo:hi].clone().to(adversary.device)
        output = adversary.get_logits(xb).max(dim=1)[1]
        flags[lo:hi] = yb.eq(output).detach().to(flags.device)
    accuracy = int(flags.sum()) / len(x)
    return CascadePosition(0, flags, x.clone().detach(), {"clean": accuracy})


def _attack(
    adversary: Any,
    attack: str,
    x: torch.Tensor,
    y: torch.Tensor,
    position: CascadePosition,
    batch_size: int,
    observer: CascadeObserver,
) -> None:
    """One attack on every image still robust, batch after batch, as AutoAttack runs it."""
    robust = torch.nonzero(position.flags).flatten()  # the batches are fixed when the attack starts
    batches = math.ceil(len(robust) / batch_size)
    for b in range(batches):
        indices = robust[b * batch_size : (b + 1) * batch_size]
        xb, yb = x[indices].clone().to(adversary.device), y[indices].clone().to(adversary.device)
        adv = prepare_attack(adversary, attack).perturb(xb, yb)
        output = adversary.get_logits(adv).max(dim=1)[1]
        broken = ~yb.eq(output).to(position.flags.device)
        position.flags[indices[broken]] = False
        position.x_adv[indices[broken]] = adv[broken].detach().to(position.x_adv.device)
        line = f"{attack} - {b + 1}/{batches} - {int(broken.sum())} out of {len(xb)} successfully perturbed"
        observer.log(logging.DEBUG, line)
        observer.batch_done(attack, b + 1, batches, int(broken.sum()))


def _perturbation_line(norm: str, x: torch.Tensor, x_adv: torch.Tensor) -> str:
    """AutoAttack's last check: the largest perturbation, NaNs, and the range of the examples."""
    delta = (x_adv - x).reshape(len(x), -1)
    if norm == "Linf":
        size = delta.abs().max(1)[0]
    elif norm == "L2":
        size = (delta**2).sum(-1).sqrt()
    else:
        size = delta.abs().sum(-1)
    largest = float(size.max()) if len(size) else 0.0
    nans = int((x_adv != x_adv).sum())
    return (
        f"max {norm} perturbation: {largest:.5f}, nan in tensor: {nans}, max: {float(x_adv.max()):.5f}, "
        f"min: {float(x_adv.min()):.5f}"
    )
