"""Randomness around an evaluation: the model's own generators, their snapshots, and the global RNG's safety.

Stochastic eee_zoo models draw only from their own generators (every submodule with ``generator_for(device)``);
an evaluation reseeds them, snapshots them where a run may resume (:func:`snapshot_generators` /
:func:`restore_generators`) and gives their configured seed back afterwards (:func:`preserve_model_seeds`).
AutoAttack reseeds PyTorch's global generator and reads module globals: :data:`RUN_LOCK` lets one run at a time
use them in a process, inside ``torch.random.fork_rng(devices=rng_devices(device))``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn as nn

__all__ = [
    "RUN_LOCK", "derive_seed", "model_generators", "preserve_model_seeds", "restore_generators", "rng_devices",
    "snapshot_generators",
]  # fmt: skip

RUN_LOCK = threading.RLock()  # AutoAttack uses global RNG state and module globals: one run per process at a time


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from ``parts``: distinct uses (selection, fresh, each attack, each batch or image) never share
    draws, and a part's seed does not depend on which other parts a run has."""
    digest = hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def model_generators(model: nn.Module, device: torch.device) -> list[tuple[str, torch.Generator]]:
    """The model's own generators on ``device``: every submodule exposing ``generator_for(device)``."""
    out = []
    for name, module in model.named_modules():
        getter = getattr(module, "generator_for", None)
        if callable(getter):
            out.append((name, getter(device)))
    return out


def snapshot_generators(model: nn.Module, device: torch.device) -> list[dict[str, str]]:
    """The states of :func:`model_generators` as JSON-able records (base64 of each generator's state)."""
    return [
        {"module": name, "state": base64.b64encode(gen.get_state().numpy().tobytes()).decode("ascii")}
        for name, gen in model_generators(model, device)
    ]


def restore_generators(
    model: nn.Module, device: torch.device, saved: list[dict[str, str]], *, draws: bool = True
) -> None:
    """Set the model's generators to a :func:`snapshot_generators` record (refused for another set of modules).

    A record written on another kind of device (a CUDA generator's state is its seed and offset, a CPU one's the
    whole Mersenne Twister) cannot continue there: with ``draws=False`` (a run that never draws, the deterministic
    mode) it is skipped, as nothing depends on it; otherwise the resume is refused."""
    generators = dict(model_generators(model, device))
    if sorted(generators) != sorted(s["module"] for s in saved):
        raise RuntimeError(
            f"cannot resume: the model's generators {sorted(generators)} differ from the checkpoint's "
            f"{sorted(s['module'] for s in saved)}"
        )
    for s in saved:
        state = torch.frombuffer(bytearray(base64.b64decode(s["state"])), dtype=torch.uint8)
        generator = generators[s["module"]]
        if state.numel() != generator.get_state().numel():
            if not draws:
                continue
            raise RuntimeError(
                f"cannot resume: the state of {s['module'] or 'the model'}'s generator was written on another kind "
                f"of device than {device.type}, and a stochastic run's draws continue only there; resume it on that "
                "device, or start afresh (--fresh)"
            )
        generator.set_state(state)


@contextlib.contextmanager
def preserve_model_seeds(model: nn.Module) -> Iterator[None]:
    """Give the model's generator owners their configured seed back after the run (it reseeds them)."""
    owners = [
        m
        for m in model.modules()
        if callable(getattr(m, "generator_for", None))
        and callable(getattr(m, "manual_seed", None))
        and isinstance(getattr(m, "seed", None), int)
    ]
    seeds = [m.seed for m in owners]
    try:
        yield
    finally:
        for m, seed in zip(owners, seeds):
            m.manual_seed(seed)


def rng_devices(device: torch.device) -> list[int]:
    """The CUDA devices whose RNG ``torch.random.fork_rng`` must save and restore for a run on ``device``."""
    return [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
