"""Regenerate the CIFAR-10 test slice shipped inside the package (``eee_zoo/_data/cifar10_test_first500.npz``).

    python -m training.make_shipped_slice [--packs ../shared/data] [--n 500]

Decodes the whole CIFAR-10 test split from the shared lossless WebP pack, checks it against the canonical
SHA-256 (the table in ``eee_zoo.data.DATASETS``), and writes the first ``n`` images (``x`` uint8 NHWC,
``y`` int64) compressed, atomically. Prints the slice's SHA-256 of ``x.tobytes()`` (recorded in
``eee_zoo/data.py`` as ``SHIPPED_SLICE_SPEC``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from eee_zoo._io import atomic_path
from eee_zoo.data import DATASETS, SHIPPED_SLICE, sha256_array
from training.webp_packs import decode_webp

REPO_ROOT = Path(__file__).resolve().parents[1]


def decode_pack(pack: Path, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode the first ``n`` images (all if None) of a shared ``<split>.webp.npz`` pack."""
    with np.load(pack, allow_pickle=False) as d:
        blob, offsets, y = d["webp"], d["offsets"], d["y"]
    n = len(y) if n is None else n
    return decode_webp(blob, offsets[: n + 1]), y[:n].astype(np.int64)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packs", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--out", type=Path, default=SHIPPED_SLICE)
    args = ap.parse_args(argv)
    x, y = decode_pack(args.packs / "cifar10" / "test.webp.npz")
    want = DATASETS["cifar10"].sha256_x["test"]
    if sha256_array(x) != want:
        raise SystemExit("decoded CIFAR-10 test split does not match its canonical SHA-256")
    x, y = np.ascontiguousarray(x[: args.n]), np.ascontiguousarray(y[: args.n])
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, x=x, y=y)
    print(f"{args.out}: x {x.shape} {x.dtype}, y {y.shape} {y.dtype}, {args.out.stat().st_size} bytes")
    print(f"sha256(x.tobytes()) = {sha256_array(x)}")


if __name__ == "__main__":
    main()
