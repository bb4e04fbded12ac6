"""The run folder's records: what was run, where, with which code, how each session ended, and the results.

``recipe.yaml`` (the file as given) and ``recipe.resolved.json`` when a run starts; ``run_info.json``
(recipe, package versions, git commit, device, one entry per session with its arguments and status, wall
time); ``train.log`` (the ``eee_zoo`` loggers, rank 0); ``results.json`` at the end. Only rank 0 writes.
A start that fails before training removes what it wrote (:func:`discard_failed_start`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from eee_zoo._cpu import cpu_arithmetic
from eee_zoo._io import atomic_write_json, atomic_write_text, sha256_file

from .distributed import DistInfo
from .recipe import Recipe

__all__ = [
    "REPO_ROOT", "RunRecords", "device_info", "discard_failed_start", "duration", "git_state", "logging_to", "now",
    "package_versions", "rel_path",
]  # fmt: skip

REPO_ROOT = Path(__file__).resolve().parents[1]


def rel_path(path: Path) -> str:
    """``path`` relative to the repository when inside it (portable records), else absolute."""
    path = Path(path).resolve()
    try:
        return path.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def git_state() -> dict[str, Any]:
    """The checkout's commit and whether it has uncommitted changes (``None`` outside a git checkout)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("eee-zoo", "torch", "torchvision", "numpy", "safetensors", "huggingface-hub", "pyyaml", "tqdm"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    versions["torch (runtime)"] = torch.__version__
    return versions


def device_info(device: torch.device, world: DistInfo) -> dict[str, Any]:
    info: dict[str, Any] = {"type": device.type, "world_size": world.world_size, "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    else:
        arithmetic = cpu_arithmetic()
        info["name"], info["cpu_capability"] = arithmetic["cpu"], arithmetic["cpu_capability"]
        info["cpu_count"] = os.cpu_count()
    info["host"] = platform.node()
    info["platform"] = platform.platform()
    if world.enabled:
        info["backend"] = dist.get_backend()
    return info


class _TqdmHandler(logging.Handler):
    """Log lines that do not break a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # never let logging crash training
            self.handleError(record)


@contextlib.contextmanager
def logging_to(run_dir: Path | None, world: DistInfo) -> Iterator[None]:
    """Send the ``eee_zoo`` loggers to stderr and (rank 0) ``<run_dir>/train.log`` for the duration of a run."""
    pkg = logging.getLogger("eee_zoo")
    old_level = pkg.level
    fmt = logging.Formatter(
        f"%(asctime)s %(levelname)s{f' [rank {world.rank}]' if world.enabled else ''} %(message)s", "%H:%M:%S"
    )
    handlers: list[logging.Handler] = []
    stream = _TqdmHandler()
    stream.setLevel(logging.INFO if world.is_main else logging.WARNING)
    handlers.append(stream)
    if run_dir is not None and world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
        file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handlers.append(file)
    stream.setFormatter(fmt)
    for h in handlers:
        pkg.addHandler(h)
    pkg.setLevel(logging.INFO)
    try:
        yield
    finally:
        for h in handlers:
            pkg.removeHandler(h)
            h.close()
        pkg.setLevel(old_level)


def discard_failed_start(run_dir: Path, before: set[str] | None) -> None:
    """Remove what a start that failed before training wrote (log, records): no half-made run folder is left.

    ``before``: the folder's entries when the command started (``None``: it did not exist, so it goes entirely).
    """
    if before is None:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    written = set(os.listdir(run_dir)) - before if run_dir.is_dir() else set()
    for name in written:
        if (run_dir / name).is_file():
            (run_dir / name).unlink(missing_ok=True)


class RunRecords:
    """The records of one run in ``run_dir``; every method is a no-op on ranks other than 0."""

    def __init__(self, run_dir: Path, recipe: Recipe, recipe_path: Path, world: DistInfo, device: torch.device) -> None:
        self.run_dir = run_dir
        self.recipe = recipe
        self.recipe_path = recipe_path
        self.world = world
        self.device = device
        self.git = git_state() if world.is_main else {}  # at the start: before this run writes into the checkout
        self.run_info: dict[str, Any] | None = None

    def start_session(
        self, args: argparse.Namespace, resumed_from: dict[str, Any] | None, runtime: dict[str, bool]
    ) -> None:
        """A new run: the recipe as given and resolved; every session: ``run_info.json`` with this session added."""
        if not self.world.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        text = self.recipe_path.read_text(encoding="utf-8")
        if resumed_from is None:
            atomic_write_text(self.run_dir / "recipe.yaml", text)
            atomic_write_json(self.run_dir / "recipe.resolved.json", self.recipe.to_dict())
        info_path = self.run_dir / "run_info.json"
        info = json.loads(info_path.read_text()) if info_path.exists() and resumed_from is not None else {}
        info.update(
            {
                "recipe": rel_path(self.recipe_path),
                "recipe_sha256": sha256_file(self.recipe_path),
                "name": self.recipe.name,
                "seed": self.recipe.seed,
                "git": self.git,
                "versions": package_versions(),
                "device": device_info(self.device, self.world),
            }
        )
        info.setdefault("sessions", []).append(
            {
                "started": now(),
                "argv": [sys.executable, *sys.argv],
                "arguments": {
                    k: str(v) if isinstance(v, Path) else v
                    for k, v in vars(args).items()
                    if not k.startswith("_") and not callable(v)
                },
                "resumed_from": resumed_from,
                "device": device_info(self.device, self.world),
                "runtime": runtime,
            }
        )
        self.run_info = info
        atomic_write_json(info_path, info)

    def end_session(self, status: str, steps_done: int, wall_time_s: float) -> None:
        """How this session ended (done, stopped, interrupted, failed) and the run's wall time so far."""
        if not self.world.is_main or self.run_info is None:
            return
        self.run_info["sessions"][-1].update({"ended": now(), "status": status, "steps_done": steps_done})
        self.run_info["wall_time_s"] = round(wall_time_s, 1)
        atomic_write_json(self.run_dir / "run_info.json", self.run_info)

    def write_results(self, **fields: Any) -> dict[str, Any]:
        """``results.json``: what was trained (name, data, recipe, seed, processes) followed by ``fields``."""
        r = self.recipe
        results = {
            "name": r.name,
            "dataset": r.dataset,
            "threat_model": r.threat_model,
            "recipe": rel_path(self.recipe_path),
            "seed": r.seed,
            "world_size": self.world.world_size,
            "device": self.device.type,
            **fields,
            "finished": now(),
        }
        atomic_write_json(self.run_dir / "results.json", results)
        return results
