"""Train a multi-resolution self-ensemble from a recipe, end to end, resumably, on one CPU or many GPUs.

    python -m training.train --recipe training/recipes/<name>.yaml [--out DIR] [--resume] [--device ...]
    torchrun --nproc_per_node N -m training.train --recipe ...        # DistributedDataParallel
    eee-zoo train --recipe ...                                          # the same, from the CLI

Sections: setup (recipe, device, DDP, run dir, records) / data (uint8 on the device) / randomness /
stages (1: backbone on the stack; 2: heads on the frozen backbone) / checkpoints / evaluation + export.

Stages:
  1. backbone: the backbone's own classifier on the multi-resolution stack (cross-entropy), with crop/flip
     augmentation and the stack drawn per batch on the device;
  2. heads: the linear heads on ``model.taps`` trained on the frozen backbone (eval mode: its BatchNorm
     statistics stay as they are; only the heads' parameters are in the optimiser);
  3. finalize: the self-ensemble's clean accuracy on the test set (every predictor and the aggregate), in
     the model's inference mode from the recipe, then ``eee_zoo.hub.export`` into
     ``<run dir>/model_cards/<dataset>/<threat model>/<name>/`` (a Hub-ready folder with its card).

Randomness is step-indexed: every epoch's data order and every step's augmentation/stack/attack draws come
from ``torch.Generator`` objects seeded with a hash of (recipe seed, stage, epoch, step, rank). With the model,
optimiser and scheduler restored, a run resumed from any step boundary therefore takes exactly the steps of an
uninterrupted run (bit for bit on the CPU). The global RNG is never used (weight init runs inside
``torch.random.fork_rng`` with a derived seed).

Records in the run directory: ``recipe.yaml`` (the file as given) and ``recipe.resolved.json``,
``run_info.json`` (command, package versions, git commit, device, sessions, wall time), ``train.log``,
``checkpoint.pt`` (written atomically every ``runtime.checkpoint_every_s`` and at every epoch end),
``results.json`` (training history and clean accuracies; metrics never go into the card's result fields).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from eee_zoo._io import atomic_path, atomic_write_json, atomic_write_text, sha256_file
from eee_zoo._precision import strict_fp32
from eee_zoo._progress import Progress
from eee_zoo.commands.train import add_arguments
from eee_zoo.data import load_uint8
from eee_zoo.models import SelfEnsemble

from .adversarial import perturb
from .augment import crop_flip, gaussian_noise, to_float
from .recipe import OptimizerSpec, Recipe, RecipeError, ScheduleSpec, StageSpec, load_recipe

__all__ = ["main", "run", "derive_seed", "lr_factor", "evaluate_clean", "CHECKPOINT_NAME"]

logger = logging.getLogger("eee_zoo.train")

REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1
STAGES = ("backbone", "heads", "finalize", "done")


class StopRequested(Exception):
    """Raised after the checkpoint of ``--stop-after-steps`` is written."""


# ================================================================================================= setup
@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """``auto`` -> CUDA when available (``cuda:LOCAL_RANK`` under torchrun), else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine")
        if local_rank is not None:  # one GPU per process under torchrun
            device = torch.device("cuda", local_rank)
        elif device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    elif device.type != "cpu":
        raise ValueError(f"--device {name}: only cpu and cuda are supported")
    return device


def init_distributed(device_name: str) -> tuple[DistInfo, torch.device]:
    """Read torchrun's environment; start a process group (NCCL on GPUs, gloo on the CPU) when N > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    device = resolve_device(device_name, info.local_rank if world > 1 else None)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return info, device


def _rel(path: Path) -> str:
    """``path`` relative to the repository when inside it (portable records), else absolute."""
    path = Path(path).resolve()
    try:
        return path.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


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
        name = platform.processor()
        with contextlib.suppress(OSError):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
        info["name"] = name
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


# ================================================================================================= randomness
def derive_seed(seed: int, *keys: Any) -> int:
    """A 63-bit seed from the recipe seed and a path of keys (stage, purpose, epoch, step, rank)."""
    text = "/".join(str(k) for k in (seed, *keys))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)


def epoch_order(seed: int, stage: str, epoch: int, n: int) -> torch.Tensor:
    """The data order of one epoch (drawn on the CPU: the same order on every device and rank)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, stage, "order", epoch)))


