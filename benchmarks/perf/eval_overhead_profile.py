"""Where the time of ``eval_overhead`` goes: cProfile of both sides, so its ratio can be read.

    python -m benchmarks.perf.eval_overhead_profile [--version standard] [--n 48] [--repeats 2]

The same model, images, version and seed as :mod:`benchmarks.perf.eval_overhead` (its ``train_model``,
``run_direct`` and ``run_ours``), one thread, each side profiled ``--repeats`` times, alternating. Reported per run:
CPU time, the *zoo's own* time (tottime of every function in ``eee_zoo/`` outside the model, i.e. the evaluation
driver, its progress hooks, state and checks: what ``eee_zoo.benchmark`` adds around AutoAttack), and per pair the
functions whose tottime differs most. Where the forward passes are identical (``eval_overhead`` checks that), a
difference that sits in torch's kernels (``conv2d``, ``run_backward``, ...) is the same work running at another
speed, not extra work. Results: ``results/eval_overhead_profile.log``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.perf.eval_overhead import run_direct, run_ours, train_model  # noqa: E402
from eee_zoo._io import atomic_write_text  # noqa: E402

OURS = ("eee_zoo/evaluation/", "eee_zoo/_progress.py", "eee_zoo/_io.py", "eee_zoo/_precision.py")


def _key(entry: tuple[str, int, str]) -> str:
    path, line, name = entry
    short = path.split("site-packages/")[-1]
    short = short.split(str(REPO_ROOT) + "/")[-1]
    return f"{short}:{line}({name})"


def profile(run, *args) -> tuple[float, dict[str, float]]:
    """CPU seconds of ``run(*args)`` and every function's tottime."""
    prof = cProfile.Profile()
    start = time.process_time()
    prof.runcall(run, *args)
    seconds = time.process_time() - start
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    return seconds, {_key(k): v[2] for k, v in stats.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf.eval_overhead_profile", description=__doc__)
    parser.add_argument("--version", default="standard", choices=["standard", "rand"])
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "eval_overhead_profile.log"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    lines: list[str] = []

    def log(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    log(f"python -m benchmarks.perf.eval_overhead_profile {' '.join(argv if argv is not None else sys.argv[1:])}")
    model = train_model()
    model.set_stochastic(args.version == "rand")
    call = (model, args.n, args.version, args.seed, args.batch_size)
    run_direct(*call), run_ours(*call)  # untimed warm-up of both sides
    pairs = []
    for rep in range(args.repeats):
        order = ["direct", "eee_zoo"] if rep % 2 == 0 else ["eee_zoo", "direct"]
        pair = {}
        for side in order:
            seconds, tottime = profile(run_direct if side == "direct" else run_ours, *call)
            own = sum(t for k, t in tottime.items() if k.startswith(OURS))
            pair[side] = (seconds, tottime)
            log(f"{args.version} repeat {rep} {side:>7}: {seconds:7.2f} s CPU (profiled); eee_zoo's own {own:6.3f} s")
        pairs.append(pair)
    for rep, pair in enumerate(pairs):
        (d_s, d), (z_s, z) = pair["direct"], pair["eee_zoo"]
        own = sum(t for k, t in z.items() if k.startswith(OURS))
        log(f"--- repeat {rep}: eee_zoo - direct {z_s - d_s:+.2f} s ({z_s / d_s - 1:+.2%}); eee_zoo's own code "
            f"{own:.3f} s ({own / d_s:.2%} of direct)")  # fmt: skip
        diff = sorted(((z.get(k, 0.0) - d.get(k, 0.0), k) for k in set(d) | set(z)), reverse=True)
        for delta, k in diff[:10]:
            log(f"  {delta:+7.3f} s  {d.get(k, 0.0):7.3f} -> {z.get(k, 0.0):7.3f}  {k}")
        log("  ... largest decreases:")
        for delta, k in diff[-4:]:
            log(f"  {delta:+7.3f} s  {d.get(k, 0.0):7.3f} -> {z.get(k, 0.0):7.3f}  {k}")
    atomic_write_text(Path(args.out), "\n".join(lines) + "\n")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
