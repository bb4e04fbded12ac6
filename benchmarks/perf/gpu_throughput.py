"""GPU throughput of the zoo's GPU recipes: training steps, attack steps, batched EOT, with the chip's scale.

Measured in one process, each figure against a baseline timed in the same run:

* ``matmul_bf16``: an 8192^3 bf16 matrix product (TFLOP/s), the chip's practical ceiling for scale (an H200
  is quoted at about 790 TFLOP/s dense bf16 on random data).
* ``train``: one training step of the recipe's self-ensemble as ``training.train`` takes it (the stochastic
  stack in fp32 on the GPU, then bf16 autocast and channels_last for the backbone's forward and backward, SGD),
  against the same step in fp32 NCHW (PyTorch defaults): images/s, the ratio, and the model FLOP utilisation
  (3x the forward's FLOPs counted by ``torch.utils.flop_counter``, over the bf16 ceiling measured above).
* ``attack``: forward + backward to the input through the deployed model (stochastic stack, every predictor,
  CrossMax) in strict fp32 (TF32 off), the unit of work of every attack: images/s.
* ``eot``: 20 draws of the stack per gradient as one batch of B x 20 (batched) against 20 sequential passes
  of B (looped, pyautoattack's way): the speed-up.

    python -m benchmarks.perf.gpu_throughput [--recipe training/recipes/gpu_cifar10_resnet18_crossmax.yaml]

Writes ``benchmarks/perf/results/gpu_throughput.{json,log}``. Made for a CUDA device (``--device cpu`` only checks
the script, with ``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
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
from eee_zoo._io import atomic_write_json, atomic_write_text  # noqa: E402
from eee_zoo._precision import strict_fp32  # noqa: E402
from eee_zoo.models import SelfEnsemble  # noqa: E402
from training.recipe import load_recipe  # noqa: E402

RESULTS_DIR = REPO_ROOT / "benchmarks" / "perf" / "results"
DEFAULT_RECIPE = "training/recipes/gpu_cifar10_resnet18_crossmax.yaml"


def timed(fn: Callable[[], None], device: torch.device, warmup: int, reps: int) -> float:
    """Seconds per call (CUDA events around ``reps`` calls after ``warmup``; a wall clock on the CPU)."""
    for _ in range(warmup):
        fn()
    if device.type != "cuda":  # only to check the script on a CPU; its figures are for GPUs
        start_s = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - start_s) / reps
    torch.cuda.synchronize(device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize(device)
    return start.elapsed_time(end) / 1000 / reps


def matmul_tflops(device: torch.device, n: int) -> float:
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    return 2 * n**3 / timed(lambda: a @ b, device, 3, 10) / 1e12


def forward_flops(model: SelfEnsemble, device: torch.device) -> float:
    """FLOPs of one image's forward pass through the stack's output (backbone + heads)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(8, 3, 32, 32, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.predictor_logits(x)
    return counter.get_total_flops() / 8


def train_step_fn(model: SelfEnsemble, batch: int, fast: bool, device: torch.device) -> Callable[[], None]:
    """A stage-1 step: stack (fp32) -> backbone -> label-smoothed CE -> SGD step, as training.train does it."""
    model.train()
    opt = torch.optim.SGD(model.backbone.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randint(0, 256, (batch, 3, 32, 32), device=device, dtype=torch.uint8)
    y = torch.randint(0, model.num_classes, (batch,), device=device)
    if fast:
        model.to(memory_format=torch.channels_last)

    def step() -> None:
        stacked = model.stack(x.float() / 255, generator=gen)
        if fast:
            stacked = stacked.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
            loss = F.cross_entropy(model.backbone(stacked), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def attack_step_fn(model: SelfEnsemble, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        xa = x.clone().requires_grad_(True)
        loss = F.cross_entropy(model(xa), y)
        torch.autograd.grad(loss, xa)

    return step


def eot_fns(model: SelfEnsemble, x: torch.Tensor, y: torch.Tensor, draws: int) -> tuple[Callable, Callable]:
    def looped() -> None:
        xa = x.clone().requires_grad_(True)
        grad = torch.zeros_like(xa)
        for _ in range(draws):
            grad += torch.autograd.grad(F.cross_entropy(model(xa), y), xa)[0]

    def batched() -> None:
        xa = x.clone().requires_grad_(True)
        logits = model(xa.repeat_interleave(draws, 0))  # each copy its own draw of the stack
        loss = F.cross_entropy(logits, y.repeat_interleave(draws, 0), reduction="sum") / len(y)
        torch.autograd.grad(loss, xa)

    return looped, batched


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.perf.gpu_throughput", description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default=DEFAULT_RECIPE, help=f"recipe whose model and batch to use ({DEFAULT_RECIPE})")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=None, help="training batch (default: the recipe's)")
    ap.add_argument("--attack-batch", type=int, default=500)
    ap.add_argument("--eot-batch", type=int, default=50, help="images per EOT comparison (x20 draws batched)")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: CUDA is not available")
    log = Log()
    recipe = load_recipe(REPO_ROOT / args.recipe)
    torch.manual_seed(0)
    result: dict = {
        "command": f"python -m benchmarks.perf.gpu_throughput --recipe {args.recipe}",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "recipe": args.recipe,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    log(f"GPU throughput on {result['device']} (torch {torch.__version__}, CUDA {torch.version.cuda})")
    peak = matmul_tflops(device, 8192 if device.type == "cuda" else 512)
    result["matmul_bf16_tflops"] = round(peak, 1)
    log(f"bf16 matmul 8192^3: {peak:.0f} TFLOP/s (the ceiling used for utilisation below)")

    batch = args.batch or recipe.backbone_stage.batch_size
    train = {}
    for fast in (False, True):
        model = SelfEnsemble.from_config(recipe.model_config()).to(device)
        seconds = timed(train_step_fn(model, batch, fast, device), device, warmup=5, reps=20)
        train["bf16_channels_last" if fast else "fp32_nchw"] = batch / seconds
    flops = forward_flops(SelfEnsemble.from_config(recipe.model_config()).to(device).eval(), device)
    mfu = 3 * flops * train["bf16_channels_last"] / (peak * 1e12)
    result["train"] = {
        "batch": batch,
        "images_per_s": {k: round(v) for k, v in train.items()},
        "speedup_vs_fp32_nchw": round(train["bf16_channels_last"] / train["fp32_nchw"], 2),
        "forward_gflops_per_image": round(flops / 1e9, 3),
        "model_flop_utilisation": round(mfu, 4),
    }
    log(
        f"train step ({recipe.name}, batch {batch}): fp32 NCHW {train['fp32_nchw']:.0f} img/s, bf16 + "
        f"channels_last {train['bf16_channels_last']:.0f} img/s ({result['train']['speedup_vs_fp32_nchw']}x); "
        f"{flops / 1e9:.2f} GFLOP/image forward, utilisation {100 * mfu:.1f} % of the measured bf16 ceiling"
    )
    epoch_s = recipe.data.n_train or 50000
    log(f"  -> one epoch of 50000 images: {epoch_s / train['bf16_channels_last']:.1f} s")

    model = SelfEnsemble.from_config(recipe.model_config()).to(device).eval()
    with strict_fp32():
        x = torch.rand(args.attack_batch, 3, 32, 32, device=device)
        y = torch.randint(0, model.num_classes, (args.attack_batch,), device=device)
        seconds = timed(attack_step_fn(model, x, y), device, warmup=3, reps=10)
        looped, batched = eot_fns(model, x[: args.eot_batch], y[: args.eot_batch], 20)
        t_looped = timed(looped, device, warmup=1, reps=3)
        t_batched = timed(batched, device, warmup=1, reps=3)
    result["attack_fp32"] = {
        "batch": args.attack_batch,
        "grad_images_per_s": round(args.attack_batch / seconds),
        "eot20_images": args.eot_batch,
        "eot20_looped_s": round(t_looped, 4),
        "eot20_batched_s": round(t_batched, 4),
        "eot20_batched_speedup": round(t_looped / t_batched, 2),
    }
    log(
        f"attack step (fp32, TF32 off, deployed model, batch {args.attack_batch}): "
        f"{args.attack_batch / seconds:.0f} input gradients/s"
    )
    log(
        f"EOT 20 draws on {args.eot_batch} images: looped {1000 * t_looped:.1f} ms, batched "
        f"{1000 * t_batched:.1f} ms ({t_looped / t_batched:.2f}x)"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "gpu_throughput.json", result)
    atomic_write_text(args.out / "gpu_throughput.log", "\n".join(log.lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
