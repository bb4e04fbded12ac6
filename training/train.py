"""Train a multi-resolution self-ensemble from a recipe, end to end, resumably, on one CPU or many GPUs.

    python -m training.train --recipe training/recipes/<name>.yaml [--out DIR] [--resume] [--device ...]
    torchrun --nproc_per_node N -m training.train --recipe ...        # DistributedDataParallel
    eee-zoo train --recipe ...                                          # the same, from the CLI

Stages:
  1. backbone: the backbone's own classifier on the multi-resolution stack (cross-entropy), with crop/flip
     augmentation and the stack drawn per batch on the device;
  2. heads: the linear heads on ``model.taps`` trained on the frozen backbone (eval mode: its BatchNorm
     statistics stay as they are; only the heads' parameters are in the optimiser);
  3. finalize: the self-ensemble's clean accuracy on the test set (every predictor and the aggregate), in
     the model's inference mode from the recipe, then ``eee_zoo.hub.export`` into
     ``<run dir>/model_cards/<dataset>/<threat model>/<name>/`` (a Hub-ready folder with its card).

Randomness is step-indexed (every epoch's order and every step's draws from a seed derived from the recipe
seed; the global RNG is never drawn from), so a run resumed from any step boundary takes exactly the steps of
an uninterrupted run, bit for bit on the CPU. The run folder gets the recipe, ``run_info.json``,
``train.log``, ``checkpoint.pt`` (atomically, every ``runtime.checkpoint_every_s`` and at every epoch end)
and ``results.json``.

This file is the loop and its entry points. Around it: step.py (what a step computes), randomness.py (the
seeds), optim.py, checkpoint.py (the resumable state), records.py (the run folder's records), distributed.py
(DDP), finalize.py (stage 3) and arguments.py (the options).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

from eee_zoo._progress import Progress
from eee_zoo.data import load_uint8
from eee_zoo.models import SelfEnsemble

from . import distributed
from .arguments import add_arguments
from .augment import crop_flip, gaussian_noise, to_float
from .checkpoint import CHECKPOINT_NAME, Checkpoints, Counters, position
from .distributed import DistInfo
from .finalize import evaluate_clean, export_model, final_accuracies, format_accuracy
from .optim import lr_factor, make_optimizer
from .randomness import build_model, epoch_order, step_generator
from .recipe import Recipe, RecipeError, StageSpec, load_recipe
from .records import RunRecords, discard_failed_start, duration, logging_to, rel_path
from .step import StepModel

__all__ = ["Data", "Session", "load_data", "main", "run", "run_session", "train_stage"]

logger = logging.getLogger("eee_zoo.train")


class StopRequested(Exception):
    """Raised after the checkpoint of ``--stop-after-steps`` is written."""


class Data(NamedTuple):
    """The recipe's images as uint8 ``[N, 3, H, W]`` and their labels, on the training device."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def load_data(recipe: Recipe, data_dir: Path | str | None, device: torch.device) -> Data:
    def to_device(split: str, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = load_uint8(recipe.dataset, split, data_dir, n_examples=n)  # uint8 NHWC -> uint8 NCHW on the device
        images = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
        return images.to(device), torch.from_numpy(y).to(device)

    data = Data(*to_device("train", recipe.data.n_train), *to_device("test", recipe.data.n_test))
    logger.info(
        "data: %d training and %d test images of %s held as uint8 on %s",
        len(data.train_y),
        len(data.test_y),
        recipe.dataset,
        device,
    )
    return data


@dataclass
class Session:
    """One process's part of one start of a run: what the stages read, and the counters they advance."""

    args: argparse.Namespace
    recipe: Recipe
    recipe_path: Path
    world: DistInfo
    device: torch.device
    run_dir: Path
    records: RunRecords
    checkpoints: Checkpoints
    counters: Counters = field(default_factory=Counters)
    data: Data | None = None
    model: SelfEnsemble | None = None
    step_model: StepModel | None = None  # the model as the training steps run it
    amp: bool = False  # bfloat16 autocast (CUDA only)
    channels_last: bool = False  # NHWC activations
    started: bool = False  # set once data and model are ready: a failed start before that leaves no run folder

    @classmethod
    def create(
        cls, args: argparse.Namespace, recipe: Recipe, recipe_path: Path, world: DistInfo, device: torch.device
    ) -> Session:
        run_dir = Path(args.out) if args.out else Path("training") / "runs" / recipe.name
        records = RunRecords(run_dir, recipe, recipe_path, world, device)
        checkpoints = Checkpoints(run_dir, recipe, recipe_path, world, device)
        return cls(args, recipe, recipe_path, world, device, run_dir, records, checkpoints)

    def set_runtime(self) -> None:
        """Speed settings from the recipe's ``runtime`` for this device (they change rounding, not the model)."""
        self.amp = self.device.type == "cuda" and self.recipe.runtime.amp  # no fast bfloat16 on most CPUs
        # NHWC on every device: oneDNN's CPU convolutions are faster in it too (benchmarks/perf/train_throughput)
        self.channels_last = self.recipe.runtime.channels_last

    def init_model(self, state: dict[str, Any] | None = None) -> None:
        """The recipe's model on the device, from ``state`` (a checkpoint) when resuming, in the training layout."""
        self.model = build_model(self.recipe).to(self.device)
        if state is not None:
            self.checkpoints.restore_model(self.model, state)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.step_model = StepModel(self.model, amp=self.amp, channels_last=self.channels_last)


# ================================================================================================= the loop
def train_stage(s: Session, stage: str, spec: StageSpec, resume: dict[str, Any] | None) -> None:
    """Train one stage from its start or from the position in ``resume`` (a checkpoint inside this stage)."""
    r, world, device, model, data = s.recipe, s.world, s.device, s.model, s.data
    n = len(data.train_y)
    global_bs = spec.batch_size
    local_bs = global_bs // world.world_size
    steps_per_epoch = n // global_bs
    total = spec.epochs * steps_per_epoch

    step_model = s.step_model
    module, named = step_model.trained_module(stage)
    trained = distributed.wrap(module, world, device)  # DDP averages the gradients over the ranks
    optimizer = make_optimizer(spec.optimizer, named)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: lr_factor(i, total=total, schedule=spec.schedule)
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
    # A tqdm bar in a terminal; otherwise a log line (stderr and train.log) every 30 s: images, img/s, epoch.
    bar = Progress(
        stage,
        total * global_bs,
        output=not s.args.no_progress and world.is_main,
        unit="img",
        unit_scale=True,
        initial=(epoch0 * steps_per_epoch + step0) * global_bs,
        every_s=30.0,
        logger=logger,
    )
    try:
        for epoch in range(epoch0, spec.epochs):
            order = epoch_order(r.seed, stage, epoch, n).to(device)
            sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss*n, correct, n
            if accum is not None and epoch == epoch0:
                sums += torch.tensor(accum, dtype=torch.float64, device=device)
            t0, images = time.perf_counter(), 0
            stop, last_lr = False, optimizer.param_groups[0]["lr"]
            for step in range(step0 if epoch == epoch0 else 0, steps_per_epoch):
                gen = step_generator(r.seed, stage, epoch, step, world.rank, device)
                start = step * global_bs + world.rank * local_bs  # this rank's share of the global batch
                idx = order[start : start + local_bs]
                x = crop_flip(to_float(data.train_x[idx]), spec.augment.crop_padding, spec.augment.flip, gen)
                y = data.train_y[idx]
                if spec.adversarial.method != "none":
                    x = step_model.adversarial(stage, spec.adversarial, x, y, gen)
                x = gaussian_noise(x, spec.augment.gaussian_noise, gen)  # last: smoothing trains on x + noise
                loss, correct = step_model.loss(stage, trained, x, y, gen, spec.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                last_lr = optimizer.param_groups[0]["lr"]
                scheduler.step()

                sums += torch.stack([loss.detach().double() * len(y), correct.double(), sums.new_tensor(len(y))])
                s.counters.steps_done += 1
                images += global_bs
                text = None
                if step % 10 == 0 and bar.mode is not None:  # .item() syncs: not on every step
                    text = f"epoch {epoch + 1}/{spec.epochs}, step {step + 1}/{steps_per_epoch}"
                    text += f", loss {loss.item():.3f}"
                bar.update(global_bs, text=text)
                stop = s.args.stop_after_steps is not None and s.counters.steps_done >= s.args.stop_after_steps
                if step + 1 < steps_per_epoch and (stop or s.checkpoints.due()):
                    at = position(stage, epoch, step + 1)
                    s.checkpoints.save(model, at, s.counters, optimizer, scheduler, sums.tolist())
                    if stop:
                        raise StopRequested
            end_epoch(s, stage, spec, epoch, sums, images, time.perf_counter() - t0, last_lr)
            s.checkpoints.save(model, position(stage, epoch + 1), s.counters, optimizer, scheduler, None)
            if stop:
                raise StopRequested
    finally:
        bar.close()


def end_epoch(
    s: Session,
    stage: str,
    spec: StageSpec,
    epoch: int,
    sums: torch.Tensor,
    images: int,
    seconds: float,
    last_lr: float,
) -> None:
    """The epoch's loss and accuracy over every rank (and a monitor accuracy on rank 0) into the history and log."""
    distributed.all_reduce_sum(sums, s.world)
    loss_sum, correct, count = sums.tolist()
    entry = {
        "stage": stage,
        "epoch": epoch + 1,
        "epochs": spec.epochs,
        "loss": loss_sum / max(count, 1),
        "train_accuracy": 100.0 * correct / max(count, 1),
        "lr": last_lr,  # of the epoch's last step
        "images_per_s": images / seconds if seconds > 0 else None,
        "elapsed_s": round(s.counters.elapsed(), 1),
    }
    text = (
        f"{stage} epoch {epoch + 1}/{spec.epochs}: loss {entry['loss']:.4f}, train acc "
        f"{entry['train_accuracy']:.2f}%, lr {entry['lr']:.4g}, {entry['images_per_s'] or 0:.0f} img/s, "
        f"{duration(s.counters.elapsed())} elapsed"
    )
    n = s.recipe.evaluation.monitor_examples
    if n and s.world.is_main:
        result = evaluate_clean(
            s.model,
            s.data.test_x[:n],
            s.data.test_y[:n],
            batch_size=s.recipe.evaluation.batch_size,
            stochastic=s.model.stochastic,
            seed=s.model.stack.seed,
            predictors=stage != "backbone",
        )
        entry["monitor"] = result
        text += f" | first {n} test images: {format_accuracy(result)}"
    s.counters.history.append(entry)
    logger.info(text)


def finalize(s: Session) -> None:
    """Stage 3 on rank 0 (the other ranks wait): clean accuracy, the Hub-ready export, ``results.json``."""
    distributed.barrier(s.world)
    if s.world.is_main:
        model = s.model
        evaluations = final_accuracies(model, s.recipe, s.data.test_x, s.data.test_y)
        model.eval()
        export_dir, weights_sha = None, None
        if not s.args.no_export:
            export_dir, weights_sha = export_model(
                model,
                s.recipe,
                s.recipe_path,
                s.run_dir,
                git_commit=s.records.git.get("commit"),
                world_size=s.world.world_size,
                device=s.device.type,
            )
        s.records.write_results(
            clean_accuracy=evaluations,
            history=s.counters.history,
            steps=s.counters.steps_done,
            wall_time_s=round(s.counters.elapsed(), 1),
            export_dir=rel_path(export_dir) if export_dir is not None else None,
            weights_sha256=weights_sha,
            weights_digest=distributed.state_digest(model),
        )
    distributed.barrier(s.world)


# ================================================================================================= a session
def check_before_training(s: Session) -> None:
    """Run-level checks that need the world size (before any data is loaded or a step taken)."""
    w = s.world.world_size
    for stage in ("backbone_stage", "heads_stage"):
        bs = getattr(s.recipe, stage).batch_size
        if bs % w:
            raise RecipeError(
                f"{s.recipe_path}: key '{stage}.batch_size': {bs} is not divisible by the {w} DDP processes"
            )
    if s.checkpoints.path.exists() and not s.args.resume:
        raise FileExistsError(
            f"{s.run_dir} already holds a run ({CHECKPOINT_NAME}); pass --resume to continue it or choose another --out"
        )


def run_session(s: Session) -> int:
    """Resume or start the run, then the stages from where it stands: backbone, heads, finalize."""
    args, r = s.args, s.recipe
    check_before_training(s)
    if args.threads:
        torch.set_num_threads(args.threads)
    s.set_runtime()

    state = None
    if args.resume and s.checkpoints.path.exists():
        state = s.checkpoints.load()
        s.counters.resume_from(state)
    elif args.resume:
        logger.warning("--resume: no checkpoint in %s, starting a new run", s.run_dir)
    stage = state["position"]["stage"] if state else "backbone"
    if stage != "done":
        s.data = load_data(r, args.data_dir or r.data.data_dir, s.device)  # before any record: bad data writes nothing
    runtime = {"amp_bfloat16": s.amp, "channels_last": s.channels_last}
    s.records.start_session(args, state["position"] if state else None, runtime)
    if stage == "done":
        logger.info("run %s in %s has already finished; nothing to do", r.name, s.run_dir)
        s.records.end_session("done", s.counters.steps_done, s.counters.elapsed())
        return 0
    logger.info(
        "run %s: recipe %s, seed %d, device %s%s, run dir %s",
        r.name,
        rel_path(s.recipe_path),
        r.seed,
        s.device,
        distributed.describe(s.world),
        s.run_dir,
    )
    s.init_model(state)
    s.started = True  # from here on the run folder is kept, whatever happens

    status = "failed"
    try:
        if stage == "backbone":
            train_stage(s, "backbone", r.backbone_stage, state)
            distributed.sync_ranks(s.model, s.world, "the backbone stage")
            state, stage = None, "heads"
            s.checkpoints.save(s.model, position(stage), s.counters)
        if stage == "heads":
            if s.model.taps:
                train_stage(s, "heads", r.heads_stage, state)
                distributed.sync_ranks(s.model, s.world, "the heads stage")
            else:
                logger.info("stage heads: the model has no taps, nothing to train")
            state, stage = None, "finalize"
            s.checkpoints.save(s.model, position(stage), s.counters)
        if s.channels_last:
            s.model.to(memory_format=torch.contiguous_format)
        finalize(s)
        s.checkpoints.save(s.model, position("done"), s.counters)
        status = "done"
        logger.info("run %s finished in %s (%d steps)", r.name, duration(s.counters.elapsed()), s.counters.steps_done)
    except (KeyboardInterrupt, SystemExit):
        status = "interrupted"
        raise
    except StopRequested:
        status = "stopped"
        distributed.barrier(s.world)
        logger.info(
            "stopped after %d steps as asked (--stop-after-steps); continue with --resume --out %s",
            s.counters.steps_done,
            s.run_dir,
        )
    finally:
        s.records.end_session(status, s.counters.steps_done, s.counters.elapsed())
    return 0


# ================================================================================================= entry points
def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    """Run the command described by parsed arguments (see ``training.arguments.add_arguments``)."""
    recipe_path = Path(args.recipe)
    recipe = load_recipe(recipe_path)  # bad recipes fail here, before anything is started
    world, device = distributed.init_distributed(args.device)
    session = Session.create(args, recipe, recipe_path, world, device)
    run_dir = session.run_dir
    before = set(os.listdir(run_dir)) if run_dir.is_dir() else None
    in_main_thread = threading.current_thread() is threading.main_thread()
    old_handler = signal.signal(signal.SIGTERM, _exit_on_sigterm) if in_main_thread else None
    try:  # a kill (SIGTERM) unwinds normally, so the session's end is still recorded
        with logging_to(run_dir if not session.checkpoints.path.exists() or args.resume else None, world):
            return run_session(session)
    except BaseException:
        if world.is_main and not session.started:
            discard_failed_start(run_dir, before)
        raise
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, old_handler)
        distributed.shut_down(world)


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
