"""What an evaluation returns: :class:`EvaluationResult` (``to_dict()`` is what results files hold), its parts,
its human-readable summary, and :func:`summarize`, which builds it from the runs' records (one, or one per chunk
in chunk order).
"""

from __future__ import annotations

import dataclasses
import platform
import sys
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch

from .._cpu import cpu_arithmetic, device_record, device_text, session_text
from .._percent import interval_percent_text, percent_text
from .intervals import CONFIDENCE, INTERVALS
from .state import RunRecord, make_identity

__all__ = [
    "RESULT_FORMAT", "SUITE", "AttackStep", "CheckWarning", "EvaluationResult", "merge_warning", "summarize",
    "versions",
]  # fmt: skip

RESULT_FORMAT = 1  # format_version of results files
SUITE = "autoattack"  # results files' "suite": which family of attacks produced them


@dataclasses.dataclass
class AttackStep:
    """Robust accuracy after one attack of the sequence (each attack runs on the points still robust)."""

    attack: str
    robust: int  # images still correctly classified after this attack
    accuracy: float  # robust / n
    interval: tuple[float, float]
    attacked: int  # images this attack was run on
    seconds: float
    images_per_second: float | None
    ran: bool  # False when no robust image was left to attack


@dataclasses.dataclass
class CheckWarning:
    """One of AutoAttack's checks that fired (they only log; here they are kept with the result)."""

    check: str  # randomized | softmax_output | zero_gradients | square_beats_white_box | dynamic | n_classes | other
    message: str
    count: int = 1
    chunks: list[int] | None = None  # sharded runs: the chunks where it fired


