"""Adversarial examples for the figures, from the library's own evaluations (nothing is re-implemented here).

* AutoAttack (:func:`eee_zoo.evaluation.evaluate`): its ``x_adv`` and per-image outcomes; ``rand`` on the deployed
  stochastic model, ``standard`` on the deterministic mode (``standard-det``). An image is *broken* when AutoAttack
  classified it right clean and not after its attacks (its own judgement: one draw per check).
* The adaptive worst case (:func:`eee_zoo.adaptive.adaptive_evaluate`): the per-image kept proposal (its
  ``x_adv``). An image is *broken* when the deployed model is
  right on most fresh draws clean and wrong on most fresh draws after the attack.

Both keep their resumable state under ``state_dir``, so a figure asked for again (or another figure on the same
configuration) reuses the finished run instead of attacking again.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .._progress import ProgressOutput
from ..adaptive import AUTOATTACK_PROPOSALS, DEFAULT_BATCH_SIZE, DEFAULT_DRAWS, adaptive_evaluate
from ..adaptive.surrogates import stochastic_mode
from ..evaluation import evaluate
from .stats import count_accuracy, per_draw_accuracy

__all__ = ["AUTOATTACK_RUNS", "AttackRun", "AdaptiveSettings", "adaptive_run", "autoattack_run", "deployed_autoattack"]

# name -> (AutoAttack version, stochastic inference)
AUTOATTACK_RUNS = {"autoattack-rand": ("rand", True), "autoattack-standard-det": ("standard", False)}


def deployed_autoattack(stochastic: bool) -> str:
    """The AutoAttack run on the deployed model: ``rand``, or for a model whose stack draws nothing (a single-
    resolution baseline) ``standard`` (RobustBench's protocol: rand would run standard's APGD on copies of one
    gradient)."""
    return "autoattack-rand" if stochastic else "autoattack-standard-det"


TITLES = {
    "autoattack-rand": "AutoAttack rand (deployed, stochastic)",
    "autoattack-standard-det": "AutoAttack standard (deterministic mode)",
    "adaptive": "adaptive worst case",
}


@dataclasses.dataclass
class AttackRun:
    """One attack's examples on the first ``n`` images, with its own verdict per image and its robust accuracy."""

    name: str  # autoattack-rand | autoattack-standard-det | adaptive
    title: str
    eps: float
    # [n, C, H, W] on the CPU; None: an adaptive run resumed from stored counts whose kept examples are not stored
    # (a curve needs none; the successful attacks do)
    x_adv: torch.Tensor | None
    clean_right: torch.Tensor  # [n] bool, by the attack's own judgement
    broken: torch.Tensor  # [n] bool: right clean, wrong after the attack (see the module docstring)
    clean: dict[str, Any]  # accuracy record (see eee_zoo.viz.stats)
    robust: dict[str, Any]
    settings: dict[str, Any]  # what ran: version, overrides (cuts), preset, draws, seed, ...

    def record(self) -> dict[str, Any]:
        """The JSON-able part."""
        settings = {k: v for k, v in self.settings.items() if k != "chosen"}  # per-image proposal names: too long
        return {"name": self.name, "title": self.title, "eps": self.eps, "eps_255": round(self.eps * 255, 6),
                "clean": self.clean, "robust": self.robust, "settings": settings}  # fmt: skip

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> AttackRun:
        """The numbers of a :meth:`record` (no examples, no per-image verdicts): enough to draw a curve again."""
        empty = torch.zeros(0, dtype=torch.bool)
        return cls(record["name"], record["title"], record["eps"], torch.zeros(0), empty, empty, record["clean"],
                   record["robust"], record["settings"])  # fmt: skip


