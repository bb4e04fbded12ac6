"""Resumable state of an AutoAttack run: keyed by the full configuration, written atomically, never mixed.

A run (the whole evaluation, or one chunk of a sharded one) is named by a state file ``<stem>.json`` (given by
the caller, or keyed by the configuration under a state directory) and keeps two files beside that name:

* ``<stem>.eee.json``: the configuration (:func:`make_identity`), a record at the start of every attack (robust
  flags, the model's generator states, AutoAttack's accuracies so far, time), the checks that fired, the log,
  and at the end the final flags;
* ``<stem>.adv.safetensors``: the adversarial examples found so far (``indices`` int64 and ``x_adv`` float32 of
  the images an attack broke, exactly as the attack returned them).

Both are replaced atomically, the examples first: a record never names examples that are not on disk, and
examples beyond the last record (written just before a kill) are ignored on reading. A state of another
configuration is refused; so is a ``<stem>.json`` that eee_zoo did not write (AutoAttack's own state file: its
configuration is unknown). A state of an earlier eee_zoo format (AutoAttack's state file and ``<stem>.eee.json``
format 1, which kept no examples) is discarded with a warning.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import atomic_path, atomic_write_json

__all__ = [
    "STATE_FORMAT", "RunRecord", "RunState", "flags_str", "flags_tensor", "make_identity", "state_key",
    "state_location",
]  # fmt: skip

STATE_FORMAT = 2  # 1: AutoAttack's own state file + <stem>.eee.json, no examples (before AutoAttack was driven)
logger = logging.getLogger(__name__)


def make_identity(
    *,
    model_name: str,
    sha256: str,
    dataset: str,
    threat_model: str,
    version: str,
    eps: float,
    n_examples: int,
    seed: int,
    batch_size: int,
    chunk_size: int | None,
    stochastic: bool,
    attacks: list[str],
    overrides: dict[str, Any],
    data_sha256: str | None,
    model_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The configuration that determines a result (keys state files and results files).

    ``model_config`` (``SelfEnsemble.config``) is part of it because the weights' hash is not enough: a model
    reconfigured at inference time (another aggregator or k, the stack's noise, which predictors vote; see
    :func:`eee_zoo.models.variants.derive`) has the same weights and must not resume another configuration's state.
    """
    return {
        "model_name": model_name,
        "checkpoint_sha256": sha256,
        "dataset": dataset,
        "threat_model": threat_model,
        "version": version,
        "eps": float(eps),
        "n_examples": int(n_examples),
        "seed": int(seed),
        "batch_size": int(batch_size),
        "chunk_size": None if chunk_size is None else int(chunk_size),
        "stochastic": bool(stochastic),
        "attacks": list(attacks),
        "attack_overrides": dict(overrides),
        "data_sha256": data_sha256,
        "model_config": model_config,
    }