@dataclasses.dataclass
class EvaluationResult:
    """Everything about one evaluation; ``to_dict()`` is what results files hold."""

    model_name: str
    checkpoint_sha256: str
    sha256_source: str  # "checkpoint" (model.eee_info, the weights file) or "state_dict"
    dataset: str
    threat_model: str
    version: str
    eps: float
    n_examples: int
    seed: int
    batch_size: int
    chunk_size: int | None
    stochastic: bool
    clean_correct: int
    clean_accuracy: float
    clean_interval: tuple[float, float]
    robust_correct: int
    robust_accuracy: float
    robust_interval: tuple[float, float]
    attacks: list[AttackStep]
    attack_config: dict[str, Any]
    attack_overrides: dict[str, Any]
    warnings: list[CheckWarning]
    data: dict[str, Any]  # source, sha256 of the images and labels evaluated
    outcomes: str  # per image: '-' misclassified clean, 'k' broken by attack k, 'R' robust
    model_config: dict[str, Any] | None
    confidence: float
    interval_method: str
    versions: dict[str, str]
    device: str
    world_size: int
    wall_time_s: float
    sessions: int  # > 1 when the run was resumed
    created: str
    suite: str = SUITE  # files written before the field existed are AutoAttack results too
    # Where the attacks ran, one entry per distinct machine (device: processor, instruction set, threads), in the
    # order of the runs' sessions: a run resumed or its chunks made elsewhere (a GPU lease, then the CPU) names
    # each; ``device`` is then their devices, not the machine that assembled the file. [] before 2026-12-04.
    attacked_on: list[str] = dataclasses.field(default_factory=list)
    # Seconds of attacks behind the figure, summed over chunks and every session that worked on them (a reused
    # state's too, an interrupted one's lost work included): what the figure cost, where ``wall_time_s`` is only
    # this call's (seconds when it assembled finished states). None before 2026-12-04.
    compute_s: float | None = None
    log: list[str] = dataclasses.field(default_factory=list, repr=False)
    # What this session did not measure itself (a reused finished state, a resumed partial one): shown by
    # summary(), not kept in results files.
    notes: list[str] = dataclasses.field(default_factory=list, repr=False)
    # Every image's adversarial example (the clean image where no attack succeeded), [n, C, H, W] on the CPU; in
    # memory only: results files keep it beside them (eee_zoo.evaluation.examples), not in the JSON.
    x_adv: torch.Tensor | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def robust_flags(self) -> torch.Tensor:
        """Per image: still classified correctly after every attack (bool ``[n]``)."""
        return torch.tensor([o == "R" for o in self.outcomes], dtype=torch.bool)

    @property
    def unreliable_checks(self) -> list[str]:
        """Checks whose firing makes the number unreliable (AutoAttack's own flags)."""
        bad = {"randomized", "softmax_output", "square_beats_white_box", "dynamic", "zero_gradients"}
        return sorted({w.check for w in self.warnings if w.check in bad})

    @property
    def is_reduced(self) -> bool:
        """True when attack settings were overridden (plumbing tests): not a valid AutoAttack evaluation."""
        return bool(self.attack_overrides)

    def identity(self) -> dict[str, Any]:
        """The configuration that determines the result (keys of state files and results files)."""
        return make_identity(
            model_name=self.model_name,
            sha256=self.checkpoint_sha256,
            dataset=self.dataset,
            threat_model=self.threat_model,
            version=self.version,
            eps=self.eps,
            n_examples=self.n_examples,
            seed=self.seed,
            batch_size=self.batch_size,
            chunk_size=self.chunk_size,
            stochastic=self.stochastic,
            attacks=[a.attack for a in self.attacks],
            overrides=self.attack_overrides,
            data_sha256=self.data.get("sha256"),
            model_config=self.model_config,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (without the log, the notes and the examples)."""
        d = dataclasses.asdict(dataclasses.replace(self, log=[], notes=[], x_adv=None))
        for key in ("log", "notes", "x_adv"):
            d.pop(key)
        d["format_version"] = RESULT_FORMAT
        return d

    def examples_metadata(self) -> dict[str, str]:
        """What :func:`eee_zoo.evaluation.examples.save_adversarial_examples` records beside the examples."""
        return {
            "model_name": self.model_name,
            "model_sha256": self.checkpoint_sha256,
            "dataset": self.dataset,
            "suite": self.suite,
            "version": self.version,
            "seed": str(self.seed),
            "mode": "stochastic" if self.stochastic else "deterministic",
            "chunk_size": str(self.chunk_size),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvaluationResult:
        d = dict(d)
        d.pop("format_version", None)
        d["attacks"] = [AttackStep(**{**a, "interval": tuple(a["interval"])}) for a in d["attacks"]]
        d["warnings"] = [CheckWarning(**w) for w in d["warnings"]]
        for key in ("clean_interval", "robust_interval"):
            d[key] = tuple(d[key])
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown result fields {sorted(unknown)}")
        return cls(**d)

    def summary(self) -> str:
        """Human-readable lines: clean, each attack, robust, checks; each figure says what it counts."""
        judged = "one stochastic draw per image" if self.stochastic else "deterministic mode"
        lines = [
            f"{self.model_name} ({self.checkpoint_sha256[:12]}) {self.dataset} {self.threat_model} eps={self.eps:.6g} "
            f"AutoAttack {self.version} seed={self.seed} n={self.n_examples}"
            + (" [reduced attack settings: not a valid evaluation]" if self.is_reduced else ""),
            f"  clean accuracy   {percent_text(self.clean_accuracy, 7)}  ({self.clean_correct}/{self.n_examples}, "
            f"{self.confidence:.0%} CI {interval_percent_text(self.clean_interval, '-')}; {judged})",
        ]
        for step in self.attacks:
            speed = f", {step.images_per_second:.2f} img/s" if step.images_per_second else ""
            lines.append(
                f"  after {step.attack:<10} {percent_text(step.accuracy, 7)}  ({step.robust}/{self.n_examples}, "
                f"CI {interval_percent_text(step.interval, '-')}; {step.attacked} attacked in "
                f"{step.seconds:.1f} s{speed})" + ("" if step.ran else " [skipped: nothing left]")
            )
        lines.append(
            f"  robust accuracy  {percent_text(self.robust_accuracy, 7)}  ({self.robust_correct}/{self.n_examples}, "
            f"{self.confidence:.0%} CI {interval_percent_text(self.robust_interval, '-')}; {judged}, right after every "
            "attack)"
        )
        for w in self.warnings:
            lines.append(f"  AutoAttack check [{w.check}] x{w.count}: {w.message}")
        if len(self.attacked_on) > 1:  # one figure, several machines: their floats decide which images break
            lines.append("  attacked on " + "; ".join(self.attacked_on))
        if self.compute_s is not None and self.compute_s > self.wall_time_s + 1:  # reused or resumed states
            lines.append(
                f"  attacks took {self.compute_s:.0f} s in all ({self.sessions} session(s), chunks summed); this call "
                f"{self.wall_time_s:.0f} s"
            )
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


def summarize(
    records: list[RunRecord],
    *,
    identity: dict[str, Any],
    sha_source: str,
    attack_config: dict[str, Any],
    data: dict[str, Any],
    interval: str,
    device: torch.device,
    world_size: int,
    wall_time: float,
    chunks: list[dict[str, Any]] | None,
) -> EvaluationResult:
    """The result of the runs in ``records`` (one run, or the chunks of a sharded one in chunk order)."""
    ci = INTERVALS[interval]
    attacks = identity["attacks"]
    n = identity["n_examples"]
    clean = 0
    robust_after = [0] * len(attacks)
    attacked = [0] * len(attacks)
    seconds = [0.0] * len(attacks)
    ran = [False] * len(attacks)
    outcomes: list[str] = []
    warnings_out: list[dict[str, Any]] = []
    log: list[str] = []
    notes: list[str] = []
    for c, rec in enumerate(records):
        flags_before = [rec.boundaries.get(a) for a in attacks]
        first = flags_before[0]
        if first is None:
            raise RuntimeError("a run record has no boundary for its first attack")
        clean_flags = first["flags"]
        clean += clean_flags.count("1")
        after: list[str] = []
        for j in range(len(attacks)):
            nxt = flags_before[j + 1] if j + 1 < len(attacks) else None
            after_j = nxt["flags"] if nxt is not None else rec.final_flags
            after.append(after_j)
            robust_after[j] += after_j.count("1")
            if flags_before[j] is not None:
                count = flags_before[j]["flags"].count("1")
                attacked[j] += count
                ran[j] = ran[j] or count > 0
                end = nxt["elapsed_s"] if nxt is not None else rec.elapsed_s
                seconds[j] += max(0.0, end - flags_before[j]["elapsed_s"])
        for i in range(rec.n):
            if clean_flags[i] != "1":
                outcomes.append("-")
                continue
            broken = next((str(j) for j in range(len(attacks)) if after[j][i] != "1"), "R")
            outcomes.append(broken)
        for w in rec.warnings:
            merge_warning(warnings_out, w, c if chunks is not None else None, w["count"])
        prefix = f"[chunk {c}] " if chunks is not None else ""
        log.extend(prefix + line for line in rec.log)
        notes.extend(prefix + note for note in rec.notes)
    if len(outcomes) != n:
        raise RuntimeError(f"merged {len(outcomes)} outcomes for {n} examples")
    robust = robust_after[-1]
    steps = [
        AttackStep(
            attack=a,
            robust=robust_after[j],
            accuracy=robust_after[j] / n,
            interval=ci(robust_after[j], n),
            attacked=attacked[j],
            seconds=round(seconds[j], 4),
            images_per_second=round(attacked[j] / seconds[j], 4) if seconds[j] > 0 and attacked[j] else None,
            ran=ran[j],
        )
        for j, a in enumerate(attacks)
    ]
    # the devices that attacked, which a file assembled from reused states does not share (states before
    # 2026-12-02 did not record them: this call's device)
    sessions = [a for r in records for a in r.arithmetic]
    device_name = " + ".join(dict.fromkeys(device_text(a) for a in sessions or [device_record(device)]))
    result = EvaluationResult(
        model_name=identity["model_name"],
        checkpoint_sha256=identity["checkpoint_sha256"],
        sha256_source=sha_source,
        dataset=identity["dataset"],
        threat_model=identity["threat_model"],
        version=identity["version"],
        eps=identity["eps"],
        n_examples=n,
        seed=identity["seed"],
        batch_size=identity["batch_size"],
        chunk_size=identity["chunk_size"],
        stochastic=identity["stochastic"],
        clean_correct=clean,
        clean_accuracy=clean / n,
        clean_interval=ci(clean, n),
        robust_correct=robust,
        robust_accuracy=robust / n,
        robust_interval=ci(robust, n),
        attacks=steps,
        attack_config={**attack_config, "chunks": chunks} if chunks is not None else attack_config,
        attack_overrides=dict(identity["attack_overrides"]),
        warnings=[CheckWarning(**w) for w in warnings_out],
        data={**data, "n_examples": n},
        outcomes="".join(outcomes),
        model_config=identity.get("model_config"),
        confidence=CONFIDENCE,
        interval_method=interval,
        versions=versions(),
        device=device_name,
        attacked_on=list(dict.fromkeys(session_text(a) for a in sessions)),
        world_size=world_size,
        wall_time_s=round(wall_time, 4),
        compute_s=round(sum(r.spent_s for r in records), 1),
        sessions=max(r.sessions for r in records),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        log=log,
        notes=notes,
        x_adv=torch.cat([r.x_adv for r in records]) if all(r.x_adv is not None for r in records) else None,
    )
    return result


def merge_warning(out: list[dict[str, Any]], w: dict[str, Any], chunk: int | None, count: int) -> None:
    """Add ``count`` firings of the check warning ``w`` (from chunk ``chunk``, if sharded) to ``out``."""
    for existing in out:
        if existing["check"] == w["check"] and existing["message"] == w["message"]:
            existing["count"] += count
            if chunk is not None and chunk not in existing["chunks"]:
                existing["chunks"].append(chunk)
            return
    chunks = None if chunk is None else [chunk]
    out.append({"check": w["check"], "message": w["message"], "count": count, "chunks": chunks})


def versions() -> dict[str, str]:
    """The versions that shaped a result: Python, torch, pyautoattack, numpy, eee_zoo, platform (and CUDA), and the
    CPU arithmetic (processor, instruction set, threads: :func:`eee_zoo._cpu.cpu_arithmetic`), on which the last
    bits of every float, and so a stochastic attack's outcome image by image, depend."""
    import pyautoattack

    from .. import __version__

    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyautoattack": getattr(pyautoattack, "__version__", "unknown"),
        "numpy": np.__version__,
        "eee_zoo": __version__,
        "platform": f"{sys.platform}-{platform.machine()}",
    }
    if torch.version.cuda:
        out["cuda"] = str(torch.version.cuda)
    out.update(cpu_arithmetic())
    return out