def step_generator(seed: int, stage: str, epoch: int, step: int, rank: int, device: torch.device) -> torch.Generator:
    """The generator of one training step on one rank: augmentation, the stack's draws, attack starts."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, stage, "step", epoch, step, rank))


def build_model(recipe: Recipe) -> SelfEnsemble:
    """The recipe's architecture with weights initialised from a seed derived from the recipe seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(recipe.seed, "init"))
        return SelfEnsemble.from_config(recipe.model_config())


# ================================================================================================= optimisation
def lr_factor(step: int, *, total: int, schedule: ScheduleSpec) -> float:
    """The learning-rate multiplier of optimiser step ``step`` (0-based) out of ``total``."""
    warm = int(round(schedule.warmup * total))
    if step < warm:
        return (step + 1) / warm
    if schedule.name == "constant":
        return 1.0
    progress = min(1.0, (step - warm) / max(1, total - warm))
    final = schedule.final_lr
    if schedule.name == "linear":
        return 1.0 - (1.0 - final) * progress
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(spec: OptimizerSpec, named_params: list[tuple[str, nn.Parameter]]) -> torch.optim.Optimizer:
    """SGD/AdamW with weight decay on conv/linear weights only (not on norm scales or biases)."""
    decay = [p for _, p in named_params if p.ndim >= 2]
    no_decay = [p for _, p in named_params if p.ndim < 2]
    groups = [g for g in ({"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay}) if g["params"]]
    for g in groups:
        g.setdefault("weight_decay", 0.0)
    if spec.name == "sgd":
        return torch.optim.SGD(groups, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov)
    return torch.optim.AdamW(groups, lr=spec.lr, betas=(spec.betas[0], spec.betas[1]))


class _Heads(nn.Module):
    """The heads as one module (what DDP wraps in stage 2): tapped features -> ``[B, H, C]``."""

    def __init__(self, heads: nn.ModuleList) -> None:
        super().__init__()
        self.heads = heads

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([head(f) for head, f in zip(self.heads, features)], dim=1)


# ================================================================================================= evaluation
@torch.no_grad()
def evaluate_clean(
    model: SelfEnsemble,
    x_uint8: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    stochastic: bool,
    seed: int,
    predictors: bool = True,
) -> dict[str, Any]:
    """Clean accuracy of every predictor and of the aggregate, fp32, the stack drawn from ``seed``.

    ``x_uint8`` is ``[N, 3, H, W]`` uint8 on the model's device. The model's own generator is left untouched;
    a fresh generator seeded with ``seed`` plays its role (what a freshly loaded model with that seed draws).
    ``predictors=False`` scores the backbone's own head only (used while the heads are untrained).
    """
    modes = {m: m.training for m in model.modules()}  # per module: stage 2 trains the heads of an eval model
    was_stochastic = model.stochastic
    model.eval()
    model.set_stochastic(stochastic)
    device = x_uint8.device
    gen = torch.Generator(device=device).manual_seed(seed)
    names = model.predictor_names if predictors else ["backbone"]
    correct = torch.zeros(len(names), dtype=torch.long, device=device)
    correct_agg = torch.zeros((), dtype=torch.long, device=device)
    try:
        for i in range(0, len(y), batch_size):
            with strict_fp32():  # TF32 off on GPUs: the accuracy of the model as a CPU computes it
                x = to_float(x_uint8[i : i + batch_size])
                target = y[i : i + batch_size]
                if predictors:
                    logits = model.predictor_logits(x, generator=gen)
                    correct_agg += (model.aggregate(logits).argmax(1) == target).sum()
                else:
                    logits = model.backbone(model.stack(x, generator=gen)).unsqueeze(1)
                correct += (logits.argmax(2) == target.unsqueeze(1)).sum(0)
    finally:
        for module, training in modes.items():
            module.training = training
        model.set_stochastic(was_stochastic)
    n = len(y)
    result: dict[str, Any] = {
        "mode": "stochastic" if stochastic else "deterministic",
        "n_examples": n,
        "seed": seed,
        "per_predictor": {
            name: {"correct": int(c), "accuracy": 100.0 * int(c) / n} for name, c in zip(names, correct.tolist())
        },
    }
    if predictors:
        result["aggregated"] = {
            "aggregator": model.aggregator,
            "k": model.k,
            "correct": int(correct_agg),
            "accuracy": 100.0 * int(correct_agg) / n,
        }
    return result


def round_to_storage_dtype(model: nn.Module, dtype: torch.dtype) -> None:
    """Round every floating-point parameter and buffer to ``dtype`` and back, in place (the stored values)."""
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(dtype))


def format_accuracy(result: dict[str, Any]) -> str:
    parts = []
    if "aggregated" in result:
        parts.append(f"{result['aggregated']['aggregator']} {result['aggregated']['accuracy']:.2f}%")
    parts += [f"{name} {r['accuracy']:.2f}%" for name, r in result["per_predictor"].items()]
    return " | ".join(parts)


# ================================================================================================= trainer
class Trainer:
    """One training run (one process of it under DDP)."""

    def __init__(self, args: argparse.Namespace, recipe: Recipe, recipe_path: Path, world: DistInfo) -> None:
        self.args = args
        self.recipe = recipe
        self.recipe_path = recipe_path
        self.world = world
        self.device = torch.device("cpu")
        self.run_dir = Path(args.out) if args.out else Path("training") / "runs" / recipe.name
        self.ckpt_path = self.run_dir / CHECKPOINT_NAME
        self.history: list[dict[str, Any]] = []
        self.steps_done = 0
        self.elapsed_before = 0.0
        self.session_start = time.monotonic()
        self.last_save = time.monotonic()
        self.model: SelfEnsemble | None = None
        self.git = git_state() if world.is_main else {}
        self.amp = False
        self.channels_last = False
        self.started = False  # set once data and model are ready: a failed start before that leaves no run folder

    # ------------------------------------------------------------------------------------------ setup
    def check_before_training(self) -> None:
        """Run-level checks that need the world size (before any data is loaded or a step taken)."""
        r, w = self.recipe, self.world.world_size
        for stage in ("backbone_stage", "heads_stage"):
            bs = getattr(r, stage).batch_size
            if bs % w:
                raise RecipeError(
                    f"{self.recipe_path}: key '{stage}.batch_size': {bs} is not divisible by the {w} DDP processes"
                )
        if self.ckpt_path.exists() and not self.args.resume:
            raise FileExistsError(
                f"{self.run_dir} already holds a run ({CHECKPOINT_NAME}); pass --resume to continue it "
                "or choose another --out"
            )

    def set_runtime(self) -> None:
        """Speed settings from the recipe's ``runtime`` for this device (they change rounding, not the model)."""
        runtime = self.recipe.runtime
        self.amp = self.device.type == "cuda" and runtime.amp  # no fast bfloat16 on most CPUs
        # NHWC on every device: oneDNN's CPU convolutions are faster in it too (benchmarks/perf/train_throughput)
        self.channels_last = runtime.channels_last

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.session_start

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def load_data(self) -> None:
        r = self.recipe
        data_dir = self.args.data_dir or r.data.data_dir

        def to_device(split: str, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
            x, y = load_uint8(r.dataset, split, data_dir, n_examples=n)  # uint8 NHWC -> uint8 NCHW on the device
            images = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
            return images.to(self.device), torch.from_numpy(y).to(self.device)

        self.train_x, self.train_y = to_device("train", r.data.n_train)
        self.test_x, self.test_y = to_device("test", r.data.n_test)
        logger.info(
            "data: %d training and %d test images of %s held as uint8 on %s",
            len(self.train_y),
            len(self.test_y),
            r.dataset,
            self.device,
        )

    def write_records(self, resumed_from: dict[str, Any] | None) -> None:
        """recipe copy, resolved recipe, run_info.json (appending this session)."""
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
                "recipe": _rel(self.recipe_path),
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
                "started": _now(),
                "argv": [sys.executable, *sys.argv],
                "arguments": {
                    k: str(v) if isinstance(v, Path) else v
                    for k, v in vars(self.args).items()
                    if not k.startswith("_") and not callable(v)
                },
                "resumed_from": resumed_from,
                "device": device_info(self.device, self.world),
                "runtime": {"amp_bfloat16": self.amp, "channels_last": self.channels_last},
            }
        )
        self.run_info = info
        atomic_write_json(info_path, info)

    def finish_records(self, status: str) -> None:
        if not self.world.is_main or not hasattr(self, "run_info"):
            return
        self.run_info["sessions"][-1].update({"ended": _now(), "status": status, "steps_done": self.steps_done})
        self.run_info["wall_time_s"] = round(self.elapsed(), 1)
        atomic_write_json(self.run_dir / "run_info.json", self.run_info)

    # ------------------------------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, position: dict[str, Any], optimizer=None, scheduler=None, accum=None) -> None:
        if not self.world.is_main:
            return
        assert self.model is not None
        state = {
            "format": CHECKPOINT_FORMAT,
            "recipe": self.recipe.to_dict(),
            "world_size": self.world.world_size,
            "threads": torch.get_num_threads(),
            "device_type": self.device.type,
            "position": position,
            "steps_done": self.steps_done,
            "model": {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()},
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "accum": accum,
            "history": self.history,
            "elapsed_s": self.elapsed(),
            "rng": {
                "scheme": "step-indexed: sha256(seed/stage/kind/epoch/step/rank) seeds each epoch order and step",
                "data_order_seed": derive_seed(self.recipe.seed, position["stage"], "order", position["epoch"]),
                "next_step_seed": derive_seed(
                    self.recipe.seed, position["stage"], "step", position["epoch"], position["step"], self.world.rank
                ),
                "torch_cpu": torch.get_rng_state(),
                "model_stack": self.model.stack.generator_for(self.device).get_state().cpu(),
            },
            "saved": _now(),
        }
        with atomic_path(self.ckpt_path) as tmp:
            torch.save(state, tmp)
        self.last_save = time.monotonic()
        logger.debug("checkpoint %s at %s", self.ckpt_path, position)

    def load_checkpoint(self) -> dict[str, Any]:
        state = torch.load(self.ckpt_path, map_location="cpu", weights_only=True)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{self.ckpt_path}: checkpoint format {state.get('format')} is not {CHECKPOINT_FORMAT}")
        if state["recipe"] != self.recipe.to_dict():
            diff = _diff_keys(state["recipe"], self.recipe.to_dict())
            raise RecipeError(
                f"{self.recipe_path}: the run in {self.run_dir} was started with a different recipe "
                f"(differs at {', '.join(diff[:5])}); resume it with the same recipe or start a new --out"
            )
        if state["world_size"] != self.world.world_size:
            raise ValueError(
                f"{self.ckpt_path}: the run used {state['world_size']} process(es); resume it with the same number "
                f"(got {self.world.world_size}) so that every step sees the same data"
            )
        saved_on = (state.get("device_type"), state.get("threads"))
        if None not in saved_on and saved_on != (self.device.type, torch.get_num_threads()):
            logger.warning(
                "resuming a run saved on %s with %s threads on %s with %d threads: it continues correctly, but "
                "not bit for bit as an uninterrupted run would (CPU results depend on the thread count)",
                state.get("device_type"),
                state.get("threads"),
                self.device.type,
                torch.get_num_threads(),
            )
        return state

    # ------------------------------------------------------------------------------------------ ranks
    def sync_ranks(self, what: str) -> str:
        """Give every rank rank 0's parameters and buffers and check that all now agree; returns the digest."""
        assert self.model is not None
        if self.world.enabled:
            for tensor in self.model.state_dict().values():
                buf = tensor.contiguous()
                dist.broadcast(buf, src=0)
                if buf.data_ptr() != tensor.data_ptr():
                    tensor.copy_(buf)
        digest = state_digest(self.model)
        if self.world.enabled:
            digests: list[Any] = [None] * self.world.world_size
            dist.all_gather_object(digests, digest)
            if len(set(digests)) != 1:
                raise RuntimeError(f"after {what} the ranks hold different weights: {digests}")
            logger.info("after %s all %d ranks hold the same weights (sha256 %s)", what, len(digests), digest[:16])
        return digest

    def barrier(self) -> None:
        if self.world.enabled:
            dist.barrier()

    # ------------------------------------------------------------------------------------------ stages
    def run_stage(self, stage: str, spec: StageSpec, resume: dict[str, Any] | None) -> None:
        """Train one stage from its start or from the position in ``resume``."""
        model = self.model
        assert model is not None
        r, world = self.recipe, self.world
        n = len(self.train_y)
        global_bs = spec.batch_size
        local_bs = global_bs // world.world_size
        steps_per_epoch = n // global_bs
        total = spec.epochs * steps_per_epoch

        if stage == "backbone":
            model.train()
            model.backbone.requires_grad_(True)
            model.heads.requires_grad_(False)
            train_module: nn.Module = model.backbone
            named = list(model.backbone.named_parameters())
        else:
            model.eval()  # frozen backbone: BatchNorm statistics stay as stage 1 left them
            model.backbone.requires_grad_(False)
            model.heads.requires_grad_(True)
            model.heads.train()
            train_module = _Heads(model.heads)
            named = list(model.heads.named_parameters())
        ddp = train_module
        if world.enabled:
            ddp = DistributedDataParallel(
                train_module, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        optimizer = make_optimizer(spec.optimizer, named)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, total=total, schedule=spec.schedule)
        )
        epoch0, step0, accum = 0, 0, None
        if resume is not None and resume["optimizer"] is not None:
            optimizer.load_state_dict(resume["optimizer"])
            scheduler.load_state_dict(resume["scheduler"])
            epoch0, step0 = resume["position"]["epoch"], resume["position"]["step"]
            accum = resume["accum"] if world.is_main else None

        n_params = sum(p.numel() for _, p in named)
        logger.info(
            "stage %s: %d epochs x %d steps of %d images (%d per rank), %s params trained, adversarial: %s",
            stage,
            spec.epochs,
            steps_per_epoch,
            global_bs,
            local_bs,
            f"{n_params:,}",
            spec.adversarial.method,
        )
        if (epoch0, step0) != (0, 0):
            logger.info("stage %s: resuming at epoch %d, step %d", stage, epoch0 + 1, step0)
        forward = self._backbone_loss if stage == "backbone" else self._heads_loss
        attack_loss = self._backbone_attack_loss if stage == "backbone" else self._model_attack_loss

        # A tqdm bar in a terminal; otherwise a log line (stderr and train.log) every 30 s: images, img/s, epoch.
        bar = Progress(
            stage,
            total * global_bs,
            output=not self.args.no_progress and world.is_main,
            unit="img",
            unit_scale=True,
            initial=(epoch0 * steps_per_epoch + step0) * global_bs,
            every_s=30.0,
            logger=logger,
        )
        try:
            for epoch in range(epoch0, spec.epochs):
                order = epoch_order(r.seed, stage, epoch, n).to(self.device)
                first = step0 if epoch == epoch0 else 0
                sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss*n, correct, n
                if accum is not None and epoch == epoch0:
                    sums += torch.tensor(accum, dtype=torch.float64, device=self.device)
                t0, images = time.perf_counter(), 0
                stop, last_lr = False, optimizer.param_groups[0]["lr"]
                for step in range(first, steps_per_epoch):
                    gen = step_generator(r.seed, stage, epoch, step, world.rank, self.device)
                    start = step * global_bs + world.rank * local_bs
                    idx = order[start : start + local_bs]
                    x = crop_flip(to_float(self.train_x[idx]), spec.augment.crop_padding, spec.augment.flip, gen)
                    y = self.train_y[idx]
                    if spec.adversarial.method != "none":
                        x = self._adversarial(stage, spec, x, y, gen, attack_loss)
                    x = gaussian_noise(x, spec.augment.gaussian_noise, gen)  # last: smoothing trains on x + noise
                    loss, correct = forward(ddp, x, y, gen, spec)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    last_lr = optimizer.param_groups[0]["lr"]
                    scheduler.step()
                    sums += torch.stack([loss.detach().double() * len(y), correct.double(), sums.new_tensor(len(y))])
                    self.steps_done += 1
                    images += global_bs
                    text = None
                    if step % 10 == 0 and bar.mode is not None:  # .item() syncs: not on every step
                        text = f"epoch {epoch + 1}/{spec.epochs}, step {step + 1}/{steps_per_epoch}"
                        text += f", loss {loss.item():.3f}"
                    bar.update(global_bs, text=text)
                    stop = self.args.stop_after_steps is not None and self.steps_done >= self.args.stop_after_steps
                    if step + 1 < steps_per_epoch and (stop or self._checkpoint_due()):
                        self.save_checkpoint(
                            {"stage": stage, "epoch": epoch, "step": step + 1}, optimizer, scheduler, sums.tolist()
                        )
                        if stop:
                            raise StopRequested
                self._end_epoch(stage, spec, epoch, sums, images, time.perf_counter() - t0, last_lr)
                self.save_checkpoint({"stage": stage, "epoch": epoch + 1, "step": 0}, optimizer, scheduler, None)
                if stop:
                    raise StopRequested
        finally:
            bar.close()

    def _checkpoint_due(self) -> bool:
        return time.monotonic() - self.last_save >= self.recipe.runtime.checkpoint_every_s

    def _stacked(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        stacked = self.model.stack(x, generator=gen)  # fp32: the stack is never autocast
        if self.channels_last:
            stacked = stacked.contiguous(memory_format=torch.channels_last)
        return stacked

    def _backbone_loss(self, ddp, x, y, gen, spec):
        stacked = self._stacked(x, gen)
        with self._autocast():
            logits = ddp(stacked)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=spec.label_smoothing)
        return loss, (logits.argmax(1) == y).sum()

    def _heads_loss(self, ddp, x, y, gen, spec):
        model = self.model
        with torch.no_grad(), self._autocast():
            _, tapped = model.backbone.forward_features(self._stacked(x, gen), model.taps)
        features = [tapped[t].float() for t in model.taps]
        with self._autocast():
            logits = ddp(features).float()  # [B, H, C]
        n_heads = logits.shape[1]
        loss = sum(F.cross_entropy(logits[:, h], y, label_smoothing=spec.label_smoothing) for h in range(n_heads))
        correct = (logits.argmax(2) == y.unsqueeze(1)).sum() / n_heads  # mean over heads
        return loss, correct

    def _backbone_attack_loss(self, x_adv, y, gen):
        """Stage 1's deployed predictor: the stochastic stack followed by the backbone and its classifier."""
        with self._autocast():
            logits = self.model.backbone(self._stacked(x_adv, gen))
        return F.cross_entropy(logits.float(), y, reduction="sum")

    def _model_attack_loss(self, x_adv, y, gen):
        """Stage 2's deployed model: stochastic stack -> every predictor -> the aggregator (CrossMax)."""
        with self._autocast():
            logits = self.model(x_adv, generator=gen)
        return F.cross_entropy(logits.float(), y, reduction="sum")

    def _adversarial(self, stage, spec, x, y, gen, attack_loss: Callable) -> torch.Tensor:
        """Perturb ``x`` against the stochastic model in eval mode (BatchNorm statistics untouched by attacks)."""
        model = self.model
        modes = {m: m.training for m in (model.backbone, model.heads)}
        model.eval()
        try:
            a = spec.adversarial
            return perturb(
                a.method,
                lambda x_adv: attack_loss(x_adv, y, gen),
                x,
                eps=a.eps,
                steps=a.steps,
                step_size=a.step_size,
                random_start=a.random_start,
                generator=gen,
            )
        finally:
            for m, training in modes.items():
                m.train(training)

    def _end_epoch(self, stage, spec, epoch, sums, images, seconds, last_lr: float) -> None:
        if self.world.enabled:
            dist.all_reduce(sums)
        loss_sum, correct, count = sums.tolist()
        entry = {
            "stage": stage,
            "epoch": epoch + 1,
            "epochs": spec.epochs,
            "loss": loss_sum / max(count, 1),
            "train_accuracy": 100.0 * correct / max(count, 1),
            "lr": last_lr,  # of the epoch's last step
            "images_per_s": images / seconds if seconds > 0 else None,
            "elapsed_s": round(self.elapsed(), 1),
        }
        text = (
            f"{stage} epoch {epoch + 1}/{spec.epochs}: loss {entry['loss']:.4f}, train acc "
            f"{entry['train_accuracy']:.2f}%, lr {entry['lr']:.4g}, {entry['images_per_s'] or 0:.0f} img/s, "
            f"{_duration(self.elapsed())} elapsed"
        )
        ev = self.recipe.evaluation
        if ev.monitor_examples and self.world.is_main:
            n = ev.monitor_examples
            result = evaluate_clean(
                self.model,
                self.test_x[:n],
                self.test_y[:n],
                batch_size=ev.batch_size,
                stochastic=self.model.stochastic,
                seed=self.model.stack.seed,
                predictors=stage != "backbone",
            )
            entry["monitor"] = result
            text += f" | first {n} test images: {format_accuracy(result)}"
        self.history.append(entry)
        logger.info(text)

    # ------------------------------------------------------------------------------------------ finalize
    def finalize(self) -> dict[str, Any] | None:
        model = self.model
        assert model is not None
        r = self.recipe
        self.barrier()
        if not self.world.is_main:
            self.barrier()
            return None
        ev = r.evaluation
        if r.export.storage_dtype != "float32":
            # Round once, here: every accuracy below, and every later evaluation, is of the stored model.
            round_to_storage_dtype(model, getattr(torch, r.export.storage_dtype))
            logger.info("weights rounded to %s, the export's storage dtype", r.export.storage_dtype)
        evaluations = [
            evaluate_clean(
                model,
                self.test_x,
                self.test_y,
                batch_size=ev.batch_size,
                stochastic=r.model.stack.stochastic,
                seed=r.model.stack.seed,
            )
        ]
        if r.model.stack.stochastic and ev.also_deterministic:
            evaluations.append(
                evaluate_clean(
                    model, self.test_x, self.test_y, batch_size=ev.batch_size, stochastic=False, seed=r.model.stack.seed
                )
            )
        for result in evaluations:
            logger.info(
                "clean accuracy (%s stack, first %d %s test images): %s",
                result["mode"],
                result["n_examples"],
                r.dataset,
                format_accuracy(result),
            )
        model.eval()
        export_dir = None
        weights_sha = None
        if not self.args.no_export:
            from eee_zoo.hub import export
            from eee_zoo.registry import card_folder

            export_dir = card_folder(r.name, r.dataset, r.threat_model, cards_dir=self.run_dir / "model_cards")
            training = {
                "recipe": _rel(self.recipe_path),
                "recipe_sha256": sha256_file(self.recipe_path),
                "seed": r.seed,
                "run_dir": _rel(self.run_dir),
                "command": f"python -m training.train --recipe {_rel(self.recipe_path)}",
                "git_commit": self.git.get("commit"),
                "world_size": self.world.world_size,
                "device": self.device.type,
            }
            with torch.random.fork_rng(devices=[]):  # the init is overwritten; leave the global RNG alone
                cpu_model = SelfEnsemble.from_config(model.config)
            cpu_model.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
            cpu_model.eval()
            export(
                cpu_model,
                r.name,
                export_dir,
                dataset=r.dataset,
                threat_model=r.threat_model,
                training=training,
                description=r.description,
                overwrite=True,
                storage_dtype=r.export.storage_dtype,
                max_shard_size=r.export.max_shard_size,
            )
            weights_sha = cpu_model.eee_info["sha256"]  # of the index file when the weights are sharded
            logger.info("exported %s to %s (weights sha256 %s)", r.name, export_dir, weights_sha)
        results = {
            "name": r.name,
            "dataset": r.dataset,
            "threat_model": r.threat_model,
            "recipe": _rel(self.recipe_path),
            "seed": r.seed,
            "world_size": self.world.world_size,
            "device": self.device.type,
            "clean_accuracy": evaluations,
            "history": self.history,
            "steps": self.steps_done,
            "wall_time_s": round(self.elapsed(), 1),
            "export_dir": _rel(export_dir) if export_dir is not None else None,
            "weights_sha256": weights_sha,
            "weights_digest": state_digest(model),
            "finished": _now(),
        }
        atomic_write_json(self.run_dir / "results.json", results)
        self.barrier()
        return results

    def init_model(self, state: dict[str, Any] | None = None) -> None:
        """The recipe's model on the device, from ``state`` (a checkpoint) when resuming, in the training layout."""
        self.model = build_model(self.recipe).to(self.device)
        if state is not None:
            self.model.load_state_dict(state["model"])
            torch.set_rng_state(state["rng"]["torch_cpu"])
            self.model.stack.generator_for(self.device).set_state(state["rng"]["model_stack"])
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------------------------------ main
    def run(self) -> int:
        args, r = self.args, self.recipe
        self.check_before_training()
        world, device = self.world, self.device
        if args.threads:
            torch.set_num_threads(args.threads)
        self.set_runtime()

        state = None
        if args.resume and self.ckpt_path.exists():
            state = self.load_checkpoint()
        elif args.resume:
            logger.warning("--resume: no checkpoint in %s, starting a new run", self.run_dir)
        position = state["position"] if state else {"stage": "backbone", "epoch": 0, "step": 0}
        if state is not None:
            self.steps_done = state["steps_done"]
            self.history = list(state["history"])
            self.elapsed_before = float(state["elapsed_s"])
        if position["stage"] != "done":
            self.load_data()  # before any record: missing or bad data fails without writing a thing
        self.write_records(position if state else None)
        if position["stage"] == "done":
            logger.info("run %s in %s has already finished; nothing to do", r.name, self.run_dir)
            self.finish_records("done")
            return 0
        logger.info(
            "run %s: recipe %s, seed %d, device %s%s, run dir %s",
            r.name,
            _rel(self.recipe_path),
            r.seed,
            device,
            f" x {world.world_size} processes ({dist.get_backend()})" if world.enabled else "",
            self.run_dir,
        )

        self.init_model(state)
        self.started = True  # from here on the run folder is kept, whatever happens

        stage = position["stage"]
        status = "failed"
        try:
            if stage == "backbone":
                self.run_stage("backbone", r.backbone_stage, state)
                self.sync_ranks("the backbone stage")
                state, stage = None, "heads"
                self.save_checkpoint({"stage": stage, "epoch": 0, "step": 0})
            if stage == "heads":
                if self.model.taps:
                    self.run_stage("heads", r.heads_stage, state)
                    self.sync_ranks("the heads stage")
                else:
                    logger.info("stage heads: the model has no taps, nothing to train")
                state, stage = None, "finalize"
                self.save_checkpoint({"stage": stage, "epoch": 0, "step": 0})
            if self.channels_last:
                self.model.to(memory_format=torch.contiguous_format)
            self.finalize()
            self.save_checkpoint({"stage": "done", "epoch": 0, "step": 0})
            status = "done"
            logger.info("run %s finished in %s (%d steps)", r.name, _duration(self.elapsed()), self.steps_done)
        except (KeyboardInterrupt, SystemExit):
            status = "interrupted"
            raise
        except StopRequested:
            status = "stopped"
            self.barrier()
            logger.info(
                "stopped after %d steps as asked (--stop-after-steps); continue with --resume --out %s",
                self.steps_done,
                self.run_dir,
            )
        finally:
            self.finish_records(status)
        return 0


