"""split() and leakage(): cluster-aware train/val/test splits, and the near-identical pairs that cross them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from curata._internal.checks import check_finite, check_labels, check_row_ids, is_int
from curata._internal.grouping import order_within_groups
from curata.clustering.kmeans import KMeans
from curata.store.cosine_check import warn_if_degenerate
from curata.store.rows import as_matrix, shape_of
from curata.subsets.select import METHODS, select

__all__ = ["split", "leakage"]

_MODES = ("stratified", "disjoint", "coreset")


def _targets(sizes: Mapping[str, float | int], rows: int) -> dict[str, int]:
    """Row counts per split from fractions (summing to <= 1) or counts (summing to <= rows)."""
    if not isinstance(sizes, Mapping) or not sizes:
        raise ValueError(f"sizes must be a non-empty dict like {{'train': 0.8, 'val': 0.2}}, got {sizes!r}")
    values = list(sizes.values())
    if all(is_int(v) for v in values):
        if any(v < 0 for v in values) or sum(values) > rows:
            raise ValueError(f"sizes as counts must be >= 0 and sum to <= the {rows} rows, got {dict(sizes)}")
        return {name: int(v) for name, v in sizes.items()}
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1 for v in values) or (
        sum(values) > 1 + 1e-9
    ):
        raise ValueError(f"sizes as fractions must be in [0, 1] and sum to <= 1, got {dict(sizes)}")
    exact = np.array(values, dtype=np.float64) * rows
    counts = np.floor(exact).astype(np.int64)
    # largest remainders, without exceeding the rows the fractions cover
    spare = min(int(round(sum(values) * rows)), rows) - int(counts.sum())
    counts[np.argsort(-(exact - counts), kind="stable")[: max(spare, 0)]] += 1
    return dict(zip(sizes, counts.tolist()))


def _cluster_ids(X_or_clusters: Any, seed: int) -> np.ndarray:
    if isinstance(X_or_clusters, np.ndarray) and X_or_clusters.ndim == 1:
        if not np.issubdtype(X_or_clusters.dtype, np.integer):
            raise TypeError(f"a 1-D input must hold integer cluster ids, got dtype {X_or_clusters.dtype}")
        return X_or_clusters.astype(np.int64)
    rows, _ = shape_of(X_or_clusters)
    k = int(min(rows, max(2, round(np.sqrt(rows)))))
    return KMeans(k, seed=seed).fit(X_or_clusters).labels_


def _select_among(
    x: torch.Tensor, left: np.ndarray, count: int, method: str, metric: str, labels: np.ndarray | None, seed: int
) -> np.ndarray:
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    local_labels = None if labels is None else labels[left]
    return left[select(x[torch.from_numpy(left)], count, method=method, metric=metric, labels=local_labels, seed=seed)]


def _coreset(
    X: Any, targets: dict[str, int], labels: np.ndarray | None, method: str, metric: str, seed: int
) -> dict[str, np.ndarray]:
    """Every split but the last chosen by ``select`` among the rows left, per-label quotas; the last: the rest."""
    rows, _ = shape_of(X)
    x = as_matrix(X)
    check_finite(x, "X")  # here too: with a first split of 0 rows, select would never see the rows
    left = np.arange(rows)
    names = list(targets)
    out: dict[str, np.ndarray] = {}
    for position, name in enumerate(names):
        count = targets[name]
        if position == len(names) - 1:
            # the rest; when the sizes leave rows over, a random draw of the same per-label shares
            last = "random" if count < len(left) else None
            out[name] = left if last is None else np.sort(_select_among(x, left, count, last, metric, labels, seed))
            break
        out[name] = np.sort(_select_among(x, left, count, method, metric, labels, seed))
        left = np.setdiff1d(left, out[name], assume_unique=True)
    return out


def split(
    X_or_clusters: Any,
    sizes: Mapping[str, float | int],
    *,
    mode: str = "stratified",
    labels: Any = None,
    method: str = "kcenter",
    metric: str = "l2",
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Split rows into named parts, cluster-aware.

    Args:
        X_or_clusters: a cluster id per row (1-D int array), or vectors (array, tensor, VectorTable), which are
            clustered by k-means with k = sqrt(rows).
        sizes: e.g. ``{"train": 0.8, "val": 0.2}`` (fractions summing to <= 1) or counts; rows left over go nowhere.
        mode: "stratified" puts every cluster into every split in proportion (each split gets a cluster's rows
            in proportion to the split's size, +-1); "disjoint" keeps every cluster inside one split (no
            near-identical rows across splits; sizes are then approximate); "coreset" (Goldener's smart split;
            needs vectors) fills every split but the last by ``select(method=...)`` among the rows still free,
            with per-label quotas when ``labels`` are given, and gives the last split the rest.
        labels: a class id per row, for mode="coreset": each split takes its share of every label.
        method: the selection method of mode="coreset" (any of ``select``'s; "kcenter" as Goldener).
        metric: "l2" or "cosine", for mode="coreset".
        seed: seed of the draws.

    Returns:
        {name: sorted row ids}.

    Example:
        >>> parts = split(np.array([0] * 8 + [1] * 4), {"train": 0.75, "val": 0.25}, seed=0)
        >>> [len(parts["train"]), len(parts["val"])]
        [9, 3]
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if mode == "coreset":
        if isinstance(X_or_clusters, np.ndarray) and X_or_clusters.ndim == 1:
            raise ValueError("mode='coreset' selects by distance: pass the vectors, not cluster ids")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        rows, _ = shape_of(X_or_clusters)
        label_ids = None if labels is None else check_labels(labels, "labels", rows)
        return _coreset(X_or_clusters, _targets(sizes, rows), label_ids, method, metric, seed)
    if labels is not None:
        raise ValueError(f"labels is used by mode='coreset'; mode={mode!r} splits by clusters")
    clusters = _cluster_ids(X_or_clusters, seed)
    rows = len(clusters)
    targets = _targets(sizes, rows)
    rng = np.random.default_rng(seed)
    _, dense = np.unique(clusters, return_inverse=True)
    cluster_sizes = np.bincount(dense)
    if mode == "stratified":
        # every cluster spread evenly over one random order: any contiguous segment is stratified
        order, rank = order_within_groups(dense, rng.random(rows))
        phase = rng.random(len(cluster_sizes))
        grouped = dense[order]
        order = order[np.argsort((rank + phase[grouped]) / cluster_sizes[grouped], kind="stable")]
        out, begin = {}, 0
        for name, count in targets.items():
            out[name] = np.sort(order[begin : begin + count])
            begin += count
        return out
    # disjoint: clusters in random order, each to the split furthest below its target
    names = list(targets)
    filled = np.zeros(len(names), dtype=np.int64)
    goal = np.array([targets[n] for n in names], dtype=np.int64)
    owner = np.full(len(cluster_sizes), -1, dtype=np.int64)
    for c in rng.permutation(len(cluster_sizes)):
        room = goal - filled
        if room.max() <= 0:
            break
        best = int(np.argmax(room))
        owner[c] = best
        filled[best] += cluster_sizes[c]
    return {name: np.flatnonzero(owner[dense] == i) for i, name in enumerate(names)}


def leakage(
    splits: Mapping[str, Any], X: Any, *, threshold: float = 0.95, chunk_rows: int = 4096
) -> list[tuple[str, int, str, int, float]]:
    """Pairs of rows in different splits whose cosine similarity is at least ``threshold`` (chunked: never a
    full pairwise matrix). Returns (split_a, row_a, split_b, row_b, similarity) tuples.

    Example:
        >>> X = np.array([[1.0, 0], [1.0, 0.01], [0, 1]])
        >>> [(a, i, b, j) for a, i, b, j, _ in leakage({"train": [0, 2], "val": [1]}, X)]
        [('train', 0, 'val', 1)]
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    rows, _ = shape_of(X)
    names = list(splits)
    ids = {name: check_row_ids(splits[name], f"splits[{name!r}]", rows) for name in names}
    x = as_matrix(X)
    check_finite(x, "X")
    warn_if_degenerate(x, "leakage")
    x = torch.nn.functional.normalize(x, dim=1)
    found: list[tuple[str, int, str, int, float]] = []
    for a_index, a in enumerate(names):
        for b in names[a_index + 1 :]:
            right = x[torch.from_numpy(ids[b])]
            for start in range(0, len(ids[a]), chunk_rows):
                rows_a = ids[a][start : start + chunk_rows]
                similarity = x[torch.from_numpy(rows_a)] @ right.T
                i, j = torch.nonzero(similarity >= threshold, as_tuple=True)
                for p, q in zip(i.tolist(), j.tolist()):
                    found.append((a, int(rows_a[p]), b, int(ids[b][q]), float(similarity[p, q])))
    return found
