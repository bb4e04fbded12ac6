"""Processes of one run: the device, torchrun's DDP process group, and keeping the ranks' weights identical.

A single process is a world of size 1: every helper here is then a no-op, so the training loop calls them
unconditionally and reads the same on one CPU as under ``torchrun --nproc_per_node N``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

__all__ = [
    "DistInfo", "all_reduce_sum", "barrier", "describe", "init_distributed", "resolve_device", "shut_down",
    "state_digest", "sync_ranks", "wrap",
]  # fmt: skip

logger = logging.getLogger("eee_zoo.train")


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run (torchrun's ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """``auto`` -> CUDA when available (``cuda:LOCAL_RANK`` under torchrun), else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine")
        if local_rank is not None:  # one GPU per process under torchrun
            device = torch.device("cuda", local_rank)
        elif device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    elif device.type != "cpu":
        raise ValueError(f"--device {name}: only cpu and cuda are supported")
    return device


def init_distributed(device_name: str) -> tuple[DistInfo, torch.device]:
    """Read torchrun's environment; start a process group (NCCL on GPUs, gloo on the CPU) when N > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    device = resolve_device(device_name, info.local_rank if world > 1 else None)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return info, device


def describe(world: DistInfo) -> str:
    """`` x N processes (backend)`` under DDP, else nothing (for the run's first log line)."""
    return f" x {world.world_size} processes ({dist.get_backend()})" if world.enabled else ""


def shut_down(world: DistInfo) -> None:
    """End the process group (at the end of a run, whatever happened)."""
    if world.enabled and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, world: DistInfo, device: torch.device) -> nn.Module:
    """``module`` in DistributedDataParallel when there are several processes (gradients averaged), else itself."""
    if not world.enabled:
        return module
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def barrier(world: DistInfo) -> None:
    if world.enabled:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, world: DistInfo) -> None:
    """Sum ``tensor`` over the ranks, in place (epoch statistics)."""
    if world.enabled:
        dist.all_reduce(tensor)


def state_digest(model: nn.Module) -> str:
    """SHA-256 over the names, shapes, dtypes and bytes of a state dict (device independent)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def sync_ranks(model: nn.Module, world: DistInfo, what: str) -> str:
    """Give every rank rank 0's parameters and buffers and check that all now agree; returns the digest.

    DDP keeps parameters in step, but it broadcasts buffers before a forward, not after: the BatchNorm statistics
    of the last step are each rank's own.
    """
    if world.enabled:
        for tensor in model.state_dict().values():
            buf = tensor.contiguous()
            dist.broadcast(buf, src=0)
            if buf.data_ptr() != tensor.data_ptr():
                tensor.copy_(buf)
    digest = state_digest(model)
    if world.enabled:
        digests: list[Any] = [None] * world.world_size
        dist.all_gather_object(digests, digest)
        if len(set(digests)) != 1:
            raise RuntimeError(f"after {what} the ranks hold different weights: {digests}")
        logger.info("after %s all %d ranks hold the same weights (sha256 %s)", what, len(digests), digest[:16])
    return digest
