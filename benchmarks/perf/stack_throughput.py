"""Forward+backward throughput of the vectorised multi-resolution stack against the reference algorithm.

Measured in one run, on the CPU, with alternating order to spread machine drift over both sides:

* ``stack``: the stack alone, gradient w.r.t. the input images (what an attack differentiates through);
* ``ensemble_train``: a whole ``SelfEnsemble`` training step (every predictor's cross-entropy, gradients
  w.r.t. the weights; the stack only runs forward there);
* ``ensemble_attack``: a whole ``SelfEnsemble`` in eval mode, gradient of the CrossMax output w.r.t. the input.

The ``SelfEnsemble`` sides share one backbone and heads (airbench widths 32/64/128, taps stem/block1/block2
plus the backbone head, flattened heads as in the paper); only the stack differs:
``MultiResolutionStack()`` vs ``ReferenceStack()`` (benchmarks/perf/reference_stack.py).

    python -m benchmarks.perf.stack_throughput            # from the repository root; writes results/

Targets (issue 2, section 5; 2-core CPU, batch 128): stack >= 10x the reference, whole self-ensemble >= 2x.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # also runnable as a file: python benchmarks/perf/stack_throughput.py
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.perf.log import Log  # noqa: E402
from benchmarks.perf.reference_stack import ReferenceStack  # noqa: E402
from eee_zoo._io import atomic_write_json, atomic_write_text  # noqa: E402
from eee_zoo.models import MultiResolutionStack, SelfEnsemble  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGETS = {"stack": 10.0, "ensemble_train": 2.0, "ensemble_attack": 2.0}
ENSEMBLE_CONFIG: dict[str, Any] = {
    "num_classes": 10,
    "backbone": {"name": "airbench", "kwargs": {"widths": [32, 64, 128], "stem_width": 32}},
    "taps": ["stem", "block1", "block2"],
    "head_pool": None,
    "include_backbone_head": True,
    "aggregator": "crossmax",
    "k": 3,
}


class PrecomputedStack(torch.nn.Module):
    """Stands in for a stack with a fixed, precomputed output: times the rest of the model with a free stack."""

    def __init__(self, stacked: torch.Tensor) -> None:
        super().__init__()
        self.stacked = stacked
        self.out_channels = stacked.shape[1]
        self.stochastic = True

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.stacked


def make_cases(batch_size: int) -> dict[str, dict[str, Callable[[], None]]]:
    """``{case: {side: step}}``; each step is one forward+backward on a fresh copy of the batch.

    Sides: ``vectorised`` (MultiResolutionStack), ``reference`` (ReferenceStack) and, for the whole-model
    cases, ``free_stack`` (the same model on a precomputed stack: the floor that no stack can beat).
    """
    torch.manual_seed(0)  # data and weight init only
    x = torch.rand(batch_size, 3, 32, 32)
    y = torch.randint(0, 10, (batch_size,))

    def stack_step(stack: torch.nn.Module) -> Callable[[], None]:
        def step() -> None:
            inp = x.clone().requires_grad_()
            stack(inp).sum().backward()

        return step

    vec_model = SelfEnsemble.from_config(copy.deepcopy(ENSEMBLE_CONFIG))
    ref_model = copy.deepcopy(vec_model)  # the same backbone and heads (same weights), only the stack differs
    ref_model.stack = ReferenceStack()
    free_model = copy.deepcopy(vec_model)
    free_model.stack = PrecomputedStack(MultiResolutionStack()(x).requires_grad_())

    def train_step(model: SelfEnsemble) -> Callable[[], None]:
        def step() -> None:
            model.train()
            model.zero_grad(set_to_none=True)
            logits = model.predictor_logits(x)  # [B, P, C]: every predictor trained on the labels
            loss = F.cross_entropy(logits.flatten(0, 1), y.repeat_interleave(logits.shape[1]))
            loss.backward()

        return step

    def attack_step(model: SelfEnsemble) -> Callable[[], None]:
        def step() -> None:
            model.eval()
            inp = x.clone().requires_grad_()
            F.cross_entropy(model(inp), y).backward()

        return step

    return {
        "stack": {"vectorised": stack_step(MultiResolutionStack()), "reference": stack_step(ReferenceStack())},
        "ensemble_train": {
            "vectorised": train_step(vec_model),
            "reference": train_step(ref_model),
            "free_stack": train_step(free_model),
        },
        "ensemble_attack": {
            "vectorised": attack_step(vec_model),
            "reference": attack_step(ref_model),
            "free_stack": attack_step(free_model),
        },
    }


def time_steps(step: Callable[[], None], iters: int) -> float:
    start = time.perf_counter()
    for _ in range(iters):
        step()
    return time.perf_counter() - start


def summarise(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "median": statistics.median(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=8, help="timed repeats per side (alternating order)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per side before timing")
    parser.add_argument("--stack-iters", type=int, default=5, help="steps per timed repeat, stack case")
    parser.add_argument("--ensemble-iters", type=int, default=2, help="steps per timed repeat, ensemble cases")
    parser.add_argument("--cases", nargs="+", choices=sorted(TARGETS), default=list(TARGETS))
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--no-write", action="store_true", help="print only (smoke runs)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    np.random.seed(0)  # the reference stack draws from numpy's global RNG
    log = Log()
    load_start = os.getloadavg()
    command = " ".join(["python -m benchmarks.perf.stack_throughput", *(sys.argv[1:] if argv is None else argv)])
    log(f"# {command}")
    log(f"# {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}  torch {torch.__version__}")
    log(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads {args.threads}")
    log(f"# load average at start (1/5/15 min): {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}")
    if load_start[0] >= 1.0:
        log("# NOTE: the machine was busy at start (other processes share the CPU): absolute numbers are low")
        log("#       and noisy; the alternating order keeps the ratios comparable.")

    cases = make_cases(args.batch_size)
    results: dict[str, Any] = {}
    for case in args.cases:
        steps = cases[case]
        iters = args.stack_iters if case == "stack" else args.ensemble_iters
        for step in steps.values():
            for _ in range(args.warmup):
                step()
        rates: dict[str, list[float]] = {side: [] for side in steps}
        sides = list(steps)
        for rep in range(args.repeats):
            for side in sides[rep % len(sides) :] + sides[: rep % len(sides)]:  # rotate the order every repeat
                rates[side].append(args.batch_size * iters / time_steps(steps[side], iters))
        ratios = [v / r for v, r in zip(rates["vectorised"], rates["reference"])]
        mean = {side: statistics.fmean(values) for side, values in rates.items()}
        results[case] = {
            "images_per_s": {side: summarise(values) for side, values in rates.items()},
            "speedup": summarise(ratios),
            "speedup_of_means": mean["vectorised"] / mean["reference"],
            "target": TARGETS[case],
            "target_met": statistics.median(ratios) >= TARGETS[case],  # median: robust to bursts of contention
            "steps_per_repeat": iters,
            "raw_images_per_s": rates,
        }
        if "free_stack" in mean:
            # Amdahl: the best any stack could do is the model with a free stack.
            results[case]["max_speedup_with_free_stack"] = mean["free_stack"] / mean["reference"]
            results[case]["reference_stack_share_of_step"] = 1 - mean["reference"] / mean["free_stack"]
            results[case]["vectorised_stack_share_of_step"] = 1 - mean["vectorised"] / mean["free_stack"]
        log(f"  {case}: done")
    load_end = os.getloadavg()

    log("")
    log(f"batch {args.batch_size}, {args.threads} threads, {args.repeats} repeats per side (mean ± std, images/s)")
    header = (
        f"{'case':<16} {'vectorised':>16} {'reference':>16} {'free stack':>16} {'speedup':>15} {'median':>7} "
        f"{'bound':>7} {'target':>7}  met"
    )
    log(header)
    log("-" * len(header))
    for case, res in results.items():
        rate = res["images_per_s"]
        cells = [
            f"{rate[side]['mean']:>7.0f} ± {rate[side]['std']:<6.0f}" if side in rate else f"{'-':>16}"
            for side in ("vectorised", "reference", "free_stack")
        ]
        s = res["speedup"]
        bound = f"{res['max_speedup_with_free_stack']:>6.2f}x" if "max_speedup_with_free_stack" in res else f"{'-':>7}"
        log(
            f"{case:<16} {' '.join(cells)} {s['mean']:>7.2f}x ± {s['std']:<4.2f} {s['median']:>6.2f}x {bound} "
            f"{res['target']:>6.0f}x  "
            f"{'yes' if res['target_met'] else 'NO'}"
        )
    log("speedup = vectorised / reference per repeat pair (mean ± std, median; 'met' uses the median);")
    log("bound = free stack / reference: the most any stack could give in that case (same backbone and heads)")
    log("")
    log(f"# load average at end (1/5/15 min): {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")

    if not args.no_write:
        payload = {
            "command": command,
            "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "threads": args.threads,
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "load_average_start": list(load_start),
            "load_average_end": list(load_end),
            "ensemble_config": ENSEMBLE_CONFIG,
            "stack_config": MultiResolutionStack().config(),
            "results": results,
        }
        args.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out_dir / "stack_throughput.json", payload)
        atomic_write_text(args.out_dir / "stack_throughput.log", "\n".join(log.lines) + "\n")
        print(f"wrote {args.out_dir / 'stack_throughput.json'} and stack_throughput.log")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
