"""Full-fp32 arithmetic for evaluation on GPUs.

PyTorch lets cuDNN run fp32 convolutions in TF32 (10-bit mantissa) by default on Ampere and later. Attacks and
accuracies are measured in true fp32 here, so that a GPU and a CPU score the same model the same way and
gradients are not coarsened; training may use bf16 autocast, evaluation never does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["strict_fp32"]


@contextlib.contextmanager
def strict_fp32() -> Iterator[None]:
    """Turn TF32 off for cuDNN convolutions and CUDA matmuls inside the block; restore the settings after."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (cudnn.allow_tf32, matmul.allow_tf32)
    cudnn.allow_tf32, matmul.allow_tf32 = False, False
    try:
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = saved
