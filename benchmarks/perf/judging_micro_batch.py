"""Judging and EOT gradients on the CPU with the backbone in micro-batches, against one pass over every image.

:func:`eee_zoo.adaptive.worst_case.judge` stacks ``draws x images`` (up to 2048) into one forward pass so that the
stack draws its noise for all of them at once; an EOT surrogate (:class:`eee_zoo.adaptive.surrogates.Surrogate`)
stacks ``E x B`` copies likewise, with gradients. On a CPU one pass over hundreds or thousands of images is slower
per image than small passes (activations of hundreds of MB per layer), so a SelfEnsemble can run its backbone on
``micro_batch`` images at a time after the stack has drawn for the whole pass: the same draws, the same logits and
gradients up to float rounding. The baseline is the same call with ``micro_batch=None`` (one pass, as before); both
sides run on the same images and draws in the same process, alternating. The figures: seconds per side, the ratio
one-pass / micro-batch (mean and median over the repeats), and whether the outputs came out bitwise equal.

    python -m benchmarks.perf.judging_micro_batch [--workload judge|eot] [--model cifar10/ResNet18_GPU_CrossMax ...] \
        [--n 50] [--draws 200] [--micro 32 ...]   (EEE_ZOO_DATA)

``judge`` (default): one final-stage judgement of the zoo preset (one attack's 50 finalists on 200 draws), hits and
mean true-class probabilities compared; writes ``benchmarks/perf/results/judging_micro_batch.{json,log}``.
``eot``: one gradient of the zoo preset's EOT attacks (``apgd-ce-mean-eot``: the mean of the logits over 4 draws
of 40 images, the clean-correct share of a batch of 50; use ``--n 40 --draws 4``), forward and backward, logits and
input gradients compared; writes ``eot_micro_batch.{json,log}``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmarks.perf.log import Log
from eee_zoo.adaptive.surrogates import CPU_MICRO_BATCH, Surrogate
from eee_zoo.adaptive.worst_case import judge

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MODELS = ("cifar10/ResNet18_GPU_CrossMax", "cifar10/ResNet18w16_CPU_CrossMax", "cifar10/Airbench_CPU_CrossMax")
STEMS = {"judge": "judging_micro_batch", "eot": "eot_micro_batch"}


def judge_once(model: nn.Module, x: torch.Tensor, y: torch.Tensor, draws: int, micro: int | None) -> tuple:
    """(hits, mean true-class probability) on ``draws`` draws."""
    return judge(model, x, y, draws, seed=1, micro_batch=micro)


def eot_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, draws: int, micro: int | None) -> tuple:
    """(logits, input gradient) of cross-entropy on the mean-of-logits surrogate with EOT over ``draws`` draws."""
    model.manual_seed(1)
    x = x.clone().requires_grad_(True)
    z = Surrogate(model, head="mean", draws=draws, micro_batch=micro)(x)
    F.cross_entropy(z, y, reduction="sum").backward()
    return z.detach(), x.grad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.perf.judging_micro_batch", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--workload", choices=sorted(STEMS), default="judge", help="what to time (default: %(default)s)")
    ap.add_argument("--model", nargs="+", default=list(MODELS), help="DATASET/NAME ... (default: %(default)s)")
    ap.add_argument("--n", type=int, default=50, help="images judged together (default: %(default)s)")
    ap.add_argument("--draws", type=int, default=200, help="draws of the deployed model (default: %(default)s)")
    ap.add_argument(
        "--micro", type=int, nargs="+", default=[CPU_MICRO_BATCH], help="micro-batch sizes (default: %(default)s)"
    )
    ap.add_argument("--repeats", type=int, default=2, help="alternating timed repeats per side (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    ap.add_argument("--out", default=str(RESULTS_DIR), help="results folder (default: benchmarks/perf/results)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from eee_zoo import load_model
    from eee_zoo.data import load_dataset

    log = Log()
    log(
        f"{args.workload} in micro-batches vs one pass, CPU, {args.threads} threads, n={args.n}, draws={args.draws}, "
        f"micro-batches {args.micro}, repeats={args.repeats}, load average before: {os.getloadavg()[0]:.2f}"
    )
    result: dict = {"models": {}}
    for spec in args.model:
        dataset, _, name = spec.rpartition("/")
        dataset = dataset or "cifar10"
        model = load_model(name, dataset=dataset).set_stochastic(True)
        x, y = load_dataset(dataset, n_examples=args.n)
        sides: dict[str, int | None] = {"one pass": None, **{f"micro {m}": m for m in args.micro}}
        times: dict[str, list[float]] = {side: [] for side in sides}
        outputs = {}
        work = judge_once if args.workload == "judge" else eot_gradient
        work(model, x[:2], y[:2], 2, None)  # warm-up
        for repeat in range(args.repeats):
            for side in sides if repeat % 2 == 0 else reversed(sides):
                start = time.perf_counter()
                outputs[side] = work(model, x, y, args.draws, sides[side])
                times[side].append(time.perf_counter() - start)
        base = times["one pass"]
        compared = "hits and probabilities" if args.workload == "judge" else "logits and input gradients"
        images = args.n * args.draws
        entry: dict = {"one_pass_s": base, "images_per_pass": images, "micro": {}}
        log(f"{spec}: one pass {statistics.mean(base):.2f} s ({images / statistics.mean(base):.1f} images/s)")
        for side, micro in sides.items():
            if micro is None:
                continue
            ratios = [a / b for a, b in zip(base, times[side])]
            equal = all(torch.equal(a, b) for a, b in zip(outputs[side], outputs["one pass"]))
            entry["micro"][str(micro)] = {
                "seconds": times[side], "speedup_mean": statistics.mean(ratios),
                "speedup_median": statistics.median(ratios), "bitwise_equal": equal,
            }  # fmt: skip
            log(f"  micro-batch {micro:>4}: {statistics.mean(times[side]):.2f} s "
                f"({images / statistics.mean(times[side]):.1f} images/s), speed-up mean {statistics.mean(ratios):.2f} "
                f"median {statistics.median(ratios):.2f}; {compared} bitwise equal: {equal}")  # fmt: skip
        result["models"][spec] = entry
    log(f"load average after: {os.getloadavg()[0]:.2f}")
    command = "python -m benchmarks.perf.judging_micro_batch " + " ".join(argv if argv is not None else sys.argv[1:])
    result.update({
        "command": command.strip(), "workload": args.workload, "threads": args.threads, "n": args.n,
        "draws": args.draws,
    })  # fmt: skip
    log.save(Path(args.out), STEMS[args.workload], result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
