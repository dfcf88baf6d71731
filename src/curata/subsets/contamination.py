"""contamination(): rows of one set that nearly duplicate a row of another (train against test), memory bounded.

Both sets are read ``chunk_rows`` rows at a time (arrays, tensors or VectorTables, which stream from disk), so the
memory is O(chunk_rows^2) whatever their sizes. Comparing every pair costs O(rows x reference rows x dim): fine for
a test set of thousands against millions. For two large sets, ``reference_clusters=k`` compares each row only with
the reference rows of its ``probes`` nearest reference clusters (k-means on the reference): about k / probes times
less work, at the risk of missing a pair split across clusters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from curata._internal.checks import check_int
from curata._internal.grouping import rows_per_group
from curata.clustering.kmeans import KMeans
from curata.store.rows import as_matrix, rows_at, shape_of
from curata.store.samples import as_samples
from curata.subsets.cosine_space import CosineSpace, check_space, fit_space_on, resolve_space
from curata.subsets.dedup import _check_threshold

__all__ = ["cluster_rows", "contamination", "contamination_space", "pair_blocks", "similarities"]


def contamination(
    X: Any,
    reference: Any,
    *,
    threshold: float | None = None,
    space: str = "auto",
    reference_clusters: int | None = None,
    probes: int = 2,
    chunk_rows: int = 4096,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of ``X`` whose cosine similarity to some row of ``reference`` is at least ``threshold``.

    Args:
        X: (rows, dim) array, tensor or VectorTable, e.g. the training set.
        reference: the set to protect, e.g. the test set, with the same dim.
        threshold: cosine similarity in (0, 1]; None: the default of the space used, as ``dedup``.
        space: "whitened", "centred", "raw" or "auto" (the default), as ``dedup``; fitted on both sets together,
            so "auto" whitens when X and reference together hold at least 1.5 rows per dimension
            (``contamination_space(X, reference)`` says which).
        reference_clusters: None compares every pair (exact). k: cluster the reference (cosine k-means on a
            seeded sample of at most 256 rows per cluster) and compare each row of X only with the reference rows
            of its ``probes`` nearest clusters; about reference rows / 1000 suits two sets of millions.
        probes: clusters each row of X is compared with, under ``reference_clusters``.
        chunk_rows: rows of each set compared at a time.
        seed: seed of the whitening's row sample (when both sets hold over 65,536 rows) and of the clustering.

    Returns:
        (sorted rows of X that are contaminated, the most similar reference row of each, that similarity); for
        VectorTables, sample ids instead of rows (a sample with several vectors is pooled by their mean).

    Example:
        >>> train = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
        >>> test = np.array([[0.0, 1.01], [-1.0, 0.1]])
        >>> rows, nearest, similarity = contamination(train, test, threshold=0.95, space="raw")
        >>> rows.tolist(), nearest.tolist()
        ([1], [0])
    """
    check_space(space, auto=True)
    if threshold is not None:
        _check_threshold(threshold)
    check_int(chunk_rows, "chunk_rows", minimum=1)
    shape_of(X), shape_of(reference)  # 2-D, or a clear error before any read
    x_view, ref_view = as_samples(X), as_samples(reference)
    X, reference = x_view.X, ref_view.X
    rows, dim = shape_of(X)
    ref_rows, ref_dim = shape_of(reference)
    if ref_dim != dim:
        raise ValueError(f"reference has dim {ref_dim}, X has dim {dim}: describe both with the same model")
    check_int(reference_clusters, "reference_clusters", minimum=1, allow_none=True)
    if reference_clusters is not None and reference_clusters > ref_rows:
        raise ValueError(f"reference_clusters ({reference_clusters}) must be <= the reference's rows ({ref_rows})")
    check_int(probes, "probes", minimum=1)
    space = resolve_space(space, rows + ref_rows, dim)
    threshold = _check_threshold(threshold, space=space)
    cosine = fit_space_on([("X", X), ("reference", reference)], space, seed, chunk_rows)
    if reference_clusters is None:
        best, nearest = _all_pairs(X, reference, cosine, chunk_rows)
    else:
        best, nearest = _within_clusters(X, reference, cosine, reference_clusters, probes, chunk_rows, seed)
    hit = torch.nonzero(best >= threshold).reshape(-1).numpy()
    found, nearest_ids = x_view.answer(hit), ref_view.answer(nearest[hit].numpy())
    order = np.argsort(found, kind="stable")
    return found[order], nearest_ids[order], best[hit].numpy().astype(np.float64)[order]


def contamination_space(X: Any, reference: Any, space: str = "auto") -> str:
    """The space ``contamination(X, reference, space=space)`` compares in: "auto" resolved by the rows of both sets
    together (samples, for tables) and their dim, the others as given.

    Example:
        >>> contamination_space(np.zeros((400, 1280)), np.zeros((60, 1280)))
        'centred'
        >>> contamination_space(np.zeros((1800, 1280)), np.zeros((200, 1280)))
        'whitened'
    """
    check_space(space, auto=True)
    rows, dim = shape_of(as_samples(X).X)
    return resolve_space(space, rows + shape_of(as_samples(reference).X)[0], dim)


