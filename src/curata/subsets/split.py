"""split() and leakage(): cluster-aware train/val/test splits, and the near-identical pairs that cross them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from curata._internal.checks import check_finite, check_int, is_int
from curata._internal.grouping import order_within_groups
from curata.clustering.kmeans import KMeans
from curata.store.rows import as_matrix, rows_at, shape_of
from curata.store.samples import as_samples
from curata.subsets.cosine_space import check_space, fit_space_on, resolve_space
from curata.subsets.dedup import _check_threshold
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


def _kmeans_clusters(X: Any, seed: int) -> np.ndarray:
    rows, _ = shape_of(X)
    k = int(min(rows, max(2, round(np.sqrt(rows)))))
    return KMeans(k, seed=seed).fit(X).labels_


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
    clusters: Any = None,
    method: str = "kcenter",
    metric: str = "l2",
    within: Any = None,
    pooling: str = "mean",
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Split samples into named parts, cluster-aware; a sample's vectors always stay on one side.

    Args:
        X_or_clusters: a cluster id per row (1-D int array; -1 marks a sample with no cluster, which goes
            nowhere), or vectors (array, tensor, VectorTable), which are clustered by k-means with
            k = sqrt(samples). A VectorTable answers in sample ids (a sample with several vectors is pooled by
            ``pooling``: "mean" or "first"), an array in row ids.
        sizes: e.g. ``{"train": 0.8, "val": 0.2}`` (fractions summing to <= 1) or counts; rows left over go nowhere.
        mode: "stratified" puts every cluster into every split in proportion (each split gets a cluster's rows
            in proportion to the split's size, +-1); "disjoint" keeps every cluster inside one split (no
            near-identical rows across splits; sizes are then approximate); "coreset" (Goldener's smart split;
            needs vectors) fills every split but the last by ``select(method=...)`` among the rows still free,
            with per-label quotas when ``labels`` are given, and gives the last split the rest.
        labels: a class id per row, for mode="coreset": each split takes its share of every label.
        clusters: with vectors, the cluster id per row (e.g. ``table.column("cluster")``) that "stratified" and
            "disjoint" use instead of their own k-means (several vectors of a sample vote).
        method: the selection method of mode="coreset" (any of ``select``'s; "kcenter" as Goldener).
        metric: "l2" or "cosine", for mode="coreset".
        within: ids to split (e.g. those ``dedup`` kept); None: all.
        pooling: how a table's sample with several vectors becomes one, as in ``select``.
        seed: seed of the draws.

    Returns:
        {name: sorted ids}: sample ids for a VectorTable, row ids otherwise.

    Example:
        >>> parts = split(np.array([0] * 8 + [1] * 4), {"train": 0.75, "val": 0.25}, seed=0)
        >>> [len(parts["train"]), len(parts["val"])]
        [9, 3]
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    given_clusters = isinstance(X_or_clusters, np.ndarray) and X_or_clusters.ndim == 1
    if mode == "coreset":
        if given_clusters:
            raise ValueError("mode='coreset' selects by distance: pass the vectors, not cluster ids")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    elif labels is not None:
        raise ValueError(f"labels is used by mode='coreset'; mode={mode!r} splits by clusters")
    if given_clusters:
        if not np.issubdtype(X_or_clusters.dtype, np.integer):
            raise TypeError(f"a 1-D input must hold integer cluster ids, got dtype {X_or_clusters.dtype}")
        if clusters is not None:
            raise ValueError("clusters is for vectors; X_or_clusters already holds cluster ids")
        view = as_samples(X_or_clusters.astype(np.float32)[:, None])
        cluster_ids: np.ndarray | None = X_or_clusters.astype(np.int64)
    else:
        view = as_samples(X_or_clusters, pooling=pooling)
        cluster_ids = None if clusters is None else view.per_sample(clusters, "clusters", vote=True)
    label_ids = None if labels is None else view.per_sample(labels, "labels")
    inside = np.arange(len(view)) if within is None else np.unique(view.positions(within, "within"))
    if cluster_ids is not None:
        inside = inside[cluster_ids[inside] >= 0]  # samples with no cluster go nowhere
    if len(inside) < len(view):
        view = view.restrict(inside)
        cluster_ids = None if cluster_ids is None else cluster_ids[inside]
        label_ids = None if label_ids is None else label_ids[inside]
    targets = _targets(sizes, len(view))
    if mode == "coreset":
        parts = _coreset(view.X, targets, label_ids, method, metric, seed)
    else:
        if cluster_ids is None:
            cluster_ids = _kmeans_clusters(view.X, seed)
        parts = _by_clusters(cluster_ids, targets, mode, seed)
    return {name: np.sort(view.answer(positions)) for name, positions in parts.items()}


def _by_clusters(clusters: np.ndarray, targets: dict[str, int], mode: str, seed: int) -> dict[str, np.ndarray]:
    """Stratified or disjoint parts of the rows, by their clusters."""
    rows = len(clusters)
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
            out[name] = order[begin : begin + count]
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
    splits: Mapping[str, Any],
    X: Any,
    *,
    threshold: float | None = None,
    space: str = "auto",
    pooling: str = "mean",
    chunk_rows: int = 4096,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Pairs of samples in different splits whose cosine similarity, in the space ``dedup`` uses, is at least
    ``threshold``: the near-identical samples that leak from one split into another.

    X is read ``chunk_rows`` rows at a time (a VectorTable streams from disk; a full pairwise matrix is never made).

    Args:
        splits: {name: ids}, as ``split`` returns them (sample ids for a VectorTable, row ids for arrays).
        X: (rows, dim) array, tensor or VectorTable (several vectors of a sample pooled by ``pooling``).
        threshold: cosine in (0, 1]; None: the default of the space used, as ``dedup``.
        space: "whitened", "centred", "raw" or "auto" (the default), as ``dedup`` (fitted on all of X, so "auto"
            whitens when X holds at least 1.5 samples per dimension; ``dedup_space(X)`` says which).
        pooling: "mean" or "first", as ``select``.
        chunk_rows: rows compared at a time.
        seed: seed of the whitening's row sample.

    Returns:
        Arrays of equal length, one entry per pair, most similar first: ``split_a``, ``id_a``, ``split_b``,
        ``id_b`` and ``cosine``.

    Example:
        >>> X = np.array([[1.0, 0], [1.0, 0.01], [0, 1]])
        >>> found = leakage({"train": [0, 2], "val": [1]}, X, space="raw")
        >>> found["split_a"].tolist(), found["id_a"].tolist(), found["id_b"].tolist()
        (['train'], [0], [1])
    """
    check_space(space, auto=True)
    if threshold is not None:
        _check_threshold(threshold)
    check_int(chunk_rows, "chunk_rows", minimum=1)
    if not isinstance(splits, Mapping) or not splits:
        raise ValueError(f"splits must be a non-empty dict of {{name: ids}}, got {splits!r:.80}")
    view = as_samples(X, pooling=pooling)
    positions = {name: np.sort(view.positions(ids, f"splits[{name!r}]")) for name, ids in splits.items()}
    space = resolve_space(space, *shape_of(view.X))
    threshold = _check_threshold(threshold, space=space)
    cosine = fit_space_on([("X", view.X)], space, seed, chunk_rows)
    names = list(positions)
    found: list[tuple[np.ndarray, ...]] = []
    for a_index, a in enumerate(names):
        for b in names[a_index + 1 :]:
            for a_start in range(0, len(positions[a]), chunk_rows):
                rows_a = positions[a][a_start : a_start + chunk_rows]
                left = torch.nn.functional.normalize(cosine.apply(rows_at(view.X, rows_a)), dim=1)
                for b_start in range(0, len(positions[b]), chunk_rows):
                    rows_b = positions[b][b_start : b_start + chunk_rows]
                    right = torch.nn.functional.normalize(cosine.apply(rows_at(view.X, rows_b)), dim=1)
                    similarity = left @ right.T
                    i, j = torch.nonzero(similarity >= threshold, as_tuple=True)
                    if len(i):
                        values = similarity[i, j].double().numpy()
                        pair_names = (np.full(len(i), a), np.full(len(i), b))
                        found.append((pair_names[0], rows_a[i.numpy()], pair_names[1], rows_b[j.numpy()], values))
    no_ids, no_names = np.zeros(0, dtype=np.int64), np.array([], dtype=str)
    found.append((no_names, no_ids, no_names, no_ids, np.zeros(0)))
    split_a, rows_a, split_b, rows_b, values = (np.concatenate(parts) for parts in zip(*found))
    order = np.argsort(-values, kind="stable")
    return {
        "split_a": split_a[order],
        "id_a": view.answer(rows_a[order]),
        "split_b": split_b[order],
        "id_b": view.answer(rows_b[order]),
        "cosine": values[order],
    }
