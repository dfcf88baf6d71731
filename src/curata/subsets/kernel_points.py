"""Greedy kernel points (kernel herding): each pick is the row that brings the picked set's kernel mean embedding
closest to the pool's, i.e. minimises the squared MMD between the picked rows and all rows.

With S the rows picked so far (m of them, anchors included) and P the pool (N rows), adding row c gives

    MMD^2(S + c, P) = (K_SS + 2 k_S(c) + k(c, c)) / (m + 1)^2 - 2 (mu_S + mu(c)) / (m + 1) + K_PP / N^2

where k_S(c) = sum over S of k(s, c) and mu(c) = mean over P of k(c, p); so each step keeps the vector k_S (one
kernel row per pick, O(N * dim)) and picks the unpicked row minimising (2 k_S(c) + k(c, c)) / (m + 1) - 2 mu(c).
Kernels: "rbf", k(a, b) = exp(-|a - b|^2 / h) with h the median squared distance between rows of a seeded sample
unless ``bandwidth`` is given, and "linear", k(a, b) = a . b (Goldener's default, which matches the mean only).
mu is exact for "linear"; for "rbf" it is averaged over all rows up to ``reference_rows`` rows, else over a seeded
sample of that many.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["kernel_points", "squared_mmd", "KERNELS"]

KERNELS = ("rbf", "linear")
_BLOCK_ELEMENTS = 1 << 20  # float64 kernel blocks of 8 MB
_BANDWIDTH_SAMPLE = 1000


def _squared_norms(x: torch.Tensor) -> torch.Tensor:
    """float64 squared norms of the rows, a block at a time (no float64 copy of all rows)."""
    step = max(1, _BLOCK_ELEMENTS // max(x.shape[1], 1))
    return torch.cat(
        [torch.linalg.vector_norm(x[s : s + step].double(), dim=1).square_() for s in range(0, len(x), step)]
    )


def _median_bandwidth(x: torch.Tensor, rng: np.random.Generator) -> float:
    sample = x[torch.from_numpy(np.sort(rng.choice(len(x), min(len(x), _BANDWIDTH_SAMPLE), replace=False)))]
    d2 = torch.cdist(sample.double(), sample.double()).square_()
    upper = d2[torch.triu_indices(len(sample), len(sample), offset=1).unbind()]
    h = float(upper.median()) if len(upper) else 0.0
    return h if h > 0 else 1.0


class _Kernel:
    def __init__(self, name: str, bandwidth: float | None) -> None:
        self.name, self.bandwidth = name, bandwidth

    def block(
        self, a: torch.Tensor, b: torch.Tensor, sq_a: torch.Tensor | None = None, sq_b: torch.Tensor | None = None
    ) -> torch.Tensor:
        """k(a_i, b_j) for every pair, float64; ``sq_a``/``sq_b``: the rows' float64 squared norms, if known."""
        dot = (a @ b.T).double()
        if self.name == "linear":
            return dot
        sq_a = _squared_norms(a) if sq_a is None else sq_a
        sq_b = _squared_norms(b) if sq_b is None else sq_b
        d2 = dot.mul_(-2).add_(sq_a[:, None]).add_(sq_b[None]).clamp_(min=0)
        return torch.exp_(d2.div_(-self.bandwidth))

    def diagonal(self, sq: torch.Tensor) -> torch.Tensor:
        """k(x_i, x_i) from the rows' float64 squared norms."""
        return sq if self.name == "linear" else torch.ones(len(sq), dtype=torch.float64)

    def row_means(self, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """mean over the reference rows of k(x_i, r), in bounded blocks."""
        if self.name == "linear":
            return x.double() @ reference.double().mean(dim=0)
        step = max(1, _BLOCK_ELEMENTS // max(len(reference), 1))
        sq_reference = _squared_norms(reference)
        return torch.cat(
            [self.block(x[s : s + step], reference, sq_b=sq_reference).mean(dim=1) for s in range(0, len(x), step)]
        )


def _kernel(x: torch.Tensor, kernel: str, bandwidth: float | None, rng: np.random.Generator) -> _Kernel:
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if bandwidth is not None and (
        isinstance(bandwidth, bool) or not isinstance(bandwidth, (int, float)) or not bandwidth > 0
    ):
        raise ValueError(f"bandwidth must be a number > 0 or None (median heuristic), got {bandwidth!r}")
    if kernel == "rbf" and bandwidth is None:
        bandwidth = _median_bandwidth(x, rng)
    return _Kernel(kernel, None if bandwidth is None else float(bandwidth))


def kernel_points(
    x: torch.Tensor,
    n: int,
    *,
    anchors: np.ndarray | None = None,
    kernel: str = "rbf",
    bandwidth: float | None = None,
    reference_rows: int = 8192,
    rng: np.random.Generator,
) -> np.ndarray:
    """Row ids of ``n`` rows of ``x`` (never an anchor) in pick order.

    Args:
        x: (rows, dim) tensor: the pool.
        n: rows to pick.
        anchors: boolean mask of rows that start in the picked set (already labelled) and are never returned.
        kernel: "rbf" or "linear".
        bandwidth: h of the rbf kernel (default: median squared distance of a seeded sample of 1000 rows).
        reference_rows: rows over which the pool's kernel mean is averaged (all rows up to this many).
        rng: generator of the bandwidth and reference samples.

    Example:
        >>> x = torch.tensor([[0.0], [0.1], [0.2], [5.0], [5.1]])
        >>> kernel_points(x, 2, rng=np.random.default_rng(0)).tolist()  # one row of each group
        [2, 3]
    """
    rows = len(x)
    x = x.float()
    k = _kernel(x, kernel, bandwidth, rng)
    if rows > reference_rows:
        reference = x[torch.from_numpy(np.sort(rng.choice(rows, reference_rows, replace=False)))]
    else:
        reference = x
    mu = k.row_means(x, reference)
    sq = _squared_norms(x)
    diagonal = k.diagonal(sq)
    to_picked = torch.zeros(rows, dtype=torch.float64)
    blocked = torch.zeros(rows, dtype=torch.bool)
    m = 0
    if anchors is not None and anchors.any():
        anchor_ids = np.flatnonzero(anchors)
        step = max(1, _BLOCK_ELEMENTS // rows)
        for s in range(0, len(anchor_ids), step):
            ids = torch.from_numpy(anchor_ids[s : s + step])
            to_picked += k.block(x[ids], x, sq[ids], sq).sum(dim=0)
        blocked[torch.from_numpy(anchor_ids)] = True
        m = len(anchor_ids)
    picks: list[int] = []
    for _ in range(n):
        score = (2 * to_picked + diagonal) / (m + 1) - 2 * mu
        score[blocked] = float("inf")
        pick = int(torch.argmin(score))
        picks.append(pick)
        blocked[pick] = True
        to_picked += k.block(x[pick : pick + 1], x, sq[pick : pick + 1], sq)[0]
        m += 1
    return np.array(picks, dtype=np.int64)


def squared_mmd(x: Any, picked: Any, *, kernel: str = "rbf", bandwidth: float | None = None, seed: int = 0) -> float:
    """Squared maximum mean discrepancy between the rows ``picked`` and all rows of ``x``, exact (blockwise).

    The bandwidth defaults to the same median heuristic as ``select(method="kernel_points")`` with the same seed.

    Example:
        >>> x = torch.tensor([[0.0], [1.0]])
        >>> round(squared_mmd(x, [0, 1]), 12), squared_mmd(x, [0], kernel="linear")
        (0.0, 0.25)
    """
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).float()
    picked = torch.as_tensor(np.asarray(picked, dtype=np.int64))
    k = _kernel(x, kernel, bandwidth, np.random.default_rng(seed))
    s = x[picked]
    pool_pool = float(k.row_means(x, x).mean())
    picked_picked = float(k.row_means(s, s).mean())
    picked_pool = float(k.row_means(s, x).mean())
    return picked_picked - 2 * picked_pool + pool_pool
