"""How many rows each group gets when n rows are taken from groups in proportion to their sizes."""

from __future__ import annotations

import numpy as np

__all__ = ["proportional_quotas"]


def proportional_quotas(sizes: np.ndarray, n: int) -> np.ndarray:
    """Split ``n`` over groups of ``sizes`` rows as Goldener does for label quotas.

    Each group first gets the floor of its share, ``floor(n * size / total)``; what is left goes one row at a time
    to the groups in decreasing order of size (ties: the lower index first), skipping full groups, round after
    round. No group gets more than its size, and the quotas sum to ``min(n, total)``.

    Example:
        >>> proportional_quotas(np.array([50, 30, 20]), 7).tolist()
        [4, 2, 1]
        >>> proportional_quotas(np.array([1, 9]), 10).tolist()
        [1, 9]
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum())
    n = min(int(n), total)
    if total == 0:
        return np.zeros(len(sizes), dtype=np.int64)
    quotas = np.minimum(sizes * n // total, sizes)
    order = np.argsort(-sizes, kind="stable")
    left = n - int(quotas.sum())
    while left > 0:
        room = order[quotas[order] < sizes[order]][:left]
        quotas[room] += 1
        left -= len(room)
    return quotas
