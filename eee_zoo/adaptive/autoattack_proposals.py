"""AutoAttack's own adversarial examples as proposals: ``rand`` on the deployed model, ``standard`` on its
deterministic mode. AutoAttack judges them its own way (``rand``: an image counts as broken as soon as one draw
misclassifies at one of its checks, and is then never attacked); here the deployed model judges them like every
other proposal, on the selection and fresh draws.

Two sources: :func:`autoattack_examples` runs AutoAttack on one batch of the adaptive run (seeded per batch);
:func:`autoattack_run_examples` takes the examples of AutoAttack's full run on the same images through
:func:`eee_zoo.evaluate`, the run the zoo reports beside the worst case, resumed from its state when it is there.
The second costs nothing when that run exists (AutoAttack is most of the adaptive suite's time) and makes the worst
case contain the very examples behind the AutoAttack figure it is held against.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from .._progress import ProgressOutput
from ..evaluation.api import evaluate
from ..evaluation.autoattack import attack_list, build_autoattack
from ..evaluation.progress import apgd_iterations
from .surrogates import stochastic_mode

logger = logging.getLogger(__name__)

__all__ = ["APGD_ITERATIONS", "autoattack_examples", "autoattack_run_examples"]

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
    aa_version, stochastic = _mode(version)
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


def autoattack_run_examples(
    model: nn.Module,
    version: str,
    n_examples: int,
    dataset: str,
    threat_model: str,
    *,
    eps: float,
    seed: int,
    state_path: str | os.PathLike,
    overrides: dict[str, Any] | None = None,
    data_dir: Any = None,
    inputs: tuple[torch.Tensor, torch.Tensor] | None = None,
    model_name: str | None = None,
    chunk_size: int | None = None,
    progress: ProgressOutput = False,
) -> torch.Tensor:
    """``x_adv`` ``[n_examples, ...]`` (on the CPU) of AutoAttack ``rand`` (deployed) or ``standard-det``
    (deterministic mode) on the first ``n_examples`` images: :func:`eee_zoo.evaluate` with its default batch size,
    its state kept under ``state_path`` (a finished run there is reused; an unfinished one resumes). Images the run
    did not break keep the clean image (a proposal of ``δ = 0``). ``chunk_size``: the run made in fixed chunks of
    that many images, each its own resumable AutoAttack run (``evaluate(chunk_size=...)``, ``--chunk-size``)."""
    aa_version, stochastic = _mode(version)
    with stochastic_mode(model, stochastic):
        result = evaluate(
            model, n_examples, dataset, threat_model, version=aa_version, eps=eps, seed=seed, data_dir=data_dir,
            inputs=inputs, model_name=model_name, attack_overrides=overrides or None, state_path=state_path,
            chunk_size=chunk_size, progress=progress,
        )  # fmt: skip
    if result.x_adv is None:  # a state of an earlier format kept no examples
        raise RuntimeError(
            f"AutoAttack {aa_version}'s run under {state_path} kept no adversarial examples; run it again with "
            "fresh=True (--fresh) or point at another state directory"
        )
    # the run's own figure, so a log shows which run the proposals came from (a rerun elsewhere may differ)
    logger.info("AutoAttack %s's run: %d/%d robust (%d clean-correct)", version, result.robust_correct, n_examples,
                result.clean_correct)  # fmt: skip
    return result.x_adv.detach().cpu()


def _mode(version: str) -> tuple[str, bool]:
    """``(AutoAttack version, stochastic inference)`` of a proposal version."""
    if version not in _MODES:
        raise ValueError(f"AutoAttack proposals are {list(_MODES)}, got {version!r}")
    return _MODES[version]
