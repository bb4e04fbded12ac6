"""Does the CPU's arithmetic change a zoo model's floats? One forward + backward of a checkpoint on the first test
images, deterministic and stochastic mode (seeded), under the CPU settings torch lets one lower: the thread count and
the instruction set of ATen's, oneDNN's and MKL's kernels. Each setting runs in a fresh process (they are read at
start-up); the default runs twice, to show that the same settings give the same bits.

    python -m benchmarks.reproducibility.cpu_arithmetic [--model Airbench_CPU_CrossMax_FGSM] [--images 100]
                                                                                (EEE_ZOO_DATA: CIFAR arrays)

Writes ``benchmarks/reproducibility/results/cpu_arithmetic.{json,log}``: per setting, the sha256 of the logits and
input gradients and their largest difference from the default run's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.perf.log import Log  # noqa: E402
from eee_zoo._cpu import cpu_arithmetic  # noqa: E402
from eee_zoo._io import atomic_write_json, atomic_write_text  # noqa: E402
from eee_zoo.evaluation.examples import images_sha256  # noqa: E402

RESULTS_DIR = REPO_ROOT / "benchmarks" / "reproducibility" / "results"
_AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
SETTINGS: dict[str, dict[str, str]] = {  # name -> environment variables (read by torch at start-up)
    "default": {},
    "default, again": {},
    "1 thread": {"OMP_NUM_THREADS": "1"},
    "ATen kernels AVX2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "oneDNN kernels AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "MKL kernels AVX2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "all three AVX2": _AVX2,
    "all three AVX2, 1 thread": {**_AVX2, "OMP_NUM_THREADS": "1"},
}
MODES = ("deterministic", "stochastic")


def probe(model_name: str, dataset: str, images: int, out: Path) -> None:
    """Save logits and input gradients (cross-entropy) of both modes, and this process's CPU arithmetic, to ``out``."""
    from eee_zoo import load_model
    from eee_zoo.data import load_dataset

    model = load_model(model_name, dataset=dataset)
    x, y = load_dataset(dataset, n_examples=images)
    tensors = {}
    for mode in MODES:
        model.set_stochastic(mode == "stochastic")
        model.manual_seed(0)
        xx = x.clone().requires_grad_(True)
        logits = model(xx)
        torch.nn.functional.cross_entropy(logits, y).backward()
        tensors[f"{mode}/logits"], tensors[f"{mode}/grad"] = logits.detach(), xx.grad
    torch.save({"tensors": tensors, "arithmetic": cpu_arithmetic()}, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="Airbench_CPU_CrossMax_FGSM")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)  # internal: one setting's process
    args = parser.parse_args(argv)
    if args.probe is not None:
        probe(args.model, args.dataset, args.images, args.probe)
        return 0

    log = Log()
    log(f"{args.model} ({args.dataset}), first {args.images} test images, one forward + backward per mode, seed 0")
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, env in SETTINGS.items():
            out = Path(tmp) / f"{len(runs)}.pt"
            cmd = [sys.executable, "-m", "benchmarks.reproducibility.cpu_arithmetic", "--model", args.model,
                   "--dataset", args.dataset, "--images", str(args.images), "--probe", str(out)]  # fmt: skip
            subprocess.run(cmd, check=True, cwd=REPO_ROOT, env={**os.environ, **env})
            runs[name] = {"environment": env, **torch.load(out)}
    base = runs["default"]["tensors"]
    rows = []
    header = "  ".join(f"{m[:3]}: logits grad (max |diff| of each)" for m in MODES)
    log(f"{'setting':<26} {'ISA':<7} {'threads':>7}  {header}")
    for name, run in runs.items():
        t, a = run["tensors"], run["arithmetic"]
        row = {"setting": name, "environment": run["environment"], "arithmetic": a}
        cells = []
        for key in sorted(t):
            diff = (t[key] - base[key]).abs().max().item()
            row[key] = {"sha256_16": images_sha256(t[key])[:16], "max_abs_diff": diff, "bitwise_equal": diff == 0.0}
        for mode in MODES:
            lo, gr = row[f"{mode}/logits"], row[f"{mode}/grad"]
            diffs = f"{lo['max_abs_diff']:.1e}/{gr['max_abs_diff']:.1e}"
            cells.append(f"{lo['sha256_16'][:8]} {gr['sha256_16'][:8]} ({diffs})")
        log(f"{name:<26} {a['cpu_capability']:<7} {a['threads']:>7}  " + "  ".join(cells))
        rows.append(row)
    arithmetic = runs["default"]["arithmetic"]
    log(f"CPU: {arithmetic['cpu']}")
    payload = {"model": args.model, "dataset": args.dataset, "images": args.images, "seed": 0, "cpu": arithmetic["cpu"],
               "command": "python -m benchmarks.reproducibility.cpu_arithmetic " + " ".join(argv or sys.argv[1:]),
               "settings": rows}  # fmt: skip
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS_DIR / "cpu_arithmetic.json", payload)
    atomic_write_text(RESULTS_DIR / "cpu_arithmetic.log", "\n".join(log.lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
