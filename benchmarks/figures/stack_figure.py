"""Render what the multi-resolution stack does to a few CIFAR-10 test images (the README's figure).

    python -m benchmarks.figures.stack_figure            # -> benchmarks/figures/stack.png

Rows: images 0..3 of the CIFAR-10 test set (the slice embedded in the package). Columns: the original,
then the four copies of the stochastic stack (variant "code", seed 0), then the deterministic mode's copies.
The labels are drawn into the image (PIL's built-in font), so the PNG reads on its own.
"""

from __future__ import annotations

import argparse
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from eee_zoo._io import atomic_path
from eee_zoo.models import MultiResolutionStack

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SCALE = 4  # nearest-neighbour zoom so 32 px images are visible
GAP = 4
FONT_SIZE = 15
LEFT = 118  # room for the row labels
TOP = 54  # room for the group and column labels
INK = (20, 20, 20)
RULE = (150, 150, 150)


def tile(
    rows: list[list[np.ndarray]],
    *,
    row_labels: list[str] | None = None,
    column_labels: list[str] | None = None,
    groups: list[tuple[str, int, int]] | None = None,
) -> Image.Image:
    """The images on a grid; with labels, row labels on the left and column labels (and column groups
    ``(label, first column, last column)``) above, drawn into the image."""
    side = 32 * SCALE
    labelled = bool(row_labels or column_labels or groups)
    left, top = (LEFT, TOP) if labelled else (0, 0)
    height = top + len(rows) * (side + GAP) + GAP
    width = left + len(rows[0]) * (side + GAP) + GAP
    canvas = np.full((height, width, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            big = img.repeat(SCALE, 0).repeat(SCALE, 1)
            y, x = top + GAP + i * (side + GAP), left + GAP + j * (side + GAP)
            canvas[y : y + side, x : x + side] = big
    image = Image.fromarray(canvas)
    if not labelled:
        return image
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=FONT_SIZE)

    def column_x(j: int) -> int:
        return left + GAP + j * (side + GAP)

    for label, first, last in groups or []:
        x0, x1 = column_x(first), column_x(last) + side
        draw.text(((x0 + x1) / 2, 4), label, fill=INK, font=font, anchor="ma")
        draw.line([(x0, 24), (x1, 24)], fill=RULE, width=1)
    for j, label in enumerate(column_labels or []):
        draw.text((column_x(j) + side / 2, top - 4), label, fill=INK, font=font, anchor="md")
    for i, label in enumerate(row_labels or []):
        y = top + GAP + i * (side + GAP) + side / 2
        for k, part in enumerate(label.split("\n")):
            draw.text((left - 8, y + (k - (label.count("\n")) / 2) * (FONT_SIZE + 3)), part, fill=INK, font=font,
                      anchor="rm")  # fmt: skip
    return image


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("stack.png"))
    parser.add_argument("--n-images", type=int, default=4)
    args = parser.parse_args(argv)

    with np.load(files("eee_zoo") / "_data" / "cifar10_test_first500.npz") as data:
        x_uint8 = data["x"][: args.n_images]
    x = torch.from_numpy(x_uint8).permute(0, 3, 1, 2).float() / 255
    stochastic_stack = MultiResolutionStack(seed=0)
    stochastic = stochastic_stack(x)
    deterministic = MultiResolutionStack(stochastic=False)(x)

    def to_hwc(t: torch.Tensor) -> np.ndarray:
        return (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)

    rows = []
    for i in range(len(x)):
        row = [x_uint8[i]]
        for stack in (stochastic, deterministic):
            row += [to_hwc(stack[i, 3 * r : 3 * r + 3]) for r in range(stack.shape[1] // 3)]
        rows.append(row)
    with np.load(files("eee_zoo") / "_data" / "cifar10_test_first500.npz") as data:
        labels = data["y"][: args.n_images]
    resolutions = list(stochastic_stack.resolutions)
    copies = len(resolutions)
    figure = tile(
        rows,
        row_labels=[f"test image {i}\n{CIFAR10_CLASSES[int(c)]}" for i, c in enumerate(labels)],
        column_labels=["original"] + [f"{r} px" for r in resolutions] * 2,
        groups=[
            ('stochastic stack (variant "code", seed 0)', 1, copies),
            ("deterministic mode (no jitter, noise at its mean)", copies + 1, 2 * copies),
        ],
    )
    with atomic_path(args.out) as tmp:
        figure.save(tmp, format="PNG")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
