"""Batched EOT against looped EOT on the CPU, through the adaptive attacks' own surrogate, at the zoo's sizes.

An EOT gradient averages E draws of the stochastic stack. pyautoattack's APGD (``eot_iter``) runs E sequential
forward/backward passes of B images; :class:`eee_zoo.adaptive.surrogates.Surrogate` runs one pass of E x B images,
each copy with its own draw. Both sides are timed in the same process, alternating, on the same model and
images; the figure is the ratio looped / batched (mean, std and median over the repeats).

    python -m benchmarks.perf.batched_eot [--models cifar10/Airbench_CPU_CrossMax ...]   (EEE_ZOO_DATA: CIFAR arrays)

Writes ``benchmarks/perf/results/batched_eot.{json,log}``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.perf.log import Log  # noqa: E402
from eee_zoo.adaptive.surrogates import Surrogate  # noqa: E402

RESULTS_DIR = REPO_ROOT / "benchmarks" / "perf" / "results"
DEFAULT_MODELS = ("cifar10/Airbench_CPU_CrossMax", "cifar100/ResNet18w16_CPU_CrossMax_C100")


def eot_gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, draws: int) -> tuple[Callable, Callable]:
    """(looped, batched): one EOT gradient of the mean-of-logits surrogate's cross-entropy, E draws each."""
    single, many = Surrogate(model, head="mean", draws=1), Surrogate(model, head="mean", draws=draws)

    def looped() -> None:  # pyautoattack's way: E passes, gradients summed
        xa = x.clone().requires_grad_(True)
        grad = torch.zeros_like(xa)
        for _ in range(draws):
            grad += torch.autograd.grad(F.cross_entropy(single(xa), y, reduction="sum"), xa)[0]

    def batched() -> None:  # one pass of E x B images
        xa = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(many(xa), y, reduction="sum"), xa)

    return looped, batched


def seconds(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.perf.batched_eot", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--models",
        nargs="+",
        default=list(DEFAULT_MODELS),
        help="DATASET/NAME of zoo checkpoints (default: %(default)s)",
    )
    ap.add_argument("--images", type=int, default=32, help="images per gradient, B (default: %(default)s)")
    ap.add_argument("--draws", type=int, nargs="+", default=[4, 20], help="EOT draws E (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=5, help="alternating timed repeats per side (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    ap.add_argument("--out", default=str(RESULTS_DIR), help="results folder (default: benchmarks/perf/results)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from eee_zoo import load_model
    from eee_zoo.data import load_dataset

    log, rows = Log(), []
    log(f"batched vs looped EOT, CPU, {args.threads} threads, B={args.images}, repeats={args.repeats}, "
        f"load average before: {os.getloadavg()[0]:.2f}")  # fmt: skip
    log(f"{'model':<32} {'E':>3} {'looped s':>9} {'batched s':>9} {'speed-up mean±std':>18} {'median':>7}")
    for spec in args.models:
        dataset, _, name = spec.rpartition("/")
        model = load_model(name, dataset=dataset or "cifar10")
        x, y = load_dataset(dataset or "cifar10", n_examples=args.images)
        for draws in args.draws:
            looped, batched = eot_gradients(model, x, y, draws)
            model.manual_seed(0)
            looped(), batched()  # warm-up
            t_loop, t_batch = [], []
            for _ in range(args.repeats):
                t_loop.append(seconds(looped))
                t_batch.append(seconds(batched))
            ratios = [a / b for a, b in zip(t_loop, t_batch)]
            std = statistics.stdev(ratios) if len(ratios) > 1 else 0.0
            row = {
                "model": name, "draws": draws, "images": args.images, "looped_s": t_loop, "batched_s": t_batch,
                "speedup_mean": statistics.mean(ratios), "speedup_std": std,
                "speedup_median": statistics.median(ratios),
            }  # fmt: skip
            rows.append(row)
            log(f"{name:<32} {draws:>3} {statistics.mean(t_loop):9.3f} {statistics.mean(t_batch):9.3f} "
                f"{row['speedup_mean']:10.2f} ± {row['speedup_std']:.2f} {row['speedup_median']:7.2f}")  # fmt: skip
    log(f"load average after: {os.getloadavg()[0]:.2f}")
    out = Path(args.out)
    command = "python -m benchmarks.perf.batched_eot " + " ".join(argv if argv is not None else sys.argv[1:])
    log.save(out, "batched_eot", {"command": command.strip(), "threads": args.threads, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
