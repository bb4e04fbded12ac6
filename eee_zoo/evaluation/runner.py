"""One resumable AutoAttack run on ``x, y``: the cascade (:mod:`.cascade`) with its state (:mod:`.state`).

A fresh run is ``model.manual_seed(seed)`` + AutoAttack's cascade with ``AutoAttack(..., seed=seed)``. At the
start of every attack the state records the robust flags, the examples found so far, AutoAttack's accuracies
and the model's generator states. A run that is killed and started again with the same arguments continues
from the start of the interrupted attack, with those flags, examples and generator states, so it ends with
exactly the result of an uninterrupted run (work inside the interrupted attack is redone). A finished state is
reused without attacking again. Either reuse is announced (a warning, and a note in the result).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .._cpu import session_record, session_text
from .._progress import ProgressOutput
from .autoattack import build_autoattack
from .autoattack_checks import CheckRecorder, add_warning, captured_python_warnings, classify
from .cascade import CascadePosition, run_cascade
from .progress import AttackMeter
from .seeds import RUN_LOCK, restore_generators, rng_devices, snapshot_generators
from .state import RunRecord, RunState, flags_str, flags_tensor

__all__ = ["RunSpec", "run_resumable"]

logger = logging.getLogger("eee_zoo.evaluation")


@dataclasses.dataclass
class RunSpec:
    """What every run of one evaluation shares (the seed and the images differ between chunks)."""

    model: nn.Module
    version: str
    attacks: list[str]
    eps: float
    norm: str
    batch_size: int
    device: torch.device
    overrides: dict[str, Any]
    progress: ProgressOutput
    fresh: bool = False

    def build(self, seed: int) -> Any:
        """The ``AutoAttack`` object of this configuration, seeded with ``seed``."""
        return build_autoattack(
            self.model,
            version=self.version,
            attacks=self.attacks,
            eps=self.eps,
            norm=self.norm,
            seed=seed,
            device=self.device,
            overrides=self.overrides,
        )


def run_resumable(
    spec: RunSpec, x: torch.Tensor, y: torch.Tensor, *, seed: int, state_file: Path, identity: dict[str, Any]
) -> RunRecord:
    """One AutoAttack run on ``x, y`` with ``seed``, resumable through the state named ``state_file``."""
    state = RunState.open(state_file, identity, spec.attacks, fresh=spec.fresh)
    if state.data["finished"]:
        note = (
            f"reused the finished AutoAttack state {state.path} ({state.data['sessions']} session(s), "
            f"{state.data['spent_s']:.1f} s of attacks, {_attacked_on(state)}): nothing was attacked again, and the "
            "times shown are those of that run; pass fresh=True (--fresh) to attack again"
        )
        logger.warning("%s", note)
        record = _record(state, x, seed)
        record.notes.append(note)
        return record

    boundaries = state.data["boundaries"]
    resume_from = boundaries[-1] if boundaries else None
    notes = []
    if resume_from is not None:
        notes.append(
            f"resumed the partial AutoAttack state {state.path} at the start of {resume_from['attack']} "
            f"({resume_from['index']} of {len(spec.attacks)} attacks done in {state.data['sessions']} earlier "
            f"session(s), {_attacked_on(state)}); pass fresh=True (--fresh) to start over"
        )
    elif state.data["sessions"]:
        notes.append(
            f"restarted the unfinished AutoAttack state {state.path}, which had not reached its first attack; pass "
            "fresh=True (--fresh) to discard it"
        )
    for note in notes:
        logger.warning("%s", note)
    observer = _Observer(spec, state, x, resume_from)
    state.data["sessions"] += 1
    # where each session attacked: its floats, and so which images break, depend on it (benchmarks/reproducibility)
    state.data.setdefault("arithmetic", []).append(session_record(spec.device, spec.model))
    state.save()

    if hasattr(spec.model, "manual_seed"):
        spec.model.manual_seed(seed)
    with RUN_LOCK, torch.random.fork_rng(devices=rng_devices(spec.device)), captured_python_warnings(observer.warn):
        adversary = spec.build(seed)
        recorder = CheckRecorder(observer.check)
        recorder.attach(adversary)  # AutoAttack's checks (and APGD's) report to the run, not to a log
        start = None
        if resume_from is not None:
            flags = flags_tensor(resume_from["flags"])
            broken = flags_tensor(boundaries[0]["flags"]) & ~flags
            x_adv = state.load_examples(x, flags_str(broken))
            # a deterministic run's generators draw nothing: one begun on a GPU resumes on the CPU and vice versa
            draws = bool(identity.get("stochastic", True))
            restore_generators(spec.model, spec.device, resume_from["generators"], draws=draws)
            start = CascadePosition(resume_from["index"], flags, x_adv, dict(resume_from["accuracies"]))
        with observer.meter.installed(adversary, spec.model):
            final = run_cascade(
                adversary, x, y, batch_size=spec.batch_size, observer=observer, checks_logger=recorder, start=start
            )
    state.data["final_flags"] = flags_str(final.flags)
    state.data["accuracies"] = final.accuracies
    state.data["elapsed_s"] = observer.elapsed()
    state.data["spent_s"] = observer.elapsed(total=True)
    state.data["finished"] = True
    state.save(x_adv=final.x_adv, broken=_broken(state))
    record = _record(state, x, seed, x_adv=final.x_adv)
    record.notes.extend(notes)
    return record


def _attacked_on(state: RunState) -> str:
    """The arithmetic of a state's sessions, as a note says it (states before 2026-12-02 did not record it)."""
    seen = list(dict.fromkeys(session_text(a) for a in state.data.get("arithmetic", [])))
    return "attacked on " + "; ".join(seen) if seen else "attacked on an unrecorded machine"


