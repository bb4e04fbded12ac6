"""Render what the multi-resolution stack does to a few CIFAR-10 test images (the README's figure).

    python -m benchmarks.figures.stack_figure            # -> benchmarks/figures/stack.png

Rows: images 0..3 of the CIFAR-10 test set (the slice embedded in the package). Columns: the original,
then the four copies of the stochastic stack (variant "code", seed 0), then the deterministic mode's copies.
"""

from __future__ import annotations

import argparse
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from eee_zoo._io import atomic_path
from eee_zoo.models import MultiResolutionStack

SCALE = 4  # nearest-neighbour zoom so 32 px images are visible
GAP = 4


def tile(rows: list[list[np.ndarray]]) -> Image.Image:
    side = 32 * SCALE
    height = len(rows) * (side + GAP) + GAP
    width = len(rows[0]) * (side + GAP) + GAP
    canvas = np.full((height, width, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            big = img.repeat(SCALE, 0).repeat(SCALE, 1)
            y, x = GAP + i * (side + GAP), GAP + j * (side + GAP)
            canvas[y : y + side, x : x + side] = big
    return Image.fromarray(canvas)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("stack.png"))
    parser.add_argument("--n-images", type=int, default=4)
    args = parser.parse_args(argv)

    with np.load(files("eee_zoo") / "_data" / "cifar10_test_first500.npz") as data:
        x_uint8 = data["x"][: args.n_images]
    x = torch.from_numpy(x_uint8).permute(0, 3, 1, 2).float() / 255
    stochastic = MultiResolutionStack(seed=0)(x)
    deterministic = MultiResolutionStack(stochastic=False)(x)

    def to_hwc(t: torch.Tensor) -> np.ndarray:
        return (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)

    rows = []
    for i in range(len(x)):
        row = [x_uint8[i]]
        for stack in (stochastic, deterministic):
            row += [to_hwc(stack[i, 3 * r : 3 * r + 3]) for r in range(stack.shape[1] // 3)]
        rows.append(row)
    with atomic_path(args.out) as tmp:
        tile(rows).save(tmp, format="PNG")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
