"""AutoAttack's own adversarial examples as proposals: ``rand`` on the deployed model, ``standard`` on its
deterministic mode. AutoAttack judges them its own way (``rand``: an image counts as broken as soon as one draw
misclassifies at one of its checks, and is then never attacked); here the deployed model judges them like every
other proposal, on the selection and fresh draws.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from ..evaluation.autoattack import attack_list, build_autoattack
from ..evaluation.progress import apgd_iterations
from .surrogates import stochastic_mode

__all__ = ["APGD_ITERATIONS", "autoattack_examples"]

_MODES = {"rand": ("rand", True), "standard-det": ("standard", False)}
# APGD iterations each version runs per image at most (progress only): rand APGD-CE + APGD-DLR; standard APGD-CE +
# APGD-T over 9 target classes (its FAB-T and Square are not followed).
APGD_ITERATIONS = {"rand": 2 * 100, "standard-det": 100 + 9 * 100}


def autoattack_examples(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    version: str,
    *,
    eps: float,
    norm: str,
    seed: int,
    overrides: dict[str, Any] | None = None,
    on_iteration: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """``x_adv`` of AutoAttack ``rand`` (deployed) or ``standard-det`` (deterministic mode), seeded with ``seed``.

    ``overrides`` (``{"apgd.n_iter": 4, ...}``) cut AutoAttack's settings, for tests; results record them.
    ``on_iteration(i)`` follows the iterations of AutoAttack's APGD runs (FAB and Square are not followed).
    """
    if version not in _MODES:
        raise ValueError(f"AutoAttack proposals are {list(_MODES)}, got {version!r}")
    aa_version, stochastic = _MODES[version]
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), stochastic_mode(model, stochastic):
        torch.manual_seed(seed)
        model.manual_seed(seed)
        adversary = build_autoattack(
            model, version=aa_version, attacks=attack_list(aa_version, None), eps=eps, norm=norm, seed=seed,
            device=x.device, overrides=overrides,
        )  # fmt: skip
        with contextlib.ExitStack() as stack:
            if on_iteration is not None:
                for apgd in (adversary.apgd, adversary.apgd_targeted):
                    stack.enter_context(apgd_iterations(apgd, on_iteration))
            x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=len(x))
    return x_adv.detach()