def _broken(state: RunState) -> str:
    """The images an attack broke: robust at the first attack, not at the end."""
    clean = flags_tensor(state.data["boundaries"][0]["flags"])
    return flags_str(clean & ~flags_tensor(state.data["final_flags"]))


def _record(state: RunState, x: torch.Tensor, seed: int, *, x_adv: torch.Tensor | None = None) -> RunRecord:
    d = state.data
    return RunRecord(
        n=len(x),
        seed=seed,
        attacks=list(d["attacks"]),
        boundaries={b["attack"]: {"flags": b["flags"], "elapsed_s": b["elapsed_s"]} for b in d["boundaries"]},
        final_flags=d["final_flags"],
        elapsed_s=d["elapsed_s"],
        spent_s=d["spent_s"],
        sessions=d["sessions"],
        warnings=[dict(w) for w in d["warnings"]],
        log=list(d["log"]),
        arithmetic=[dict(a) for a in d.get("arithmetic", [])],
        x_adv=x_adv if x_adv is not None else state.load_examples(x, _broken(state)),
    )


class _Observer:
    """Hears the cascade: keeps the state at every attack boundary, the log and the checks; drives progress."""

    def __init__(self, spec: RunSpec, state: RunState, x: torch.Tensor, resume_from: dict[str, Any] | None) -> None:
        self.spec, self.state, self.n = spec, state, len(x)
        self.resume_index = resume_from["index"] if resume_from is not None else None
        self.path_elapsed = resume_from["elapsed_s"] if resume_from is not None else 0.0
        self.spent_before = state.data["spent_s"]
        self.session_start = time.perf_counter()
        self.meter = AttackMeter(spec.progress, n=len(x), batch_size=spec.batch_size)

    def elapsed(self, total: bool = False) -> float:
        """Seconds along the reproducible path (``total``: over every session)."""
        return (self.spent_before if total else self.path_elapsed) + time.perf_counter() - self.session_start

    def log(self, level: int, message: str) -> None:
        if self.resume_index is not None:
            return  # the lines before the resumed attack were kept by the session that wrote them
        self.state.data["log"].append(f"{logging.getLevelName(level).lower()}: {message}")

    def check(self, level: int, message: str) -> None:
        """A message of AutoAttack's checks: a warning is kept with the result (and reported)."""
        self.log(level, message)
        if level >= logging.WARNING:
            check = classify(message)
            add_warning(self.state.data["warnings"], check, message)
            logger.warning("AutoAttack check [%s]: %s", check, message)

    def warn(self, message: str) -> None:
        add_warning(self.state.data["warnings"], classify(message), message)

    def attack_started(self, index: int, attack: str, position: CascadePosition) -> None:
        self.meter.close()
        robust = int(position.flags.sum())
        if self.resume_index is not None:
            self.resume_index = None
            self.log(logging.INFO, f"eee_zoo: resumed at {attack} with {robust} of {self.n} robust")
            logger.info("resumed at %s (%d of %d robust)", attack, robust, self.n)
        else:
            boundaries = self.state.data["boundaries"]
            flags = flags_str(position.flags)
            clean = flags_tensor(boundaries[0]["flags"]) if boundaries else position.flags
            boundaries.append(
                {
                    "attack": attack,
                    "index": index,
                    "flags": flags,
                    "generators": snapshot_generators(self.spec.model, self.spec.device),
                    "accuracies": dict(position.accuracies),
                    "elapsed_s": self.elapsed(),
                }
            )
            self.state.data["spent_s"] = self.elapsed(total=True)
            self.state.save(x_adv=position.x_adv, broken=flags_str(clean.cpu() & ~position.flags.cpu()))
        self.meter.start_attack(attack, robust=robust)

    def batch_done(self, attack: str, batch: int, batches: int, broken: int) -> None:
        self.meter.end_batch(batch, broken=broken)

    def attack_done(self, attack: str) -> None:
        self.meter.close()
