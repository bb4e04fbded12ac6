"""The multi-resolution input stack of "Ensemble everything everywhere" (arXiv:2408.05446, Sec. 3.1).

Each image becomes ``len(resolutions)`` jittered, contrast- and colour-varied, noisy copies that were
down-sampled to ``r`` px and up-sampled back, concatenated on channels: ``[B, 3, H, W] -> [B, 3R, H, W]``.

Two variants are selectable because the authors' published replication code differs from the paper:

``variant="code"`` (default; what the published checkpoints were trained with)
    noise is ``amplitude * U[0, 1)`` (not Gaussian, so it brightens on average), and the contrast factor
    is overwritten by the colour-amount draw: both are the *same* draw from 100 evenly spaced values in
    [0.5, 1.0], so the intended contrast range 0.7..1.5 is never used.
``variant="paper"``
    noise is Gaussian with standard deviation ``amplitude``; contrast is drawn from [0.7, 1.5] and the
    colour amount from [0.5, 1.0] independently (each from 100 evenly spaced values, as in the code).

Contrast follows ``torchvision.transforms.functional.adjust_contrast`` (blend towards the mean of the
grayscale image, clamp to [0, 1]); colour amount blends towards the per-pixel channel mean.

Everything is vectorised over the batch (one gather does every image's roll; bicubic resampling is two
small matmuls), and all randomness comes from a ``torch.Generator`` owned by the module (or passed to
``forward``), never from global RNG state. ``stochastic=False`` gives a deterministic function of the
input: no jitter, contrast and colour amount 1, and each noise term replaced by its expectation
(``amplitude / 2`` for the code variant, 0 for the paper variant), so the deterministic input stays close
to the training distribution.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["MultiResolutionStack", "VARIANTS"]

VARIANTS = ("code", "paper")
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale
_GRID_POINTS = 100  # the reference draws factors from np.linspace(lo, hi, 100)


class MultiResolutionStack(nn.Module):
    """Map images ``[B, 3, H, W]`` in [0, 1] to a stack ``[B, 3 * len(resolutions), H, W]`` in [0, 1]."""

    def __init__(
        self,
        resolutions: Sequence[int] = (32, 16, 8, 4),
        *,
        jitter: int = 3,
        down_noise: float = 0.2,
        up_noise: float = 0.2,
        contrast_range: tuple[float, float] = (0.7, 1.5),
        color_range: tuple[float, float] = (0.5, 1.0),
        variant: str = "code",
        stochastic: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        resolutions = tuple(int(r) for r in resolutions)
        if not resolutions or any(r < 1 for r in resolutions):
            raise ValueError(f"resolutions must be a non-empty sequence of positive ints, got {resolutions}")
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
        if jitter < 0 or down_noise < 0 or up_noise < 0:
            raise ValueError("jitter, down_noise and up_noise must be >= 0")
        for name, (lo, hi) in (("contrast_range", contrast_range), ("color_range", color_range)):
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must satisfy 0 <= low <= high, got {(lo, hi)}")
        self.resolutions = resolutions
        self.jitter = int(jitter)
        self.down_noise = float(down_noise)
        self.up_noise = float(up_noise)
        self.contrast_range = (float(contrast_range[0]), float(contrast_range[1]))
        self.color_range = (float(color_range[0]), float(color_range[1]))
        self.variant = variant
        self.stochastic = bool(stochastic)
        self.seed = int(seed)
        self._generators: dict[torch.device, torch.Generator] = {}

    # ----------------------------------------------------------------------------------- config / rng
    @property
    def out_channels(self) -> int:
        return 3 * len(self.resolutions)

    def config(self) -> dict[str, Any]:
        return {
            "resolutions": list(self.resolutions),
            "jitter": self.jitter,
            "down_noise": self.down_noise,
            "up_noise": self.up_noise,
            "contrast_range": list(self.contrast_range),
            "color_range": list(self.color_range),
            "variant": self.variant,
            "stochastic": self.stochastic,
            "seed": self.seed,
        }

    @property
    def is_random(self) -> bool:
        """Whether the stochastic mode draws anything. False for the identity stack of a single-resolution baseline
        (no jitter, no noise, one-point colour and contrast ranges): every draw is then the same function."""
        ranges = [self.color_range] if self.variant == "code" else [self.color_range, self.contrast_range]
        return self.jitter > 0 or self.down_noise > 0 or self.up_noise > 0 or any(lo != hi for lo, hi in ranges)

    def manual_seed(self, seed: int) -> MultiResolutionStack:
        """Reset the module's generators: the next calls replay the same random draws."""
        self.seed = int(seed)
        self._generators.clear()
        return self

    def generator_for(self, device: torch.device) -> torch.Generator:
        """The module's generator on ``device`` (one per device, each seeded with ``self.seed``)."""
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        gen = self._generators.get(device)
        if gen is None:
            gen = torch.Generator(device=device).manual_seed(self.seed)
            self._generators[device] = gen
        return gen

    def extra_repr(self) -> str:
        return (
            f"resolutions={self.resolutions}, variant={self.variant!r}, stochastic={self.stochastic}, "
            f"jitter={self.jitter}, down_noise={self.down_noise}, up_noise={self.up_noise}"
        )

    # ----------------------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape [B, 3, H, W], got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"expected floating-point images in [0, 1], got dtype {x.dtype}")
        b, c, h, w = x.shape
        n_res = len(self.resolutions)
        if not self.stochastic:
            return self._deterministic(x)
        gen = generator if generator is not None else self.generator_for(x.device)

        # One copy per (image, resolution), transformed together: [B, R, 3, H, W].
        contrast, color = self._draw_factors(b * n_res, x, gen)
        shifts = None
        if self.jitter > 0:
            shifts = torch.randint(-self.jitter, self.jitter + 1, (2, b, n_res), generator=gen, device=x.device)
        copies = _adjust_contrast(x.unsqueeze(1), contrast.view(b, n_res, 1, 1, 1))
        color = color.view(b, n_res, 1, 1, 1)
        copies = color * copies + (1 - color) * copies.mean(dim=2, keepdim=True)
        if shifts is not None:  # the roll commutes with the per-pixel blends above, so its place is free
            copies = _roll_per_image(copies.view(b * n_res, c, h, w), shifts[0].flatten(), shifts[1].flatten())
            copies = copies.view(b, n_res, c, h, w)

        outputs = []
        for r, img in zip(self.resolutions, copies.unbind(1)):  # unbind: its backward fills no zeros
            img = self._add_noise(_resize(img, (r, r)), self.down_noise, gen)
            img = self._add_noise(_resize(img, (h, w)), self.up_noise, gen)
            outputs.append(img.clamp(0.0, 1.0))
        return torch.cat(outputs, dim=1)

    def _deterministic(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        mean_scale = 0.5 if self.variant == "code" else 0.0  # E[U[0,1)] = 1/2; E[N(0,1)] = 0
        outputs = []
        for r in self.resolutions:
            img = _resize(x, (r, r)) + mean_scale * self.down_noise
            img = _resize(img, (h, w)) + mean_scale * self.up_noise
            outputs.append(img.clamp(0.0, 1.0))
        return torch.cat(outputs, dim=1)

    def _draw_factors(self, n: int, x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        def grid_draw(lo: float, hi: float) -> torch.Tensor:
            idx = torch.randint(0, _GRID_POINTS, (n,), generator=gen, device=x.device)
            return (lo + (hi - lo) * idx.to(x.dtype) / (_GRID_POINTS - 1)).view(n, 1, 1, 1)

        if self.variant == "code":
            color = grid_draw(*self.color_range)
            return color, color  # the reference assigns the colour draw to the contrast too
        return grid_draw(*self.contrast_range), grid_draw(*self.color_range)

    def _add_noise(self, img: torch.Tensor, amplitude: float, gen: torch.Generator) -> torch.Tensor:
        if amplitude == 0:
            return img
        if self.variant == "code":
            noise = torch.rand(img.shape, generator=gen, dtype=img.dtype, device=img.device)
        else:
            noise = torch.randn(img.shape, generator=gen, dtype=img.dtype, device=img.device)
        return img.add(noise, alpha=amplitude)  # img + amplitude * noise in one pass


def _resize(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.interpolate(img, size, mode="bicubic", align_corners=False)``, computed as ``A_h @ img @ A_w.T``.

    Bicubic resampling is linear and separable, so two small matmuls do it; on the CPU they are several
    times faster than the interpolation kernel, forward and backward (same values up to float rounding).
    """
    h, w = img.shape[-2:]
    if (h, w) == tuple(size):
        return img  # bicubic resampling to the same size is the identity
    rows = _bicubic_matrix(h, size[0], img.dtype, img.device)
    cols = _bicubic_matrix(w, size[1], img.dtype, img.device)
    return rows @ img @ cols.T


@functools.lru_cache(maxsize=64)
def _bicubic_matrix(n_in: int, n_out: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The ``[n_out, n_in]`` matrix of 1-D bicubic resampling, read off ``F.interpolate`` (borders included)."""
    unit_columns = torch.eye(n_in, dtype=torch.float64).view(n_in, 1, n_in, 1)
    resized = F.interpolate(unit_columns, size=(n_out, 1), mode="bicubic", align_corners=False)
    return resized[:, 0, :, 0].T.contiguous().to(dtype=dtype, device=device)


def _adjust_contrast(img: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Batched ``torchvision.transforms.functional.adjust_contrast`` (channels at dim -3), factors broadcast.

    ``img`` may be ``[B, 1, 3, H, W]`` with ``factor`` ``[B, R, 1, 1, 1]``: the grayscale mean is then
    computed once per image and broadcast over its ``R`` copies.
    """
    weights = img.new_tensor(_GRAY_WEIGHTS).view(3, 1, 1)
    mean = (img * weights).sum(dim=-3, keepdim=True).mean(dim=(-3, -2, -1), keepdim=True)
    return (factor * img + (1 - factor) * mean).clamp(0.0, 1.0)


def _roll_per_image(img: torch.Tensor, shift_h: torch.Tensor, shift_w: torch.Tensor) -> torch.Tensor:
    """``torch.roll(img[i], (shift_h[i], shift_w[i]), dims=(-2, -1))`` for every i, as one gather."""
    n, c, h, w = img.shape
    rows = (torch.arange(h, device=img.device).view(1, h, 1) - shift_h.view(n, 1, 1)) % h
    cols = (torch.arange(w, device=img.device).view(1, 1, w) - shift_w.view(n, 1, 1)) % w
    index = (rows * w + cols).view(n, 1, h * w).expand(n, c, h * w)
    return img.reshape(n, c, h * w).gather(2, index).view(n, c, h, w)
