"""Rank and world-size discovery and the few collectives the engines need, over torch.distributed.

Every helper is a no-op in a single process, so the engines call them unconditionally.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = ["rank_and_world", "is_distributed", "all_reduce_sum", "all_reduce_max", "shard_range", "all_gather_rows"]


def is_distributed() -> bool:
    """True when a torch.distributed process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world size): the arguments, else the initialised process group, else ``RANK``/``WORLD_SIZE``, else (0, 1).

    Example:
        >>> rank_and_world(1, 4)
        (1, 4)
    """
    if rank is not None and world_size is not None:
        found = (int(rank), int(world_size))
    elif dist.is_available() and dist.is_initialized():
        found = (dist.get_rank(), dist.get_world_size())
    else:
        found = (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))
    if found[1] < 1 or not 0 <= found[0] < found[1]:
        raise ValueError(
            f"rank must be in [0, world_size) and world_size >= 1, got rank={found[0]}, world_size={found[1]}"
        )
    return found


def shard_range(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """The contiguous block [start, stop) of ``n`` rows that ``rank`` owns; blocks differ in size by at most one.

    Example:
        >>> [shard_range(10, r, 3) for r in range(3)]
        [(0, 4), (4, 7), (7, 10)]
    """
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def _backend_device(tensor: torch.Tensor) -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks (in place, also returned). Float sums round in an order the backend picks, which
    changes with the number of ranks: what must not depend on it is summed as int64 (see clustering/fixed_point.py)."""
    if not is_distributed():
        return tensor
    device = _backend_device(tensor)
    moved = tensor.to(device)
    dist.all_reduce(moved, op=dist.ReduceOp.SUM)
    if moved is not tensor:
        tensor.copy_(moved.to(tensor.device))
    return tensor


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    """The largest value over all ranks, elementwise (in place, also returned): exact, so in any order the same."""
    if not is_distributed():
        return tensor
    device = _backend_device(tensor)
    moved = tensor.to(device)
    dist.all_reduce(moved, op=dist.ReduceOp.MAX)
    if moved is not tensor:
        tensor.copy_(moved.to(tensor.device))
    return tensor


def all_gather_rows(tensor: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """Concatenate every rank's rows in rank order; ``counts`` holds every rank's row count (once, not per step)."""
    if not is_distributed():
        return tensor
    device = _backend_device(tensor)
    width = max(counts)
    padded = torch.zeros((width, *tensor.shape[1:]), dtype=tensor.dtype, device=device)
    padded[: len(tensor)] = tensor.to(device)
    gathered = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(gathered, padded)
    return torch.cat([g[:c] for g, c in zip(gathered, counts, strict=True)]).to(tensor.device)
