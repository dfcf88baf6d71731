"""select(): pick n rows to annotate: farthest-first coverage, cluster-balanced, typical or random."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from curata.checks import check_finite, check_int, check_labels, check_row_ids
from curata.curate import water_fill
from curata.grouping import order_within_groups
from curata.kmeans import KMeans, assign
from curata.rows import as_matrix, shape_of

__all__ = ["select"]

_METHODS = ("kcenter", "cluster_balanced", "typical", "random")


def _excluded(exclude: Any, rows: int) -> np.ndarray:
    mask = np.zeros(rows, dtype=bool)
    if exclude is not None:
        mask[check_row_ids(exclude, "exclude", rows, mask_allowed=True)] = True
    return mask


def _farthest_first(x: torch.Tensor, n: int, excluded: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-center: each pick is the row farthest from everything picked or excluded so far (O(rows) memory)."""
    sq = torch.linalg.vector_norm(x, dim=1).square_()

    def squared_distances_to(row: int) -> torch.Tensor:
        return (sq - 2 * (x @ x[row]) + sq[row]).clamp_(min=0)

    picks: list[int] = []
    if excluded.any():
        _, d2 = assign(x, x[torch.from_numpy(np.flatnonzero(excluded))])
        nearest = torch.from_numpy(d2)
    else:
        picks.append(int(rng.integers(len(x))))
        nearest = squared_distances_to(picks[0])
    nearest[torch.from_numpy(excluded)] = -1.0
    nearest[picks] = -1.0
    while len(picks) < n:
        pick = int(torch.argmax(nearest))
        picks.append(pick)
        nearest = torch.minimum(nearest, squared_distances_to(pick))
        nearest[pick] = -1.0
    return np.array(picks, dtype=np.int64)


def select(
    X: Any, n: int, *, method: str = "kcenter", clusters: Any = None, exclude: Any = None, seed: int = 0
) -> np.ndarray:
    """Row ids of ``n`` rows to annotate.

    Args:
        X: (rows, dim) array, tensor or VectorTable.
        n: how many rows to pick.
        method: "kcenter" (greedy farthest-first: each pick is the row farthest from all picks so far; the
            returned order is the pick order), "cluster_balanced" (water-filling over clusters, random rows inside
            each, as in ``curate``), "typical" (the row nearest each cluster's centroid, largest clusters first) or
            "random".
        clusters: a cluster id per row for "cluster_balanced" and "typical" (default: k-means with k = n).
        exclude: row ids already labelled (or a boolean mask with one flag per row): never returned; for "kcenter"
            they count as picked centres.
        seed: seed of every random choice.

    Example:
        >>> X = np.array([[0.0, 0], [0.1, 0], [5, 5], [5, 5.1], [10, 0]])
        >>> sorted(select(X, 3, seed=0).tolist())
        [0, 3, 4]
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    rows, _ = shape_of(X)
    check_int(n, "n", minimum=1)
    excluded = _excluded(exclude, rows)
    labels = None if clusters is None else check_labels(clusters, "clusters", rows)
    pool = int((~excluded).sum())
    if n > pool:
        raise ValueError(f"n ({n}) is larger than the pool ({pool} rows that are not excluded)")
    rng = np.random.default_rng(seed)
    if method == "random":
        return np.sort(rng.choice(np.flatnonzero(~excluded), n, replace=False))
    x = as_matrix(X)
    check_finite(x, "X")
    if method == "kcenter":
        return _farthest_first(x, n, excluded, rng)
    if labels is None:
        km = KMeans(n, seed=seed).fit(x[torch.from_numpy(~excluded)])
        labels = np.full(rows, -1, dtype=np.int64)
        labels[~excluded] = km.labels_
    candidates = np.flatnonzero(~excluded)
    _, dense = np.unique(labels[candidates], return_inverse=True)
    sizes = np.bincount(dense)
    if method == "cluster_balanced":
        budget = water_fill(np.zeros(len(sizes), dtype=np.int64), sizes, np.array([n]), rng)
        order, rank = order_within_groups(dense, rng.random(len(candidates)))
        return np.sort(candidates[order][rank < budget[dense[order]]])
    # typical: the row nearest each cluster's centroid, largest clusters first, then the next nearest
    centroids = np.zeros((len(sizes), x.shape[1]), dtype=np.float64)
    np.add.at(centroids, dense, x[torch.from_numpy(candidates)].double().numpy())
    centroids /= sizes[:, None]
    diff = x[torch.from_numpy(candidates)].double().numpy() - centroids[dense]
    distance = np.einsum("ij,ij->i", diff, diff)
    order, ranks = order_within_groups(dense, distance)
    rank = np.empty(len(candidates), dtype=np.int64)
    rank[order] = ranks
    priority = np.lexsort((-sizes[dense], rank))
    return np.sort(candidates[priority[:n]])
