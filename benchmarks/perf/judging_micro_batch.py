"""Judging on the CPU with the backbone in micro-batches, against one pass over every drawn image.

:func:`eee_zoo.adaptive.worst_case.judge` stacks ``draws x images`` (up to 2048) into one forward pass so that the
stack draws its noise for all of them at once. On a CPU one pass over thousands of images is several times slower
per image than small passes (activations of hundreds of MB per layer), so a SelfEnsemble can run its backbone on
``micro_batch`` images at a time after the stack has drawn for the whole pass: the same draws, the same logits up to
float rounding. The baseline is the same ``judge`` call with ``micro_batch=None`` (one pass, as judging was before);
both sides judge the same images on the same draws in the same process, alternating. The figures: seconds per side,
the ratio one-pass / micro-batch (mean and median over the repeats), and whether hits and mean true-class
probabilities came out bitwise equal.

    python -m benchmarks.perf.judging_micro_batch [--model cifar10/ResNet18_GPU_CrossMax ...] [--n 50] \
        [--draws 200] [--micro 32 ...]   (EEE_ZOO_DATA)

The default workload is one final-stage judgement of the zoo preset (one attack's 50 finalists on 200 draws).
Writes ``benchmarks/perf/results/judging_micro_batch.{json,log}``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from benchmarks.perf.log import Log
from eee_zoo.adaptive.worst_case import CPU_MICRO_BATCH, judge

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MODELS = ("cifar10/ResNet18_GPU_CrossMax", "cifar10/ResNet18w16_CPU_CrossMax", "cifar10/Airbench_CPU_CrossMax")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.perf.judging_micro_batch", description=__doc__.split("\n\n")[0]
    )
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
        f"judging in micro-batches vs one pass, CPU, {args.threads} threads, n={args.n}, draws={args.draws}, "
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
        judge(model, x[:2], y[:2], 2, 0)  # warm-up
        for repeat in range(args.repeats):
            for side in sides if repeat % 2 == 0 else reversed(sides):
                start = time.perf_counter()
                outputs[side] = judge(model, x, y, args.draws, seed=1, micro_batch=sides[side])
                times[side].append(time.perf_counter() - start)
        base = times["one pass"]
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
                f"median {statistics.median(ratios):.2f}; hits and probabilities bitwise equal: {equal}")  # fmt: skip
        result["models"][spec] = entry
    log(f"load average after: {os.getloadavg()[0]:.2f}")
    command = "python -m benchmarks.perf.judging_micro_batch " + " ".join(argv if argv is not None else sys.argv[1:])
    result.update({"command": command.strip(), "threads": args.threads, "n": args.n, "draws": args.draws})
    out = Path(args.out)
    log.save(out, "judging_micro_batch", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
