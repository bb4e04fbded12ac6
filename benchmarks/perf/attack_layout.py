"""One attack step on the CPU with the model in ``channels_last`` (NHWC) memory layout, against PyTorch's default.

An attack step of AutoAttack (APGD, one EOT draw of it) or of the adaptive suite is a forward pass of the deployed
model and a backward pass to the input. Training already runs its convolutions in ``channels_last``
(``train_throughput.py``); evaluation runs them in the default NCHW layout. This measures what the layout alone
gives an attack step: the same model, images and draws, ``model.to(memory_format=torch.channels_last)`` on one side,
alternating, in one process. The figures: seconds per step on each side, the ratio default / channels_last (mean
and median over the repeats), and how far apart the two layouts' logits and input gradients come out (float
rounding: a different summation order in the convolutions).

    python -m benchmarks.perf.attack_layout [--model cifar10/ResNet18_GPU_CrossMax ...] [--n 100] [--repeats 4]
        (EEE_ZOO_DATA)   writes benchmarks/perf/results/attack_layout.{json,log}
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmarks.perf.log import Log

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MODELS = ("cifar10/ResNet18_GPU_CrossMax", "cifar10/ResNet18w16_CPU_CrossMax", "cifar10/Airbench_CPU_CrossMax")
MODES = {"deterministic": False, "stochastic": True}  # standard-det's step; one EOT draw of rand's


def attack_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, input gradient of the summed cross-entropy): one attack iteration's model work."""
    model.manual_seed(1)
    x = x.clone().requires_grad_(True)
    z = model(x)
    F.cross_entropy(z, y, reduction="sum").backward()
    return z.detach(), x.grad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.perf.attack_layout", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", nargs="+", default=list(MODELS), help="DATASET/NAME ... (default: %(default)s)")
    ap.add_argument("--n", type=int, default=100, help="images per step: AutoAttack's chunk (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=4, help="alternating timed repeats per side (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    ap.add_argument("--out", default=str(RESULTS_DIR), help="results folder (default: benchmarks/perf/results)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from eee_zoo import load_model
    from eee_zoo.data import load_dataset

    log = Log()
    log(f"attack step, channels_last vs default layout, CPU, {args.threads} threads, n={args.n}, "
        f"repeats={args.repeats}, load average before: {os.getloadavg()[0]:.2f}")  # fmt: skip
    result: dict = {"models": {}}
    for spec in args.model:
        dataset, _, name = spec.rpartition("/")
        dataset = dataset or "cifar10"
        default = load_model(name, dataset=dataset)
        nhwc = copy.deepcopy(default).to(memory_format=torch.channels_last)
        x, y = load_dataset(dataset, n_examples=args.n)
        entry: dict = {}
        for mode, stochastic in MODES.items():
            sides = {"default": default.set_stochastic(stochastic), "channels_last": nhwc.set_stochastic(stochastic)}
            times: dict[str, list[float]] = {side: [] for side in sides}
            outputs = {}
            for model in sides.values():
                attack_step(model, x[:4], y[:4])  # warm-up
            for repeat in range(args.repeats):
                for side in sides if repeat % 2 == 0 else reversed(list(sides)):
                    start = time.perf_counter()
                    outputs[side] = attack_step(sides[side], x, y)
                    times[side].append(time.perf_counter() - start)
            ratios = [a / b for a, b in zip(times["default"], times["channels_last"])]
            (z0, g0), (z1, g1) = outputs["default"], outputs["channels_last"]
            entry[mode] = {
                "default_s": times["default"], "channels_last_s": times["channels_last"],
                "speedup_mean": statistics.mean(ratios), "speedup_median": statistics.median(ratios),
                "logits_max_abs_diff": float((z0 - z1).abs().max()),
                "gradient_max_rel_diff": float((g0 - g1).abs().max() / g0.abs().max()),
                "same_predictions": bool(torch.equal(z0.argmax(1), z1.argmax(1))),
            }  # fmt: skip
            e = entry[mode]
            log(f"{spec} {mode}: default {statistics.mean(times['default']):.3f} s, channels_last "
                f"{statistics.mean(times['channels_last']):.3f} s per step of {args.n}; speed-up mean "
                f"{e['speedup_mean']:.2f} median {e['speedup_median']:.2f}; logits differ by <= "
                f"{e['logits_max_abs_diff']:.2e}, gradients by <= {e['gradient_max_rel_diff']:.2e} of their largest, "
                f"same predictions: {e['same_predictions']}")  # fmt: skip
        result["models"][spec] = entry
    log(f"load average after: {os.getloadavg()[0]:.2f}")
    command = "python -m benchmarks.perf.attack_layout " + " ".join(argv if argv is not None else sys.argv[1:])
    result.update({"command": command.strip(), "threads": args.threads, "n": args.n, "repeats": args.repeats})
    log.save(Path(args.out), "attack_layout", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
