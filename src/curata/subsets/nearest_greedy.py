"""Greedy selection by nearest-neighbour distance: densest rows first, or farthest (most isolated) rows first.

Each step picks, among the rows not yet picked, the row whose nearest unpicked neighbour is closest ("densest")
or farthest ("farthest"), then removes it, as Goldener's greedy closest/farthest point selections do. Their
reference recomputes a full pairwise matrix every step (O(n * rows^2)); here each row keeps a list of its nearest
neighbours, computed once by chunked GEMMs, and a pick only updates the rows whose nearest unpicked neighbour it
was: O(rows^2 * dim) once, then about O(rows * log rows) for all steps.
"""

from __future__ import annotations

import heapq

import numpy as np
import torch

__all__ = ["greedy_by_nearest"]

_NEIGHBOURS = 16
_BLOCK_ELEMENTS = 1 << 22  # one block of squared distances: 16 MB of float32


def _squared_distances(x: torch.Tensor, sq: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    return (x[rows] @ x.T).mul_(-2).add_(sq[rows, None]).add_(sq[None]).clamp_(min=0)


def _neighbour_lists(x: torch.Tensor, sq: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest other rows of every row and their squared distances, one bounded block at a time."""
    rows = len(x)
    step = max(1, _BLOCK_ELEMENTS // rows)
    ids = np.empty((rows, k), dtype=np.int64)
    dist = np.empty((rows, k), dtype=np.float32)
    for start in range(0, rows, step):
        block = torch.arange(start, min(start + step, rows))
        d2 = _squared_distances(x, sq, block)
        d2[torch.arange(len(block)), block] = float("inf")
        values, found = torch.topk(d2, k, dim=1, largest=False)
        ids[start : start + len(block)] = found.numpy()
        dist[start : start + len(block)] = values.numpy()
    return ids, dist


def greedy_by_nearest(x: torch.Tensor, n: int, *, densest: bool) -> np.ndarray:
    """Row ids of ``n`` rows of ``x`` in pick order (ties: the lower row id).

    Example:
        >>> x = torch.tensor([[0.0], [0.5], [0.75], [5.0], [11.0]])
        >>> greedy_by_nearest(x, 2, densest=True).tolist(), greedy_by_nearest(x, 2, densest=False).tolist()
        ([1, 0], [4, 3])
    """
    rows = len(x)
    if rows == 1:
        return np.zeros(min(n, 1), dtype=np.int64)
    x = x.float()
    sq = torch.linalg.vector_norm(x, dim=1).square_()
    k = min(rows - 1, _NEIGHBOURS)
    ids, dist = _neighbour_lists(x, sq, k)
    sign = 1.0 if densest else -1.0
    unpicked = np.ones(rows, dtype=bool)
    cursor = np.zeros(rows, dtype=np.int64)
    key = dist[:, 0].astype(np.float64)
    watchers: list[list[int]] = [[] for _ in range(rows)]
    for row, nearest in enumerate(ids[:, 0].tolist()):
        watchers[nearest].append(row)
    heap = [(sign * float(key[row]), row) for row in range(rows)]
    heapq.heapify(heap)

    def refresh(row: int) -> None:
        """Move ``row`` to its nearest unpicked neighbour; rebuild its list when every listed one is picked."""
        c = int(cursor[row])
        while c < k and not unpicked[ids[row, c]]:
            c += 1
        if c == k:
            d2 = _squared_distances(x, sq, torch.tensor([row]))[0]
            d2[torch.from_numpy(~unpicked)] = float("inf")
            d2[row] = float("inf")
            values, found = torch.topk(d2, k, largest=False)
            ids[row], dist[row], c = found.numpy(), values.numpy(), 0
        cursor[row] = c
        key[row] = float(dist[row, c])
        if np.isfinite(key[row]):
            watchers[int(ids[row, c])].append(row)
        heapq.heappush(heap, (sign * key[row], row))

    picks: list[int] = []
    while len(picks) < n:
        value, row = heapq.heappop(heap)
        if not unpicked[row] or value != sign * key[row]:
            continue  # superseded by a later push
        picks.append(row)
        unpicked[row] = False
        for watcher in watchers[row]:
            if unpicked[watcher] and int(ids[watcher, cursor[watcher]]) == row:
                refresh(watcher)
        watchers[row] = []
    return np.array(picks, dtype=np.int64)
