"""Training throughput (images/s): the training loop of ``training/`` against a notebook-style reference loop.

Both sides train the same architecture from the same initial weights with the same batch size, optimiser
(SGD, Nesterov momentum, weight decay), label smoothing, crop/flip augmentation and multi-resolution stack,
for the same number of optimiser steps, on the CPU, in one process, alternating (reference, ours) to spread
machine drift (other jobs on the shared CPU) over both sides; the median over repeats is reported.

* ``ours``: ``training.train.train_stage`` itself (stage 1, the backbone on the stack), with the recipe's
  runtime settings applied as a real run applies them (``channels_last``: NHWC tensors, in which oneDNN's CPU
  convolutions are faster): images kept as a uint8 tensor on the device; per-batch index, crop/flip and
  the vectorised ``MultiResolutionStack`` on the device with a step-seeded ``torch.Generator``; the epoch-end log
  line and checkpoint included.
* ``reference``: written the way the published notebook trains: float32 numpy arrays on the host, a numpy
  permutation, per-image numpy crop/flip, ``torch.Tensor(batch).to(device)`` every step, the per-image
  Python-loop stack with numpy noise (``ReferenceStack``, benchmarks/perf/reference_stack.py), and PyTorch's
  default NCHW layout. Its time is also split into data+augmentation / stack / model step, which shows where
  the difference comes from.

    python -m benchmarks.perf.train_throughput            # from the repository root; writes results/

Target (issue 3): ours >= 3x the reference on the CPU. The table also prints the bound on the speed-up that
a free stack and data path alone would give, (reference time) / (reference model-step time): beyond it, only
a faster model step (the layout) helps. The model step is mostly convolutions, near the CPU's fp32 FMA peak.

Threads: both sides run with the same torch thread count, once per value of ``--threads`` (default: 1 and
every core). On a shared machine two OpenMP threads per process spin at every barrier while the other
thread waits for a core, and small steps slow down tenfold at random, so the load average before and after
is logged: trust a run only when it was low.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import itertools
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # also runnable as a file: python benchmarks/perf/train_throughput.py
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.perf.log import Log  # noqa: E402
from benchmarks.perf.reference_stack import ReferenceStack  # noqa: E402
from benchmarks.perf.training_session import cpu_session  # noqa: E402
from eee_zoo._io import atomic_write_json, atomic_write_text  # noqa: E402
from eee_zoo.data import load_uint8  # noqa: E402
from training.distributed import DistInfo  # noqa: E402
from training.optim import make_optimizer  # noqa: E402
from training.randomness import build_model  # noqa: E402
from training.recipe import Recipe, load_recipe  # noqa: E402
from training.records import device_info  # noqa: E402
from training.train import train_stage  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGET = 3.0
DEFAULT_RECIPES = ("training/recipes/tiny.yaml", "training/recipes/cifar10_airbench_crossmax.yaml")


def bench_recipe(recipe: Recipe, images: np.ndarray, labels: np.ndarray, steps: int) -> Recipe:
    """The recipe's stage 1 cut to one epoch of ``steps`` steps, without monitoring."""
    stage = dataclasses.replace(recipe.backbone_stage, epochs=1)
    return dataclasses.replace(
        recipe,
        backbone_stage=stage,
        data=dataclasses.replace(recipe.data, n_train=steps * stage.batch_size),
        evaluation=dataclasses.replace(recipe.evaluation, monitor_examples=0),
        runtime=dataclasses.replace(recipe.runtime, checkpoint_every_s=1e9),
    )


def run_ours(
    recipe: Recipe, recipe_path: Path, x_uint8: np.ndarray, y: np.ndarray, workdir: Path
) -> tuple[float, float]:
    """Wall and process-CPU seconds for one epoch of stage 1 through the real ``train_stage``."""
    session = cpu_session(recipe, recipe_path, x_uint8, y, workdir)
    start, cpu = time.perf_counter(), time.process_time()
    train_stage(session, "backbone", recipe.backbone_stage, None)
    return time.perf_counter() - start, time.process_time() - cpu