def state_key(identity: dict[str, Any]) -> str:
    """A 16-hex key for a configuration (names state files)."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@contextlib.contextmanager
def state_location(state_path: Any, identity: dict[str, Any], *, chunked: bool) -> Iterator[Path]:
    """The state file (unsharded) or the chunk directory (sharded) for this configuration.

    ``state_path``: a directory (file names keyed by the configuration), a ``.json`` file, or None (a temporary
    directory, removed afterwards: no resume).
    """
    stem = _slug(f"{identity['model_name']}_{identity['dataset']}_{identity['threat_model']}_{identity['version']}")
    stem = f"{stem}_{state_key(identity)}"
    if state_path is None:
        with tempfile.TemporaryDirectory(prefix="eee_zoo_state_") as tmp:
            yield Path(tmp) / (f"{stem}.chunks" if chunked else f"{stem}.json")
        return
    path = Path(state_path).expanduser()
    if path.suffix == ".json":
        if path.is_dir():
            raise ValueError(f"state_path {path} is a directory named like a file")
        yield path.with_suffix(".chunks") if chunked else path
        return
    if path.exists() and not path.is_dir():
        raise ValueError(f"state_path {path} exists and is not a directory (pass a directory or a .json file)")
    path.mkdir(parents=True, exist_ok=True)
    yield path / (f"{stem}.chunks" if chunked else f"{stem}.json")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


def flags_str(flags: torch.Tensor) -> str:
    """Robust flags as a string of ``0`` and ``1``."""
    return (flags.detach().to("cpu", torch.uint8).numpy() + ord("0")).tobytes().decode("ascii")


def flags_tensor(flags: str) -> torch.Tensor:
    """:func:`flags_str` back to a bool tensor on the CPU."""
    return torch.from_numpy(np.frombuffer(flags.encode("ascii"), dtype=np.uint8) == ord("1")).clone()


@dataclasses.dataclass
class RunRecord:
    """What one AutoAttack run (the whole evaluation, or one chunk) produced."""

    n: int
    seed: int
    attacks: list[str]
    boundaries: dict[str, dict[str, Any]]  # attack -> {"flags": str, "elapsed_s": float}
    final_flags: str
    elapsed_s: float  # along the reproducible path (boundary to boundary)
    spent_s: float  # over all sessions
    sessions: int
    warnings: list[dict[str, Any]]
    log: list[str]
    # where each session attacked ({"device", "gpu"?, "cpu", "cpu_capability", "threads"}; states before 2026-12-02: [])
    arithmetic: list[dict[str, str]] = dataclasses.field(default_factory=list)
    x_adv: torch.Tensor | None = None  # [n, C, H, W]: the breaking example, the clean image where none broke it
    notes: list[str] = dataclasses.field(default_factory=list)  # reused / resumed state (not saved)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


class RunState:
    """The resumable state of one run (see the module docstring); ``data`` is the ``.eee.json`` file's content."""

    def __init__(self, state_file: Path, identity: dict[str, Any], attacks: list[str]) -> None:
        self.state_file = state_file
        self.path = state_file.with_name(state_file.stem + ".eee.json")
        self.examples_path = state_file.with_name(state_file.stem + ".adv.safetensors")
        self.data: dict[str, Any] = {
            "format_version": STATE_FORMAT,
            "identity": identity,
            "attacks": list(attacks),
            "boundaries": [],
            "warnings": [],
            "log": [],
            "spent_s": 0.0,
            "sessions": 0,
            "finished": False,
            "final_flags": None,
        }

    @classmethod
    def open(cls, state_file: Path, identity: dict[str, Any], attacks: list[str], *, fresh: bool = False) -> RunState:
        """The state named ``state_file`` for this configuration: new, or as saved (``fresh``: discarded)."""
        state = cls(state_file, identity, attacks)
        if state_file.exists() and not state.path.exists():
            raise ValueError(
                f"{state_file} exists but was not written by eee_zoo (no {state.path.name} beside it): refusing to "
                "resume from a state whose configuration is unknown. Delete it or use another state path."
            )
        data = state._read() if state.path.exists() else None
        if data is not None and data.get("format_version") == 1:
            state_file.unlink(missing_ok=True)
            state.remove()
            logger.warning("discarded %s, a state of an earlier eee_zoo version (it kept no examples)", state.path)
            data = None
        if fresh and data is not None:
            state.remove()
            logger.warning("fresh start: removed the saved AutoAttack state %s", state.path)
            data = None
        if data is None:
            state.examples_path.unlink(missing_ok=True)
            return state
        if data.get("format_version") != STATE_FORMAT or data.get("identity") != identity:
            theirs = data.get("identity") or {}
            diff = sorted(k for k in set(theirs) | set(identity) if theirs.get(k) != identity.get(k))
            if data.get("format_version") != STATE_FORMAT:
                diff.append("format_version")
            raise ValueError(
                f"{state.path}: this state belongs to another configuration (differs in {diff}); refusing to mix "
                "runs. Use another state path or delete it."
            )
        state.data = data
        return state

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{self.path}: unreadable evaluation checkpoint ({e}); delete it to start over") from e
        if not isinstance(data, dict):
            raise ValueError(f"{self.path}: not an evaluation checkpoint; delete it to start over")
        return data

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.examples_path.unlink(missing_ok=True)

    def save(self, x_adv: torch.Tensor | None = None, broken: str | None = None) -> None:
        """Write the record; with ``x_adv``, first the examples of the images ``broken`` marks with ``1``."""
        if x_adv is not None and broken is not None:
            from safetensors.torch import save_file

            indices = torch.nonzero(flags_tensor(broken)).flatten()
            tensors = {"indices": indices.to(torch.int64), "x_adv": x_adv[indices].detach().cpu().contiguous()}
            with atomic_path(self.examples_path) as tmp:
                save_file(tensors, str(tmp), metadata={"n": str(len(x_adv))})
        atomic_write_json(self.path, self.data)

    def load_examples(self, x: torch.Tensor, broken: str) -> torch.Tensor:
        """``x_adv`` as saved: the saved example for every image ``broken`` marks, the clean image elsewhere."""
        from safetensors.torch import load_file

        x_adv = x.clone()
        needed = torch.nonzero(flags_tensor(broken)).flatten()
        if len(needed) == 0:
            return x_adv
        if not self.examples_path.exists():
            raise ValueError(f"{self.examples_path} is missing: the state {self.path} cannot be used; delete it")
        saved = load_file(str(self.examples_path))
        row = {int(i): k for k, i in enumerate(saved["indices"].tolist())}
        if any(int(i) not in row for i in needed.tolist()) or saved["x_adv"].shape[1:] != x.shape[1:]:
            raise ValueError(f"{self.examples_path} does not hold the examples {self.path} names; delete both")
        rows = torch.tensor([row[int(i)] for i in needed.tolist()], dtype=torch.int64)
        x_adv[needed] = saved["x_adv"][rows].to(x_adv.dtype)
        return x_adv
