"""Move lossless CIFAR packs to a GPU machine in parts that fit its per-call transfer limit.

The device machine receives only the working tree plus carried paths (64 MiB per call), and a CIFAR training
pack (lossless WebP images in one ``.webp.npz``: ``webp`` blob, ``offsets`` (N+1), ``y``) is ~85 MB. So the
packs are cut into contiguous slices of images (``split``), carried over consecutive calls while the machine is
warm, decoded there in parallel (``install``), and once a split is complete it is assembled into the plain
``<dataset>/<split>.npz`` arrays that :mod:`eee_zoo.data` reads, after checking its canonical SHA-256.

    python -m training.gpu.data_parts split PACKS_DIR --dataset cifar10 --out .gpu/data --budget-mib 56
    python -m training.gpu.data_parts install .gpu/data/call1 --work /root/eee_gpu/data     # on the machine
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from eee_zoo._io import atomic_path
from eee_zoo.data import DATASETS, sha256_array
from training.webp_packs import decode_webp

__all__ = ["assemble", "decode_part", "install", "split_packs"]

logger = logging.getLogger(__name__)
PART_GLOB = "*.part.npz"
PER_IMAGE_BYTES = 16  # an int64 offset and an int64 label beside each image's WebP bytes
PART_HEADER_BYTES = 4096  # npz/zip headers of one part file, generously


def split_packs(
    packs_dir: Path, datasets: list[str], out_dir: Path, budget_bytes: int, splits: tuple[str, ...] = ("test", "train")
) -> list[Path]:
    """Cut ``<packs_dir>/<dataset>/<split>.webp.npz`` into parts, filling ``out_dir/call1``, ``call2``, ...

    Each call folder holds at most ``budget_bytes`` of parts. The test split comes first: with it alone on the
    machine, the first call can already evaluate checkpoints trained in earlier leases while the training
    split is still on its way. Returns the call folders.
    """
    calls: list[list[tuple[str, str, int, int, np.lib.npyio.NpzFile]]] = [[]]
    used = 0
    for dataset in datasets:
        for split in splits:
            pack = np.load(packs_dir / dataset / f"{split}.webp.npz")
            n, start = len(pack["y"]), 0
            # cumulative bytes of a part holding images [0, i): WebP bytes + an offset and a label per image
            cost = pack["offsets"] + PER_IMAGE_BYTES * np.arange(n + 1)
            while start < n:
                room = budget_bytes - used - PART_HEADER_BYTES
                end = min(int(np.searchsorted(cost, cost[start] + room, side="right")) - 1, n)
                if end <= start:
                    calls.append([])
                    used = 0
                    continue
                calls[-1].append((dataset, split, start, end, pack))
                used += int(cost[end] - cost[start]) + PART_HEADER_BYTES
                start = end
    folders = []
    for i, parts in enumerate(calls, 1):
        folder = out_dir / f"call{i}"
        folder.mkdir(parents=True, exist_ok=True)
        for dataset, split, start, end, pack in parts:
            offsets = pack["offsets"]
            target = folder / f"{dataset}_{split}_{start:05d}-{end:05d}.part.npz"
            with atomic_path(target) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(
                        fh,
                        dataset=np.array(dataset),
                        split=np.array(split),
                        start=np.array(start),
                        total=np.array(len(pack["y"])),
                        webp=pack["webp"][offsets[start] : offsets[end]],
                        offsets=offsets[start : end + 1] - offsets[start],
                        y=pack["y"][start:end],
                    )
            logger.info("%s: images %d..%d of %s/%s", target, start, end, dataset, split)
        folders.append(folder)
    return folders


def decode_part(part: Path, workers: int) -> tuple[str, str, int, int, np.ndarray, np.ndarray]:
    """Decode one part in ``workers`` processes: ``(dataset, split, start, total, x uint8 NHWC, y)``."""
    d = np.load(part)
    blob, offsets, y = d["webp"].tobytes(), d["offsets"], d["y"]
    bounds = np.linspace(0, len(y), workers + 1).astype(int)
    chunks = [(blob[offsets[a] : offsets[b]], offsets[a : b + 1] - offsets[a]) for a, b in zip(bounds, bounds[1:])]
    with ProcessPoolExecutor(workers) as pool:
        x = np.concatenate(list(pool.map(decode_webp, *zip(*chunks))))
    return str(d["dataset"]), str(d["split"]), int(d["start"]), int(d["total"]), x, y


def install(carry_dir: Path, work_dir: Path, workers: int | None = None) -> list[Path]:
    """Decode every part in ``carry_dir`` into ``work_dir/parts``; assemble the splits that are complete.

    Returns the assembled ``<dataset>/<split>.npz`` files (new or already there).
    """
    workers = workers or min(16, os.cpu_count() or 1)
    parts_dir = work_dir / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    for part in sorted(carry_dir.glob(PART_GLOB)):
        target = parts_dir / part.name
        if target.exists():
            continue
        dataset, split, start, total, x, y = decode_part(part, workers)
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, dataset=np.array(dataset), split=np.array(split), start=np.array(start),
                         total=np.array(total), x=x, y=y)  # fmt: skip
        logger.info("decoded %s: %d images of %s/%s from %d", part.name, len(y), dataset, split, start)
    return assemble(parts_dir, work_dir)


def assemble(parts_dir: Path, work_dir: Path) -> list[Path]:
    """Concatenate decoded parts of each split that covers all its images; check the canonical SHA-256."""
    groups: dict[tuple[str, str], list[tuple[int, Path]]] = {}
    totals: dict[tuple[str, str], int] = {}
    for part in sorted(parts_dir.glob(PART_GLOB)):
        with np.load(part) as d:
            key = (str(d["dataset"]), str(d["split"]))
            groups.setdefault(key, []).append((int(d["start"]), part))
            totals[key] = int(d["total"])
    done = []
    for (dataset, split), parts in sorted(groups.items()):
        target = work_dir / dataset / f"{split}.npz"
        if target.exists():
            done.append(target)
            continue
        arrays = [np.load(p) for _, p in sorted(parts)]
        starts = [int(a["start"]) for a in arrays]
        ends = [s + len(a["y"]) for s, a in zip(starts, arrays)]
        if starts[0] != 0 or ends[-1] != totals[(dataset, split)] or any(e != s for e, s in zip(ends, starts[1:])):
            logger.info("%s/%s: images %s of %d so far", dataset, split, list(zip(starts, ends)), ends[-1])
            continue
        x = np.concatenate([a["x"] for a in arrays])
        y = np.concatenate([a["y"] for a in arrays])
        want = DATASETS[dataset].sha256_x[split]
        if sha256_array(x) != want:
            raise ValueError(f"{dataset}/{split}: assembled images differ from the canonical ones (sha256)")
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, x=x, y=y)
        logger.info("assembled %s: %d images, sha256 verified", target, len(y))
        done.append(target)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.gpu.data_parts", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("split", help="cut lossless packs into per-call folders (on this machine)")
    s.add_argument("packs", type=Path, help="folder holding <dataset>/<split>.webp.npz")
    s.add_argument("--dataset", action="append", choices=sorted(DATASETS), required=True)
    s.add_argument("--out", type=Path, default=Path(".gpu/data"))
    s.add_argument("--budget-mib", type=float, default=56.0, help="bytes of parts per call (default: 56 MiB)")
    i = sub.add_parser("install", help="decode carried parts and assemble complete splits (on the GPU machine)")
    i.add_argument("carry", type=Path, help="a call folder written by split")
    i.add_argument("--work", type=Path, required=True, help="data root to fill (<work>/<dataset>/<split>.npz)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    if args.command == "split":
        for d in args.dataset:
            if not (args.packs / d).is_dir():
                parser.error(f"{args.packs / d} does not exist (expected {d}/train.webp.npz and {d}/test.webp.npz)")
        for folder in split_packs(args.packs, args.dataset, args.out, int(args.budget_mib * 2**20)):
            size = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
            print(f"{folder}: {size:.1f} MiB")
    else:
        if not args.carry.is_dir():
            parser.error(f"{args.carry} does not exist")
        for path in install(args.carry, args.work):
            print(f"ready: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