def run_reference(
    recipe: Recipe, x_float: np.ndarray, y: np.ndarray, seed: int
) -> tuple[float, float, dict[str, float]]:
    """Wall and process-CPU seconds for the same steps, notebook style; plus the wall split data / stack / step."""
    spec = recipe.backbone_stage
    model = build_model(recipe)  # same init as ours
    stack = ReferenceStack(
        recipe.model.stack.resolutions,
        jitter=recipe.model.stack.jitter,
        down_noise=recipe.model.stack.down_noise,
        up_noise=recipe.model.stack.up_noise,
    )
    backbone = model.backbone.train()
    optimizer = make_optimizer(spec.optimizer, list(backbone.named_parameters()))
    np.random.seed(seed)  # the reference draws everything from numpy's global RNG
    pad, bs = spec.augment.crop_padding, spec.batch_size
    parts = {"data_and_augmentation": 0.0, "stack": 0.0, "model_step": 0.0}
    start, cpu = time.perf_counter(), time.process_time()
    order = np.random.permutation(len(y))
    for step in range(len(y) // bs):
        t0 = time.perf_counter()
        ids = order[step * bs : (step + 1) * bs]
        batch = x_float[ids]
        out = np.empty_like(batch)
        for i in range(bs):  # per-image numpy crop and flip
            img = np.pad(batch[i], ((0, 0), (pad, pad), (pad, pad)), mode="reflect") if pad else batch[i]
            dy, dx = np.random.randint(0, 2 * pad + 1, size=2)
            img = img[:, dy : dy + 32, dx : dx + 32]
            if spec.augment.flip and np.random.rand() < 0.5:
                img = img[:, :, ::-1]
            out[i] = img
        images = torch.Tensor(out).to("cpu")
        targets = torch.Tensor(y[ids]).long().to("cpu")
        t1 = time.perf_counter()
        with torch.no_grad():
            stacked = stack(images)
        t2 = time.perf_counter()
        loss = F.cross_entropy(backbone(stacked), targets, label_smoothing=spec.label_smoothing)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        t3 = time.perf_counter()
        parts["data_and_augmentation"] += t1 - t0
        parts["stack"] += t2 - t1
        parts["model_step"] += t3 - t2
    return time.perf_counter() - start, time.process_time() - cpu, parts


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES), help="recipes whose model/batch to use")
    ap.add_argument("--steps", type=int, default=24, help="optimiser steps per timed run")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per side (median reported)")
    ap.add_argument(
        "--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1],
        help="torch CPU thread counts to measure, both sides alike (default: 1 and every core; see above)",
    )  # fmt: skip
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = ap.parse_args(argv)
    log = Log()
    load_before = os.getloadavg()
    cpu_name = device_info(torch.device("cpu"), DistInfo())["name"]
    threads = ", ".join(map(str, args.threads))
    log(
        f"training throughput on the CPU ({cpu_name}, {os.cpu_count()} cores), threads {threads}, "
        f"torch {torch.__version__}"
    )
    log(f"load average before: {load_before[0]:.2f} (other jobs share this CPU)")

    # Real CIFAR-10 images (the 500 shipped with the package, repeated as needed): offline everywhere.
    x_all, y_all = load_uint8("cifar10", "test", n_examples=500)
    rows: list[dict[str, Any]] = []
    for threads, recipe_name in itertools.product(args.threads, args.recipes):
        torch.set_num_threads(threads)
        recipe_path = REPO_ROOT / recipe_name
        recipe = load_recipe(recipe_path)
        bs = recipe.backbone_stage.batch_size
        n = args.steps * bs
        reps = -(-n // len(y_all))
        x_uint8 = np.ascontiguousarray(np.tile(x_all, (reps, 1, 1, 1))[:n])
        y = np.ascontiguousarray(np.tile(y_all, reps)[:n])
        x_float = np.ascontiguousarray(x_uint8.transpose(0, 3, 1, 2)).astype(np.float32) / 255.0
        recipe = bench_recipe(recipe, x_uint8, y, args.steps)
        ours_s, ref_s, ours_cpu, ref_cpu, parts_runs = [], [], [], [], []
        with tempfile.TemporaryDirectory() as tmp:
            warm = bench_recipe(recipe, x_uint8, y, 1)
            run_ours(warm, recipe_path, x_uint8[:bs], y[:bs], Path(tmp) / "warm")
            run_reference(warm, x_float[:bs], y[:bs], 0)
            for r in range(args.repeats):
                seconds, cpu, parts = run_reference(recipe, x_float, y, r)
                ref_s.append(seconds)
                ref_cpu.append(cpu)
                parts_runs.append(parts)
                seconds, cpu = run_ours(recipe, recipe_path, x_uint8, y, Path(tmp) / f"run{r}")
                ours_s.append(seconds)
                ours_cpu.append(cpu)
        ours_ips = n / statistics.median(ours_s)
        ref_ips = n / statistics.median(ref_s)
        median_parts = {k: statistics.median(p[k] for p in parts_runs) for k in parts_runs[0]}
        rows.append(
            {
                "recipe": recipe_name,
                "threads": threads,
                "channels_last": recipe.runtime.channels_last,
                "model": recipe.model_config(),
                "batch_size": bs,
                "steps": args.steps,
                "images_per_run": n,
                "ours": {"images_per_s": ours_ips, "seconds": ours_s, "cpu_seconds": ours_cpu},
                "reference": {
                    "images_per_s": ref_ips,
                    "seconds": ref_s,
                    "cpu_seconds": ref_cpu,
                    "split_s (median)": median_parts,
                },
                "speedup": ours_ips / ref_ips,
                "speedup_bound_free_stack_and_data": statistics.median(ref_s) / median_parts["model_step"],
                "speedup_cpu_time": statistics.median(ref_cpu) / statistics.median(ours_cpu),
                "meets_target": ours_ips / ref_ips >= TARGET,
            }
        )

    log()
    header = (
        f"{'recipe (model)':<48} {'threads':>7} {'batch':>5} {'reference img/s':>16} {'ours img/s':>11} {'speed-up':>9}"
    )
    log(header + f" {'(CPU time)':>10}")
    for row in rows:
        log(
            f"{row['recipe']:<48} {row['threads']:>7} {row['batch_size']:>5} {row['reference']['images_per_s']:>16.0f} "
            f"{row['ours']['images_per_s']:>11.0f} {row['speedup']:>8.2f}x {row['speedup_cpu_time']:>9.2f}x"
            + ("" if row["meets_target"] else f"   (below the {TARGET:g}x target)")
        )
    log()
    log("reference time split (median seconds per run): data+augmentation / stack / model step -> speed-up bound")
    for row in rows:
        p = row["reference"]["split_s (median)"]
        total = sum(p.values())
        log(
            f"  {row['recipe']:<46} {row['threads']} thr: "
            + " / ".join(f"{v:.2f} s ({100 * v / total:.0f}%)" for v in p.values())
            + f" -> {row['speedup_bound_free_stack_and_data']:.2f}x"
        )  # fmt: skip
    load_after = os.getloadavg()
    log(f"load average after: {load_after[0]:.2f}")

    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    command = "python -m benchmarks.perf.train_throughput " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {
        "benchmark": "train_throughput",
        "command": command.strip(),
        "date": stamp,
        "device": "cpu",
        "threads": args.threads,
        "cpu": cpu_name,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average": {"before": load_before[0], "after": load_after[0]},
        "target_speedup": TARGET,
        "repeats": args.repeats,
        "results": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "train_throughput.json", copy.deepcopy(result))
    atomic_write_text(args.out / "train_throughput.log", "\n".join(log.lines) + "\n")
    print(f"wrote {args.out / 'train_throughput.json'} and {args.out / 'train_throughput.log'}")


if __name__ == "__main__":
    main()
