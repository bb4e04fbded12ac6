"""The published reference algorithm of the multi-resolution stack, re-implemented here for comparison.

This follows the authors' replication notebook for "Ensemble everything everywhere" (Fort &
Lakshminarayanan, arXiv:2408.05446) step by step, including what makes it slow and what makes it differ
from the paper's prose, so that :class:`eee_zoo.models.MultiResolutionStack` (``variant="code"``) can be
checked and timed against it:

* per resolution ``r``, per-image draws from numpy's *global* RNG: jitter ``np.random.choice(range(-3, 4))``
  in x and y; a contrast draw from ``np.linspace(0.7, 1.5, 100)`` that is immediately overwritten, because
  the notebook assigns ``color_amounts = contrasts = np.random.choice(np.linspace(0.5, 1.0, 100))``;
* a Python loop over the images: ``adjust_contrast`` -> ``torch.roll`` (x shifts dim -2, y shifts dim -1)
  -> blend towards the channel mean by the colour amount; ``torch.stack``;
* bicubic down to ``r``, ``+ down_noise * U[0, 1)`` (numpy, moved to the device), bicubic up to the input
  size, ``+ up_noise * U[0, 1)``, clip to [0, 1]; the resolutions are concatenated on channels.

Written from the algorithm's description; no third-party code is copied. The training-throughput
reference loop imports :class:`ReferenceStack`, so its API is kept stable: ``ReferenceStack(resolutions,
*, jitter, down_noise, up_noise, stochastic, seed)``, ``forward(x, generator=None)``, ``out_channels``,
``stochastic``, ``config()``, ``manual_seed(seed)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms.functional as TF

__all__ = ["reference_multichannel_input", "reference_apply_transformations", "ReferenceStack"]

NoiseFn = Callable[[tuple[int, ...]], torch.Tensor]


def numpy_uniform_noise(shape: tuple[int, ...]) -> torch.Tensor:
    """The reference's noise source: ``U[0, 1)`` from numpy's global RNG as a float32 tensor (on the CPU)."""
    return torch.Tensor(np.random.rand(*shape))


def reference_apply_transformations(
    images: torch.Tensor,
    *,
    down_res: int,
    up_res: int,
    jit_x: Sequence[int],
    jit_y: Sequence[int],
    contrast: Sequence[float],
    color_amount: Sequence[float],
    down_noise: float = 0.2,
    up_noise: float = 0.2,
    noise_fn: NoiseFn = numpy_uniform_noise,
) -> torch.Tensor:
    """One resolution of the reference, with the per-image factors given: ``[B, 3, H, W] -> [B, 3, up, up]``.

    ``noise_fn(shape)`` returns the U[0, 1) samples (numpy's global RNG by default); the amplitudes scale them.
    """
    transformed = []
    for i in range(images.shape[0]):  # the reference's per-image Python loop
        image = images[i]
        image = TF.adjust_contrast(image, float(contrast[i]))
        image = torch.roll(image, shifts=(int(jit_x[i]), int(jit_y[i])), dims=(-2, -1))
        amount = float(color_amount[i])
        image = amount * image + torch.mean(image, dim=0, keepdim=True) * (1 - amount)
        transformed.append(image)
    out = torch.stack(transformed, dim=0)
    out = F.interpolate(out, size=(down_res, down_res), mode="bicubic")
    out = out + down_noise * noise_fn((out.shape[0], 3, down_res, down_res)).to(out.device)
    out = F.interpolate(out, size=(up_res, up_res), mode="bicubic")
    out = out + up_noise * noise_fn((out.shape[0], 3, up_res, up_res)).to(out.device)
    return torch.clip(out, 0, 1)


def reference_multichannel_input(
    images: torch.Tensor,
    resolutions: Sequence[int] = (32, 16, 8, 4),
    jit_size: int = 3,
    down_noise: float = 0.2,
    up_noise: float = 0.2,
) -> torch.Tensor:
    """The reference stack ``[B, 3, S, S] -> [B, 3 * len(resolutions), S, S]``, drawing from numpy's global RNG.

    Seed it with ``np.random.seed``. ``S`` is the input size (32 for CIFAR, the notebook's ``up_res``).
    """
    n, up_res = images.shape[0], images.shape[-1]
    channels = []
    for r in resolutions:
        jit_x = np.random.choice(range(-jit_size, jit_size + 1), size=n)
        jit_y = np.random.choice(range(-jit_size, jit_size + 1), size=n)
        contrasts = np.random.choice(np.linspace(0.7, 1.5, 100), size=n)  # drawn, then overwritten below
        color_amounts = contrasts = np.random.choice(np.linspace(0.5, 1.0, 100), size=n)
        channels.append(
            reference_apply_transformations(
                images,
                down_res=r,
                up_res=up_res,
                jit_x=jit_x,
                jit_y=jit_y,
                contrast=contrasts,
                color_amount=color_amounts,
                down_noise=down_noise,
                up_noise=up_noise,
            )
        )
    return torch.cat(channels, dim=1)


def _noise_mean(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.full(shape, 0.5)  # E[U[0, 1)]


class ReferenceStack(nn.Module):
    """Drop-in stand-in for :class:`~eee_zoo.models.MultiResolutionStack` running the reference algorithm.

    Randomness comes from numpy's global RNG, as in the reference (``manual_seed`` calls ``np.random.seed``).
    ``stochastic=False`` runs the same per-image loop with no jitter, factors 1 and each noise term replaced
    by its mean (the deterministic mode of ``MultiResolutionStack``, which the reference itself lacks).
    ``config()`` describes the equivalent ``MultiResolutionStack(variant="code")``.
    """

    def __init__(
        self,
        resolutions: Sequence[int] = (32, 16, 8, 4),
        *,
        jitter: int = 3,
        down_noise: float = 0.2,
        up_noise: float = 0.2,
        stochastic: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.resolutions = tuple(int(r) for r in resolutions)
        if not self.resolutions or any(r < 1 for r in self.resolutions):
            raise ValueError(f"resolutions must be a non-empty sequence of positive ints, got {self.resolutions}")
        if jitter < 0 or down_noise < 0 or up_noise < 0:
            raise ValueError("jitter, down_noise and up_noise must be >= 0")
        self.jitter = int(jitter)
        self.down_noise = float(down_noise)
        self.up_noise = float(up_noise)
        self.stochastic = bool(stochastic)
        self.seed = int(seed)

    @property
    def out_channels(self) -> int:
        return 3 * len(self.resolutions)

    def config(self) -> dict[str, Any]:
        """The config of the equivalent ``MultiResolutionStack`` (the reference is its ``"code"`` variant)."""
        return {
            "resolutions": list(self.resolutions),
            "jitter": self.jitter,
            "down_noise": self.down_noise,
            "up_noise": self.up_noise,
            "contrast_range": [0.7, 1.5],
            "color_range": [0.5, 1.0],
            "variant": "code",
            "stochastic": self.stochastic,
            "seed": self.seed,
        }

    def manual_seed(self, seed: int) -> ReferenceStack:
        """Seed numpy's global RNG (the reference's only source of randomness)."""
        self.seed = int(seed)
        np.random.seed(self.seed)
        return self

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if generator is not None:
            raise ValueError(
                "ReferenceStack draws from numpy's global RNG (seed it with np.random.seed or manual_seed); "
                "it cannot use a torch.Generator"
            )
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape [B, 3, H, W], got {tuple(x.shape)}")
        if x.shape[-1] != x.shape[-2]:
            raise ValueError(f"the reference algorithm needs square images, got {tuple(x.shape)}")
        if self.stochastic:
            return reference_multichannel_input(x, self.resolutions, self.jitter, self.down_noise, self.up_noise)
        ones, zeros = [1.0] * x.shape[0], [0] * x.shape[0]
        channels = [
            reference_apply_transformations(
                x,
                down_res=r,
                up_res=x.shape[-1],
                jit_x=zeros,
                jit_y=zeros,
                contrast=ones,
                color_amount=ones,
                down_noise=self.down_noise,
                up_noise=self.up_noise,
                noise_fn=_noise_mean,
            )
            for r in self.resolutions
        ]
        return torch.cat(channels, dim=1)

    def extra_repr(self) -> str:
        return f"resolutions={self.resolutions}, stochastic={self.stochastic}, jitter={self.jitter} (numpy RNG)"
