"""Per-batch augmentation on the device: random translation (reflect padding), horizontal flips, Gaussian noise.

Vectorised over the batch (two gathers), drawing from an explicit ``torch.Generator`` so that a training
step is a pure function of its inputs and seed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["crop_flip", "gaussian_noise", "to_float"]


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """``uint8 [B, 3, H, W]`` -> ``float32`` in [0, 1]."""
    return images_uint8.to(torch.float32).div_(255.0)


def crop_flip(x: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Randomly translate every image by up to ``padding`` px (reflect-padded crop) and flip half of them."""
    b, c, h, w = x.shape
    if padding > 0:
        padded = F.pad(x, (padding, padding, padding, padding), mode="reflect")
        offsets = torch.randint(0, 2 * padding + 1, (2, b), generator=generator, device=x.device)
        rows = offsets[0].view(b, 1) + torch.arange(h, device=x.device).view(1, h)
        cols = offsets[1].view(b, 1) + torch.arange(w, device=x.device).view(1, w)
        wp = w + 2 * padding
        x = padded.gather(2, rows.view(b, 1, h, 1).expand(b, c, h, wp))
        x = x.gather(3, cols.view(b, 1, 1, w).expand(b, c, h, w))
    if flip:
        mask = torch.randint(0, 2, (b,), generator=generator, device=x.device).bool().view(b, 1, 1, 1)
        x = torch.where(mask, x.flip(3), x)
    return x


def gaussian_noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """``x + N(0, sigma^2)`` per pixel, **not clamped** to [0, 1]: the base classifier of randomized smoothing is
    trained on the inputs it is certified on (Cohen et al. 2019 train and certify on unclamped ``x + noise``; the
    multi-resolution stack clamps its own output). ``sigma = 0`` returns ``x`` and draws nothing, so recipes without
    noise keep their random streams."""
    if sigma == 0:
        return x
    return x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