def _all_pairs(X: Any, reference: Any, cosine: CosineSpace, chunk_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of X: the largest cosine to any reference row, and that row."""
    rows = shape_of(X)[0]
    best = torch.full((rows,), -2.0)
    nearest = torch.full((rows,), -1, dtype=torch.int64)
    for start, stop, ref_start, sims in pair_blocks(X, reference, cosine.apply, chunk_rows):
        _keep_better(best, nearest, torch.arange(start, stop), sims, ref_start)
    return best, nearest


def similarities(a: torch.Tensor, b: torch.Tensor, metric: str = "cosine") -> torch.Tensor:
    """(rows of a, rows of b) similarities of prepared rows: dot products (cosines of unit rows) for "cosine",
    minus the euclidean distances for "l2" (larger is nearer in both).

    Example:
        >>> similarities(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]]), "l2").tolist()
        [[-5.0]]
    """
    if metric == "cosine":
        return a @ b.T
    return -torch.cdist(a, b)


def pair_blocks(
    X: Any, reference: Any, prepare: Callable[[torch.Tensor], torch.Tensor], chunk_rows: int, metric: str = "cosine"
) -> Iterator[tuple[int, int, int, torch.Tensor]]:
    """Every pair of ``chunk_rows``-row chunks of X and reference (arrays, tensors or VectorTables streamed from
    disk), X read once and the reference once per chunk of X, each chunk mapped by ``prepare``: yields (first X
    row, X stop, first reference row, their (X rows, reference rows) ``similarities``). Memory: O(chunk_rows^2).

    Example:
        >>> [(a, b, r, tuple(s.shape)) for a, b, r, s in pair_blocks(np.eye(3), np.eye(3), torch.as_tensor, 2)]
        [(0, 2, 0, (2, 2)), (0, 2, 2, (2, 1)), (2, 3, 0, (1, 2)), (2, 3, 2, (1, 1))]
    """
    rows, ref_rows = shape_of(X)[0], shape_of(reference)[0]
    for start in range(0, rows, chunk_rows):
        stop = min(start + chunk_rows, rows)
        block = prepare(as_matrix(X, start, stop))
        for ref_start in range(0, ref_rows, chunk_rows):
            ref = prepare(as_matrix(reference, ref_start, min(ref_start + chunk_rows, ref_rows)))
            yield start, stop, ref_start, similarities(block, ref, metric)


def _keep_better(
    best: torch.Tensor, nearest: torch.Tensor, rows: torch.Tensor, sims: torch.Tensor, offset: Any
) -> None:
    """Fold a (rows, candidates) block of cosines into the running best; ``offset``: the candidates' row ids (an
    int added to the column, or a tensor indexed by it)."""
    value, where = sims.max(dim=1)
    ids = where + offset if isinstance(offset, int) else offset[where]
    better = value > best[rows]
    best[rows] = torch.where(better, value, best[rows])
    nearest[rows] = torch.where(better, ids, nearest[rows])


def _within_clusters(
    X: Any, reference: Any, cosine: CosineSpace, k: int, probes: int, chunk_rows: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of X: the largest cosine to a reference row of its ``probes`` nearest reference clusters."""
    rows = shape_of(X)[0]
    centroids_t, ref_labels = cluster_rows(reference, cosine.apply, k, chunk_rows, seed)
    probes = min(probes, k)
    probed = np.empty((rows, probes), dtype=np.int64)
    for start in range(0, rows, chunk_rows):
        block = cosine.apply(as_matrix(X, start, min(start + chunk_rows, rows)))
        probed[start : start + len(block)] = torch.topk(block @ centroids_t.T, probes, dim=1).indices.numpy()
    best = torch.full((rows,), -2.0)
    nearest = torch.full((rows,), -1, dtype=torch.int64)
    x_groups = rows_per_group(probed.reshape(-1))  # positions in the flattened (rows, probes) array
    cluster_of_group = np.unique(probed)
    ref_members = dict(zip(np.unique(ref_labels).tolist(), rows_per_group(ref_labels)))
    for cluster, flat in zip(cluster_of_group.tolist(), x_groups):
        members = ref_members.get(cluster)
        if members is None:
            continue
        x_rows = np.sort(flat // probes)
        for start in range(0, len(x_rows), chunk_rows):  # X, usually the larger set, is read once per probe
            ids = x_rows[start : start + chunk_rows]
            block = cosine.apply(rows_at(X, ids))
            for ref_start in range(0, len(members), chunk_rows):
                ref_ids = members[ref_start : ref_start + chunk_rows]
                ref = cosine.apply(rows_at(reference, ref_ids))
                _keep_better(best, nearest, torch.from_numpy(ids), block @ ref.T, torch.from_numpy(ref_ids))
    return best, nearest


def cluster_rows(
    X: Any, prepare: Callable[[torch.Tensor], torch.Tensor], k: int, chunk_rows: int, seed: int, metric: str = "cosine"
) -> tuple[torch.Tensor, np.ndarray]:
    """k-means (``metric``) on a seeded sample of at most 256 prepared rows of X per cluster, then every row's
    nearest centroid, read ``chunk_rows`` at a time. Returns (centroids, unit rows for "cosine"; cluster per row).

    Example:
        >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
        >>> centroids, labels = cluster_rows(X, torch.as_tensor, 2, 3, seed=0, metric="l2")
        >>> bool(labels[0] == labels[1] != labels[2] == labels[3])
        True
    """
    rows = shape_of(X)[0]
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(rows, min(rows, 256 * k), replace=False))
    centroids = KMeans(k, metric=metric, seed=seed).fit(prepare(rows_at(X, sample))).cluster_centers_
    centroids_t = torch.from_numpy(np.asarray(centroids, dtype=np.float32))
    if metric == "cosine":
        centroids_t = torch.nn.functional.normalize(centroids_t, dim=1)
    labels = np.empty(rows, dtype=np.int64)
    for start in range(0, rows, chunk_rows):
        block = prepare(as_matrix(X, start, min(start + chunk_rows, rows)))
        labels[start : start + len(block)] = torch.argmax(similarities(block, centroids_t, metric), dim=1).numpy()
    return centroids_t, labels
