"""The attacks that propose adversarial examples, each described by one :class:`Attack` value.

Two optimisers:

* ``apgd``: AutoAttack's own APGD (``pyautoattack``: ``APGDAttack`` / ``APGDAttack_targeted``), run restart by
  restart through ``attack_single_run``; each run proposes its highest-loss iterate *and* its last iterate that the
  surrogate misclassified, and the deployed model chooses between them (an iterate's surrogate loss is not the
  deployed model's decision). Targeted runs aim at the surrogate's top classes other than the label.
* ``pgd``: signed-gradient PGD from the clean image, step ``step_size * eps`` halved at 50 % and again at 75 % of the
  steps, proposing the iterate every ``record_every`` steps and the last one: the attack of Zhang et al. 2024.

Every proposal is projected onto the eps-ball around the clean image and into [0, 1]. Randomness: APGD's random
start comes from torch's global RNG, seeded inside a forked RNG state; the stack's draws from the model's
generator, reseeded per run; same seed, same proposals.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..evaluation.examples import project
from .surrogates import Surrogate

__all__ = ["LOSSES", "OPTIMISERS", "SURROGATES", "Attack"]

SURROGATES = ("deployed", "mean", "predictors")
OPTIMISERS = ("apgd", "pgd")
LOSSES = ("ce", "dlr", "ce-targeted", "dlr-targeted")

_SURROGATE_TEXT = {
    "deployed": "the deployed aggregator",
    "mean": "the mean of the predictors' logits",
    "predictors": "each single predictor",
}
OnIteration = Callable[[int], None] | None


@dataclasses.dataclass(frozen=True)
class Attack:
    """One attack: which surrogate, how many EOT draws (0: deterministic mode), which optimiser and loss."""

    name: str
    surrogate: str = "mean"  # deployed | mean | predictors (one run per predictor)
    draws: int = 0
    optimiser: str = "apgd"
    loss: str = "ce"
    n_iter: int = 100
    restarts: int = 1
    targets: int = 0  # targeted losses: how many of the surrogate's top classes (other than the label)
    step_size: float = 0.25  # pgd: the first step, as a fraction of eps
    record_every: int = 0  # pgd: also propose every this many steps (0: the last iterate only)

    def __post_init__(self) -> None:
        if self.surrogate not in SURROGATES:
            raise ValueError(f"{self.name}: surrogate must be one of {SURROGATES}, got {self.surrogate!r}")
        if self.optimiser not in OPTIMISERS:
            raise ValueError(f"{self.name}: optimiser must be one of {OPTIMISERS}, got {self.optimiser!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"{self.name}: loss must be one of {LOSSES}, got {self.loss!r}")
        for key in ("n_iter", "restarts"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ValueError(f"{self.name}: {key} must be an integer >= 1, got {getattr(self, key)!r}")
        if self.draws < 0 or self.targets < 0 or self.record_every < 0:
            raise ValueError(f"{self.name}: draws, targets and record_every must be >= 0")
        if self.loss.endswith("targeted") != (self.targets > 0):
            raise ValueError(f"{self.name}: a targeted loss needs targets >= 1, and targets need a targeted loss")
        if self.optimiser == "pgd" and self.loss.startswith("dlr"):
            raise ValueError(f"{self.name}: pgd runs cross-entropy losses only")

    def describe(self) -> str:
        mode = "deterministic mode" if self.draws == 0 else f"EOT {self.draws} draws"
        goal = f"targeted at the top {self.targets} classes" if self.targets else "untargeted"
        extra = f", first step {self.step_size:g} eps, halved at 50 % and 75 %" if self.optimiser == "pgd" else ""
        return (
            f"{self.optimiser.upper()}-{self.loss.split('-')[0].upper()} {goal} on {_SURROGATE_TEXT[self.surrogate]} "
            f"({mode}), {self.n_iter} iterations x {self.restarts} restart(s){extra}"
        )

    def runs_per_image(self, num_predictors: int) -> int:
        surrogates = num_predictors if self.surrogate == "predictors" else 1
        return surrogates * self.restarts * max(1, self.targets)

    def proposals(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        norm: str,
        seed: int,
        on_iteration: OnIteration = None,
    ) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield ``(label, x_adv)`` for ``x``; labels name the surrogate, restart, target and iterate."""
        heads: list[tuple[str, str | int]] = [("", self.surrogate)]
        if self.surrogate == "predictors":
            heads = [(f"{name}/", p) for p, name in enumerate(model.predictor_names)]
        run = 0
        for head_label, head in heads:
            surrogate = Surrogate(model, head=head, draws=self.draws)
            for restart in range(self.restarts):
                for target in range(max(1, self.targets)):
                    run_seed = seed * 7919 + run
                    run += 1
                    label = f"{head_label}r{restart}" + (f"/t{target + 2}" if self.targets else "")
                    y_target = _top_class(surrogate, x, target + 2, run_seed) if self.targets else None
                    step = _apgd if self.optimiser == "apgd" else _pgd
                    for tag, x_adv in step(self, surrogate, x, y, y_target, eps, norm, run_seed, on_iteration):
                        yield f"{label}/{tag}", project(x, x_adv, eps, norm)