def state_digest(model: nn.Module) -> str:
    """SHA-256 over the names, shapes, dtypes and bytes of a state dict (device independent)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
        return out
    return [] if a == b else [prefix or "<recipe>"]


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


# ================================================================================================= entry points
def _discard_failed_start(run_dir: Path, before: set[str] | None) -> None:
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


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    """Run the command described by parsed arguments (see ``eee_zoo.commands.train.add_arguments``)."""
    recipe_path = Path(args.recipe)
    recipe = load_recipe(recipe_path)  # bad recipes fail here, before anything is started
    world, device = init_distributed(args.device)
    trainer = Trainer(args, recipe, recipe_path, world)
    trainer.device = device
    before = set(os.listdir(trainer.run_dir)) if trainer.run_dir.is_dir() else None
    in_main_thread = threading.current_thread() is threading.main_thread()
    old_handler = signal.signal(signal.SIGTERM, _exit_on_sigterm) if in_main_thread else None
    try:  # a kill (SIGTERM) unwinds normally, so the session's end is still recorded
        with logging_to(trainer.run_dir if not trainer.ckpt_path.exists() or args.resume else None, world):
            return trainer.run()
    except BaseException:
        if world.is_main and not trainer.started:
            _discard_failed_start(trainer.run_dir, before)
        raise
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, old_handler)
        if world.enabled and dist.is_initialized():
            dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (RecipeError, FileNotFoundError, FileExistsError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
