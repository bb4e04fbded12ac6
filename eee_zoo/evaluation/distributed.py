"""Sharding an evaluation: fixed chunks with their own seeds, spread over the processes of a torchrun job.

Under ``torchrun --nproc_per_node N`` (or with ``chunk_size=``) the examples are cut into fixed chunks of
``chunk_size`` images (independent of N); chunk ``i`` is evaluated as its own AutoAttack run with seed
:func:`chunk_seed` ``(seed, i)`` (the model is reseeded with it too), process ``r`` takes the chunks with
``i % N == r``, and the per-chunk records are gathered and merged in chunk order, so the result does not depend
on N. Chunking changes AutoAttack's batch composition and seeds, so a chunked result is a different
configuration from the unsharded one (it is keyed and named as such).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import torch

from .runner import RunSpec, run_resumable
from .state import RunRecord

__all__ = ["DistInfo", "chunk_seed", "is_main_process", "run_chunks"]

logger = logging.getLogger("eee_zoo.evaluation")


def chunk_seed(seed: int, chunk_index: int) -> int:
    """The seed of chunk ``chunk_index`` of a sharded run: 31 bits of ``sha256("eee-zoo/chunk/<seed>/<i>")``."""
    digest = hashlib.sha256(f"eee-zoo/chunk/{int(seed)}/{int(chunk_index)}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def is_main_process() -> bool:
    """False on every process but rank 0 of a torch.distributed / torchrun job (write files only on rank 0)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return os.environ.get("RANK", "0") == "0"


@dataclasses.dataclass
class DistInfo:
    """This process's place in a torch.distributed job (``enabled`` False: a single process)."""

    enabled: bool
    rank: int
    world_size: int
    local_rank: int
    created_group: bool = False

    @classmethod
    def detect(cls, distributed: bool | None) -> DistInfo:
        initialized = torch.distributed.is_available() and torch.distributed.is_initialized()
        launched = "WORLD_SIZE" in os.environ and "RANK" in os.environ
        enabled = (initialized or launched) if distributed is None else bool(distributed)
        if not enabled:
            return cls(False, 0, 1, 0)
        if not (initialized or launched):
            raise ValueError("distributed=True but no process group is initialised and WORLD_SIZE/RANK are unset")
        if initialized:
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        else:
            rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        return cls(True, rank, world, int(os.environ.get("LOCAL_RANK", rank)))

    def init(self, device: torch.device) -> None:
        if not self.enabled or torch.distributed.is_initialized():
            return
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.distributed.init_process_group(backend=backend)
        self.created_group = True

    def gather(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.created_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
            self.created_group = False


def run_chunks(
    spec: RunSpec,
    x: torch.Tensor,
    y: torch.Tensor,
    seed: int,
    chunk_size: int,
    chunk_dir: Path,
    identity: dict[str, Any],
    dist_info: DistInfo,
) -> tuple[list[RunRecord], list[dict[str, Any]]]:
    """Run this process's chunks (state files ``chunk-<i>.*`` under ``chunk_dir``); every chunk's record, merged.

    Returns the records in chunk order (gathered from every process) and the chunks' bounds, seeds and ranks.
    """
    n = len(x)
    bounds = [(start, min(start + chunk_size, n)) for start in range(0, n, chunk_size)]
    chunk_dir.mkdir(parents=True, exist_ok=True)
    dist_info.init(spec.device)
    try:
        local: dict[int, dict[str, Any]] = {}
        for i, (start, stop) in enumerate(bounds):
            if i % dist_info.world_size != dist_info.rank:
                continue
            cseed = chunk_seed(seed, i)
            chunk_identity = {**identity, "chunk_index": i, "chunk_start": start, "chunk_stop": stop}
            chunk_identity["chunk_seed"] = cseed
            if spec.progress:
                logger.info("chunk %d/%d: images %d-%d, seed %d", i + 1, len(bounds), start, stop - 1, cseed)
            record = run_resumable(
                spec, x[start:stop], y[start:stop], seed=cseed, state_file=chunk_dir / f"chunk-{i:05d}.json",
                identity=chunk_identity,
            )  # fmt: skip
            local[i] = record.to_dict()
        gathered = dist_info.gather(local)
    finally:
        dist_info.close()
    merged: dict[int, dict[str, Any]] = {}
    for part in gathered:
        merged.update(part)
    if sorted(merged) != list(range(len(bounds))):
        raise RuntimeError(f"missing chunks after gathering: have {sorted(merged)} of {len(bounds)}")
    records = [RunRecord(**merged[i]) for i in range(len(bounds))]
    chunks = [
        {"index": i, "start": s, "stop": e, "seed": chunk_seed(seed, i), "rank": i % dist_info.world_size}
        for i, (s, e) in enumerate(bounds)
    ]
    return records, chunks