def _top_class(surrogate: Surrogate, x: torch.Tensor, rank: int, seed: int) -> torch.Tensor:
    """The surrogate's ``rank``-th most likely class per image (rank 2: the runner-up), as AutoAttack picks targets."""
    surrogate.model.manual_seed(seed)
    with torch.no_grad():
        return surrogate(x).argsort(dim=1, descending=True)[:, rank - 1]


def _apgd(
    attack: Attack,
    surrogate: Surrogate,
    x: torch.Tensor,
    y: torch.Tensor,
    y_target: torch.Tensor | None,
    eps: float,
    norm: str,
    seed: int,
    on_iteration: OnIteration,
) -> Iterator[tuple[str, torch.Tensor]]:
    from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

    if y_target is None:
        apgd = APGDAttack(
            surrogate, n_iter=attack.n_iter, norm=norm, eps=eps, seed=seed, loss=attack.loss, device=x.device
        )
    else:
        apgd = APGDAttack_targeted(surrogate, n_iter=attack.n_iter, norm=norm, eps=eps, seed=seed, device=x.device)
        apgd.loss = attack.loss  # the class fixes dlr-targeted; its single run also knows ce-targeted
    apgd.init_hyperparam(x)
    apgd.y_target = y_target
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(seed)  # APGD's random start
        surrogate.model.manual_seed(seed)  # the stack's draws, when the surrogate is stochastic
        with _iterations(apgd, on_iteration):
            x_best, _, _, x_best_adv = apgd.attack_single_run(x, y)
    yield "best-loss", x_best.detach()
    yield "last-misclassified", x_best_adv.detach()


def _iterations(apgd: Any, on_iteration: OnIteration) -> Any:
    import contextlib

    if on_iteration is None:
        return contextlib.nullcontext()
    from ..evaluation.progress import apgd_iterations

    return apgd_iterations(apgd, on_iteration)


def _pgd(
    attack: Attack,
    surrogate: Surrogate,
    x: torch.Tensor,
    y: torch.Tensor,
    y_target: torch.Tensor | None,
    eps: float,
    norm: str,
    seed: int,
    on_iteration: OnIteration,
) -> Iterator[tuple[str, torch.Tensor]]:
    surrogate.model.manual_seed(seed)
    x_adv = x.clone()
    for step in range(attack.n_iter):
        decay = 1.0 if step < attack.n_iter // 2 else 0.5 if step < (3 * attack.n_iter) // 4 else 0.25
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            logits = surrogate(x_adv)
            if y_target is None:
                loss = F.cross_entropy(logits, y, reduction="sum")
            else:  # targeted: descend the target's cross-entropy
                loss = -F.cross_entropy(logits, y_target, reduction="sum")
            (grad,) = torch.autograd.grad(loss, [x_adv])
        alpha = attack.step_size * eps * decay
        with torch.no_grad():
            if norm == "Linf":
                x_adv = x_adv + alpha * grad.sign()
            else:
                g = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
                x_adv = x_adv + alpha * grad / g
            x_adv = project(x, x_adv, eps, norm)
        if on_iteration is not None:
            on_iteration(step + 1)
        if attack.record_every and (step + 1) % attack.record_every == 0 and step + 1 < attack.n_iter:
            yield f"step{step + 1}", x_adv.detach().clone()
    yield f"step{attack.n_iter}", x_adv.detach()
