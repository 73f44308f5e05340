"""The few collective operations recording needs (no-ops in a single process)."""

from __future__ import annotations

import sys

import numpy as np


def rank_world() -> tuple[int, int]:
    """This process's rank and the world size (0, 1 without a process group)."""
    torch = sys.modules.get("torch")
    dist = getattr(torch, "distributed", None)
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def equal_share(rows: np.ndarray, rank: int, world: int) -> np.ndarray:
    """This rank's contiguous share of ``rows``, padded to ``ceil(n / world)`` with repeated rows.

    Every rank then runs as many forward passes as every other: a sharded model (FSDP, DeepSpeed
    ZeRO-3) gathers its weights from all ranks in each forward, so a rank with one batch more
    would wait forever. The repeats are dropped after gathering (ids are deduplicated).
    """
    n = len(rows)
    if world == 1 or n == 0:
        return rows
    size = -(-n // world)
    mine = rows[rank * size: (rank + 1) * size]
    pad = rows[-1:] if len(mine) == 0 else mine[-1:]
    return np.concatenate([mine, np.repeat(pad, size - len(mine))])


def is_main() -> bool:
    return rank_world()[0] == 0


def gather_arrays(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every rank's arrays concatenated, on every rank (so all ranks can act on the union)."""
    _, world = rank_world()
    if world == 1:
        return arrays
    import torch

    parts = [None] * world
    torch.distributed.all_gather_object(parts, arrays)
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(len(arrays)))


def barrier() -> None:
    if rank_world()[1] > 1:
        import torch

        torch.distributed.barrier()


def end_distributed() -> None:
    """Close the process group a command started under torchrun (the Trainer leaves it open).

    Without this, a gloo worker thread can still be releasing the tensors of the Trainer's last
    all_gather when Python shuts down; it then needs the GIL, cannot have it, and aborts the
    process ('terminate called without an active exception') after the work is done. A barrier,
    then a short sleep (both release the GIL), let those releases happen while the interpreter is
    alive (measured figures: docs/format.md, "Several processes").
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        import time

        dist.barrier()
        time.sleep(0.2)
        dist.destroy_process_group()