def autoattack_run(
    model: nn.Module,
    name: str,
    n_examples: int,
    dataset: str,
    threat_model: str,
    *,
    eps: float,
    seed: int,
    overrides: dict[str, Any] | None = None,
    batch_size: int = 500,
    data_dir: Any = None,
    state_dir: str | Path | None = None,
    fresh: bool = False,
    progress: ProgressOutput = False,
) -> AttackRun:
    """AutoAttack ``name`` (a key of :data:`AUTOATTACK_RUNS`) through :func:`eee_zoo.evaluate`; ``overrides`` cut
    its settings (recorded; EOT cuts apply to the stochastic run only, standard-det runs none); ``batch_size`` is
    AutoAttack's (part of the configuration: 500 as the zoo's results)."""
    version, stochastic = AUTOATTACK_RUNS[name]
    if not stochastic:  # EOT on the deterministic mode averages copies of one gradient: its cost, none of its use
        overrides = {k: v for k, v in (overrides or {}).items() if not k.endswith(".eot_iter")}
    with stochastic_mode(model, stochastic):
        result = evaluate(
            model, n_examples, dataset, threat_model, version=version, eps=eps, seed=seed, batch_size=batch_size,
            attack_overrides=overrides or None, data_dir=data_dir, interval="clopper-pearson", progress=progress,
            state_path=None if state_dir is None else Path(state_dir) / "autoattack", fresh=fresh,
        )  # fmt: skip
    clean_right = torch.tensor([o != "-" for o in result.outcomes])
    robust = result.robust_flags
    settings = {
        "version": version, "inference": "stochastic" if stochastic else "deterministic", "seed": seed,
        "batch_size": batch_size, "attacks": [a.attack for a in result.attacks], "attack_config": result.attack_config,
        "cut": dict(result.attack_overrides), "unreliable_checks": result.unreliable_checks,
        "wall_time_s": round(result.wall_time_s, 1), "outcomes": result.outcomes,
        "identity": {
            "checkpoint_sha256": result.checkpoint_sha256, "dataset": result.dataset,
            "threat_model": result.threat_model, "version": result.version, "eps": result.eps,
            "n_examples": result.n_examples, "seed": result.seed, "batch_size": result.batch_size,
            "chunk_size": result.chunk_size, "stochastic": result.stochastic,
            "attack_overrides": dict(result.attack_overrides), "data.sha256": result.data.get("sha256"),
        },
        "fingerprint": {"robust_correct": result.robust_correct, "outcomes": result.outcomes},
    }  # fmt: skip
    return AttackRun(
        name=name, title=TITLES[name], eps=float(eps), x_adv=result.x_adv.detach().cpu(), clean_right=clean_right,
        broken=clean_right & ~robust, clean=count_accuracy(clean_right), robust=count_accuracy(robust),
        settings=settings,
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class AdaptiveSettings:
    """The adaptive worst case's configuration (see :func:`eee_zoo.adaptive.adaptive_evaluate`)."""

    preset: str = "zoo"
    autoattack: tuple[str, ...] = AUTOATTACK_PROPOSALS  # AutoAttack versions whose examples join the proposals
    selection_draws: int = DEFAULT_DRAWS["selection_draws"]
    final_draws: int = DEFAULT_DRAWS["final_draws"]
    tie_draws: int = DEFAULT_DRAWS["tie_draws"]
    fresh_draws: int = DEFAULT_DRAWS["fresh_draws"]
    batch_size: int = DEFAULT_BATCH_SIZE
    cascade: bool = False
    autoattack_overrides: dict[str, Any] | None = None
    # AutoAttack's examples from its full runs (see adaptive_evaluate): a state folder, or True for the figures' own
    # AutoAttack runs (state_dir/autoattack, shared when their batch size is evaluate's default); None: per batch
    autoattack_runs: str | Path | bool | None = None
    autoattack_chunk_size: int | None = None  # those runs made in chunks of this many images (see adaptive_evaluate)
    attacks: tuple[Any, ...] | None = None  # Attack values replacing the preset (tests)


def adaptive_run(
    model: nn.Module,
    n_examples: int,
    dataset: str,
    threat_model: str,
    *,
    eps: float,
    seed: int,
    settings: AdaptiveSettings = AdaptiveSettings(),
    data_dir: Any = None,
    state_dir: str | Path | None = None,
    fresh: bool = False,
    progress: ProgressOutput = False,
) -> AttackRun:
    """The adaptive worst case (:func:`eee_zoo.adaptive.adaptive_evaluate`) with each image's kept example; with
    ``state_dir`` a finished run of the same configuration there is reused, as the library does."""
    runs = settings.autoattack_runs
    if runs is True:
        if state_dir is None:
            raise ValueError("autoattack_runs=True takes the figures' AutoAttack runs from state_dir: give one")
        runs = Path(state_dir) / "autoattack"
    result = adaptive_evaluate(
        model, n_examples, dataset, threat_model, eps=eps, seed=seed, preset=settings.preset,
        attacks=list(settings.attacks) if settings.attacks is not None else None, autoattack=settings.autoattack,
        selection_draws=settings.selection_draws, final_draws=settings.final_draws, tie_draws=settings.tie_draws,
        fresh_draws=settings.fresh_draws, batch_size=settings.batch_size, cascade=settings.cascade,
        autoattack_overrides=settings.autoattack_overrides, autoattack_runs=runs or None,
        autoattack_chunk_size=settings.autoattack_chunk_size, data_dir=data_dir,
        state_dir=state_dir, fresh=fresh, progress=progress,
    )  # fmt: skip
    x_adv = None if result.x_adv is None else result.x_adv.detach().cpu()
    suite = result.preset + (f" + AutoAttack {', '.join(result.autoattack)}" if result.autoattack else "")
    suite += " from its runs" if result.autoattack_source == "run" else ""
    draws = result.fresh_draws
    clean_hits, robust_hits = torch.tensor(result.clean.fresh_hits), torch.tensor(result.robust.fresh_hits)
    clean_right = 2 * clean_hits > draws
    record = {
        "preset": result.preset, "attacks": [a["description"] for a in result.attacks],
        "autoattack_proposals": result.autoattack, "autoattack_overrides": result.autoattack_overrides,
        "selection_draws": result.selection_draws, "final_draws": result.final_draws,
        "tie_draws": result.tie_draws, "fresh_draws": draws, "cascade": result.cascade,
        **({"autoattack_source": "run"} if result.autoattack_source == "run" else {}),
        **({"autoattack_chunk_size": result.autoattack_chunk_size} if result.autoattack_chunk_size else {}),
        "stochastic": result.stochastic, "seed": seed, "batch_size": result.batch_size,
        "wall_time_s": result.wall_time_s,
        "every_draw_robust": {"accuracy": result.robust.every_draw, "correct": result.robust.every_draw_correct,
                              "n": n_examples, "interval": list(result.robust.every_draw_interval)},
        # each attack's own worst case per draw (AutoAttack's: its examples re-scored on the fresh draws), and its
        # per-image fresh hits, so that it can be counted any other way (e.g. as AutoAttack counts)
        "per_attack": {c.name: per_draw_accuracy(c.fresh_hits, draws) for c in result.per_attack},
        "per_attack_fresh_hits": {c.name: list(c.fresh_hits) for c in result.per_attack},
        "chosen": result.chosen,
        "identity": {
            "suite": "adaptive", "checkpoint_sha256": result.checkpoint_sha256, "dataset": result.dataset,
            "threat_model": result.threat_model, "eps": result.eps, "n_examples": result.n_examples,
            "seed": result.seed, "batch_size": result.batch_size, "preset": result.preset,
            "attacks": json.loads(json.dumps(result.attacks)), "autoattack": list(result.autoattack),
            "autoattack_overrides": dict(result.autoattack_overrides or {}), "selection_draws": result.selection_draws,
            "final_draws": result.final_draws, "tie_draws": result.tie_draws, "fresh_draws": draws,
            "cascade": result.cascade,
            **({"autoattack_source": "run"} if result.autoattack_source == "run" else {}),  # absent: per batch
            "data.sha256": result.data.get("sha256"),
        },
        "fingerprint": {"robust.fresh_hits": result.robust.fresh_hits, "chosen": result.chosen},
    }  # fmt: skip
    return AttackRun(
        name="adaptive", title=f"{TITLES['adaptive']} ({suite})", eps=float(eps), x_adv=x_adv,
        clean_right=clean_right, broken=clean_right & (2 * robust_hits < draws),
        clean=per_draw_accuracy(clean_hits, draws), robust=per_draw_accuracy(robust_hits, draws), settings=record,
    )  # fmt: skip
