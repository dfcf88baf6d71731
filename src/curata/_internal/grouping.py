"""Ranks inside groups: the vectorised primitive behind curate, select, split and the resampling steps."""

from __future__ import annotations

import numpy as np

__all__ = ["order_within_groups", "rows_per_group"]


def order_within_groups(groups: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by (group, key), and the rank of each sorted row inside its group (0 for the smallest key).

    Example:
        >>> order, rank = order_within_groups(np.array([1, 0, 1, 0]), np.array([0.5, 0.2, 0.1, 0.9]))
        >>> order.tolist(), rank.tolist()
        ([1, 3, 2, 0], [0, 1, 0, 1])
    """
    order = np.lexsort((key, groups))
    if len(order) == 0:
        return order, np.zeros(0, dtype=np.int64)
    sorted_groups = groups[order]
    starts = np.r_[0, np.flatnonzero(sorted_groups[1:] != sorted_groups[:-1]) + 1]
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return order, rank


def rows_per_group(groups: np.ndarray) -> list[np.ndarray]:
    """The row ids of each group, groups in ascending order, rows in their original order.

    Example:
        >>> [g.tolist() for g in rows_per_group(np.array([2, 0, 2, 0, 1]))]
        [[1, 3], [4], [0, 2]]
    """
    order = np.argsort(groups, kind="stable")
    if len(order) == 0:
        return []
    return np.split(order, np.flatnonzero(np.diff(groups[order])) + 1)
