"""dedup(): cosine near-duplicates, compared only within clusters, with bounded memory."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from curata.checks import check_finite, check_labels
from curata.kmeans import KMeans
from curata.rows import as_matrix, shape_of

__all__ = ["dedup"]

_KEEP = ("central", "random", "first")


def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected components of n nodes joined by edges (i, j): the smallest node id of each node's component."""
    parent = np.arange(n)
    while True:
        low = np.minimum(parent[i], parent[j])
        before = parent.copy()
        np.minimum.at(parent, i, low)
        np.minimum.at(parent, j, low)
        parent = parent[parent]  # pointer jumping
        if np.array_equal(parent, before):
            return parent


def dedup(
    X: Any,
    *,
    threshold: float = 0.95,
    clusters: Any = None,
    keep: str = "central",
    seed: int = 0,
    chunk_rows: int = 2048,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Find groups of near-duplicate rows (cosine similarity >= ``threshold``, linked transitively) and keep one each.

    Rows are compared only inside their cluster (k-means with k = rows / 1000 first when ``clusters`` is None),
    ``chunk_rows`` at a time, so memory stays O(chunk_rows x cluster size).

    Args:
        X: (rows, dim) array, tensor or VectorTable.
        threshold: cosine similarity in (0, 1] from which two rows are duplicates.
        clusters: a cluster id per row, to compare within.
        keep: which member of a group stays: "central" (nearest the group's mean direction), "random", "first".
        seed: seed of the k-means and of ``keep="random"``.

    Returns:
        (sorted ids of the rows to keep, list of duplicate groups as sorted row-id arrays).

    Example:
        >>> X = np.array([[1.0, 0], [1.0, 0.001], [0, 1], [0.001, 1], [1, 1]])
        >>> kept, groups = dedup(X, clusters=np.zeros(5, int), keep="first")
        >>> kept.tolist(), [g.tolist() for g in groups]
        ([0, 2, 4], [[0, 1], [2, 3]])
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    if keep not in _KEEP:
        raise ValueError(f"keep must be one of {_KEEP}, got {keep!r}")
    rows, _ = shape_of(X)
    given = None if clusters is None else check_labels(clusters, "clusters", rows)
    x = as_matrix(X)
    check_finite(x, "X")
    x = torch.nn.functional.normalize(x, dim=1)
    if given is None:
        labels = KMeans(max(1, rows // 1000), seed=seed).fit(x).labels_ if rows else np.zeros(0, np.int64)
    else:
        labels = given
    edges_i, edges_j = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        block = x[torch.from_numpy(members)]
        for start in range(0, len(members), chunk_rows):
            similarity = block[start : start + chunk_rows] @ block.T
            i, j = torch.nonzero(similarity >= threshold, as_tuple=True)
            i = i + start
            upper = j > i  # each pair once, no self-pairs
            edges_i.append(members[i[upper].numpy()])
            edges_j.append(members[j[upper].numpy()])
    i = np.concatenate(edges_i) if edges_i else np.zeros(0, np.int64)
    j = np.concatenate(edges_j) if edges_j else np.zeros(0, np.int64)
    root = _components(rows, i, j)
    sizes = np.bincount(root, minlength=rows)
    in_group = sizes[root] > 1
    order = np.argsort(root[in_group], kind="stable")
    members = np.flatnonzero(in_group)[order]
    bounds = np.flatnonzero(np.diff(root[members])) + 1
    groups = [np.sort(g) for g in np.split(members, bounds)] if len(members) else []
    rng = np.random.default_rng(seed)
    keepers = []
    for group in groups:
        if keep == "first":
            keepers.append(group[0])
        elif keep == "random":
            keepers.append(group[rng.integers(len(group))])
        else:
            vectors = x[torch.from_numpy(group)]
            centre = torch.nn.functional.normalize(vectors.mean(dim=0), dim=0)
            keepers.append(group[int(torch.argmax(vectors @ centre))])
    kept = np.r_[np.flatnonzero(~in_group), np.array(keepers, dtype=np.int64)]
    return np.sort(kept), groups
