"""retrieve(): the pool samples nearest a set of seeds (retrieval toward a target task, as DINOv2 built LVD-142M).

``method="neighbours"`` takes, for each seed, its ``per_seed`` nearest pool samples, and merges them without
repeats. ``method="clusters"`` (DataComp's image-based filter, DINOv2's choice for large seed sets) clusters the pool
(or takes a cluster id per row) and keeps every sample of the clusters nearest the seeds. Similarity is the cosine in
the space dedup and contamination use (``space``: whitened, centred or raw, fitted on both sets together), or minus
the euclidean distance (``metric="l2"``). Both sets are read ``chunk_rows`` rows at a time (VectorTables stream from
disk) with contamination's scan (``pair_blocks``), so memory is O(chunk_rows^2 + seeds x per_seed) whatever the pool's
size, and ``chunk_rows`` changes the speed, never the answer (ties go to the lower id). Under torchrun each rank scans
its block of the pool's rows for the neighbours and one all-gather merges them, with the answer of one process (the
space's fit, the near-copy test and the clusters' assignment read the whole pool on every rank).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from curata._internal.checks import check_int, check_labels
from curata._internal.distributed import all_gather_rows, is_distributed, rank_and_world, shard_range
from curata.store.rows import TableRows, as_matrix, shape_of
from curata.store.table import VectorTable
from curata.subsets.contamination import cluster_rows, contamination, pair_blocks, similarities
from curata.subsets.cosine_space import check_space, fit_space_on, resolve_space
from curata.subsets.dedup import _check_threshold

__all__ = ["METHODS", "METRICS", "retrieve", "retrieve_space"]

METHODS = ("neighbours", "clusters")
METRICS = ("cosine", "l2")
_VECTOR_SETTINGS = ("pool", "keep", "remove")  # the vectorizer settings that decide what a vector means


def retrieve(
    pool: Any,
    seeds: Any,
    *,
    per_seed: int = 4,
    method: str = "neighbours",
    metric: str = "cosine",
    space: str = "auto",
    n_clusters: int | None = None,
    clusters: Any = None,
    probes: int = 1,
    exclude_near_copies: bool = False,
    threshold: float | None = None,
    chunk_rows: int = 4096,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pool samples nearest the seeds, each once, with the seed it was found for and its similarity.

    Args:
        pool: (rows, dim) array, tensor or VectorTable to retrieve from (e.g. a deduplicated web pool).
        seeds: the samples that stand for the target (array, tensor or VectorTable) of the same dim; from another
            table, it must have been described by the same model and settings (the tables' fingerprints).
        per_seed: pool samples taken for each seed (``method="neighbours"``).
        method: "neighbours": each seed's ``per_seed`` most similar pool samples, merged. "clusters": each seed
            picks its ``probes`` nearest pool clusters (by centroid), and every pool sample of a picked cluster is
            returned (whatever ``per_seed``).
        metric: "cosine" (in ``space``) or "l2" (similarity: minus the euclidean distance of the rows as stored).
        space: "whitened", "centred", "raw" or "auto", as ``dedup`` and ``contamination``, fitted on the pool's and
            the seeds' rows together (``retrieve_space`` says which "auto" picks); also the space of the near-copy
            test of ``exclude_near_copies``.
        n_clusters: ``method="clusters"``: k-means on the pool (``metric``; fitted on a seeded sample of at most 256
            rows per cluster, as ``contamination(reference_clusters=)``), then every row's nearest centroid.
        clusters: ``method="clusters"`` instead of ``n_clusters``: a cluster id per pool row, or the name of a
            column of the pool table (``"cluster"``, ``"level_1"``); centroids are the clusters' mean rows (in
            ``space`` for cosine); rows with a negative id belong to no cluster and are never returned.
        probes: ``method="clusters"``: clusters each seed picks.
        exclude_near_copies: leave out pool samples that ``contamination(pool, seeds, threshold=threshold,
            space=space)`` flags as near-copies of a seed, so that a test set used as seeds does not leak into
            training data; each seed then takes its nearest samples among the others.
        threshold: the near-copy cosine of ``exclude_near_copies`` (None: the space's default, as contamination).
        chunk_rows: rows of each set compared at a time.
        seed: seed of the whitening's row sample and of the k-means of ``n_clusters``.

    Returns:
        (the retrieved ids, sorted; the seed each was found for; that similarity, float64). Given VectorTables, the
        ids are sample ids (the ``idx`` column) for both the pool and the seeds, and a sample with several vectors
        counts by its best row (the most similar pair of rows); given arrays, row positions. A sample found for
        several seeds is listed once, for the seed most similar to it (ties: the lower seed id). With "clusters",
        the seed is the one most similar to the sample's cluster centroid among the seeds that picked it, and the
        similarity is that seed's to the centroid (the same for every sample of the cluster; a multi-vector sample
        in several picked clusters takes the highest).

    Example:
        >>> pool = np.array([[1.0, 0.0], [0.7, 0.3], [0.0, 1.0], [0.3, 0.7], [-1.0, 0.0]])
        >>> seeds = np.array([[1.0, 0.05], [0.05, 1.0]])
        >>> ids, found_for, similarity = retrieve(pool, seeds, per_seed=2, space="raw")
        >>> ids.tolist(), found_for.tolist()
        ([0, 1, 2, 3], [0, 0, 1, 1])
        >>> retrieve(pool, seeds, per_seed=1, space="raw", exclude_near_copies=True, threshold=0.99)[0].tolist()
        [1, 3]
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    check_space(space, auto=True)
    check_int(per_seed, "per_seed", minimum=1)
    check_int(probes, "probes", minimum=1)
    check_int(chunk_rows, "chunk_rows", minimum=1)
    check_int(n_clusters, "n_clusters", minimum=1, allow_none=True)
    if threshold is not None:
        _check_threshold(threshold)
    if not isinstance(exclude_near_copies, bool):
        raise TypeError(f"exclude_near_copies must be True or False, got {exclude_near_copies!r}")
    rows, dim = _shape(pool, "pool")
    seed_rows, seed_dim = _shape(seeds, "seeds")
    if seed_dim != dim:
        raise ValueError(f"seeds have dim {seed_dim}, pool has dim {dim}: describe both with the same model")
    if seed_rows == 0:
        raise ValueError("seeds hold no rows: pass at least one seed")
    _check_same_model(pool, seeds)
    labels = _cluster_labels(pool, method, n_clusters, clusters, rows)
    pool_ids = pool.column("idx") if isinstance(pool, VectorTable) else np.arange(rows)
    seed_ids = seeds.column("idx") if isinstance(seeds, VectorTable) else np.arange(seed_rows)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
    if rows == 0:
        return empty
    prepare: Callable[[torch.Tensor], torch.Tensor] = _as_float
    if metric == "cosine":
        resolved = resolve_space(space, rows + seed_rows, dim)
        prepare = fit_space_on([("pool", pool), ("seeds", seeds)], resolved, seed, chunk_rows).apply
    excluded = None
    if exclude_near_copies:
        copies = contamination(pool, seeds, threshold=threshold, space=space, chunk_rows=chunk_rows, seed=seed)[0]
        excluded = torch.from_numpy(np.isin(pool_ids, copies))
    if method == "neighbours":
        most = int(np.unique(pool_ids, return_counts=True)[1].max())  # rows of the pool's largest sample
        scores, found = _nearest_rows(pool, seeds, prepare, metric, per_seed * most, excluded, chunk_rows)
        real = found >= 0
        seed_of = np.broadcast_to(seed_ids[:, None], found.shape)[real]
        per_seed_best = _top_per_group(seed_of, pool_ids[found[real]], scores[real], per_seed)
        sample, seed_for, score = _top_per_group(per_seed_best[1], per_seed_best[0], per_seed_best[2], 1)
    else:
        assert labels is not None or n_clusters is not None
        sample, seed_for, score = _by_clusters(
            pool, seeds, prepare, metric, labels, n_clusters, probes, excluded, pool_ids, seed_ids, chunk_rows, seed
        )
    if len(sample) == 0:
        return empty
    return sample, seed_for, score.astype(np.float64)


def retrieve_space(pool: Any, seeds: Any, space: str = "auto") -> str:
    """The space ``retrieve(pool, seeds, space=space)`` takes cosines in: "auto" resolved by the rows of both sets
    together and their dim, the others as given.

    Example:
        >>> retrieve_space(np.zeros((400, 1280)), np.zeros((60, 1280)))
        'centred'
    """
    check_space(space, auto=True)
    rows, dim = _shape(pool, "pool")
    return resolve_space(space, rows + _shape(seeds, "seeds")[0], dim)


def _as_float(block: torch.Tensor) -> torch.Tensor:
    return block.to(torch.float32)


def _shape(X: Any, name: str) -> tuple[int, int]:
    """(rows, dim) of X, or a ValueError naming the argument."""
    try:
        return shape_of(X)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{name}: {error}") from None


def _check_same_model(pool: Any, seeds: Any) -> None:
    """Refuse seeds from a table that ``describe`` filled with another model or settings than the pool's."""
    if not (isinstance(pool, VectorTable) and isinstance(seeds, VectorTable)):
        return
    ours, theirs = pool.fingerprint, seeds.fingerprint
    if "embedder" not in ours or "embedder" not in theirs:  # written from arrays: no model recorded to compare
        return
    recorded = {
        "model": lambda f: f.get("embedder"),
        "vectorizer": lambda f: {key: (f.get("vectorizer") or {}).get(key) for key in _VECTOR_SETTINGS},
        "normalize": lambda f: f.get("normalize", "none"),
    }
    for what, value in recorded.items():
        if value(ours) != value(theirs):
            raise ValueError(
                f"seeds were described with another {what} than pool (their tables' fingerprints differ): their "
                "vectors are not comparable; describe the seeds with the pool's model and settings"
            )


def _cluster_labels(pool: Any, method: str, n_clusters: Any, clusters: Any, rows: int) -> np.ndarray | None:
    """The given cluster id per pool row (``clusters``), checked before any work; None for k-means or neighbours."""
    if method != "clusters":
        if clusters is not None or n_clusters is not None:
            raise ValueError("clusters= and n_clusters= are for method='clusters'")
        return None
    if (clusters is None) == (n_clusters is None):
        raise ValueError(
            "method='clusters' needs one of n_clusters= (k-means on the pool) or clusters= (a cluster id per pool "
            "row, or the name of a column of the pool table)"
        )
    if n_clusters is not None:
        if n_clusters > rows:
            raise ValueError(f"n_clusters ({n_clusters}) must be <= the pool's rows ({rows})")
        return None
    if isinstance(clusters, str):
        if not isinstance(pool, VectorTable):
            raise TypeError(f"clusters={clusters!r} names a column: pass a VectorTable as pool, or the ids themselves")
        if clusters not in pool.columns:
            raise ValueError(f"clusters={clusters!r} is not a column of the pool table; columns: {pool.columns}")
        return check_labels(pool.column(clusters), "clusters", rows)
    return check_labels(clusters, "clusters", rows)


def _sorted_top(scores: torch.Tensor, ids: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the ``keep`` highest scores and their ids, ordered by score (descending) then id: the same whatever
    the order of the columns, so that chunking never changes the answer."""
    keep = min(keep, scores.shape[1])
    by_id = torch.sort(ids, dim=1, stable=True).indices
    scores, ids = scores.gather(1, by_id), ids.gather(1, by_id)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :keep]
    return scores.gather(1, order), ids.gather(1, order)


def _nearest_rows(
    pool: Any,
    seeds: Any,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    metric: str,
    keep: int,
    excluded: torch.Tensor | None,
    chunk_rows: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per seed row, the ``keep`` pool rows most similar to it (ties: the lower row; -1 where the pool has fewer
    rows not excluded): (similarities, pool rows), each (seed rows, keep)."""
    seed_rows = shape_of(seeds)[0]
    best = torch.full((seed_rows, keep), -torch.inf)
    found = torch.full((seed_rows, keep), -1, dtype=torch.int64)
    rank, world = rank_and_world() if is_distributed() else (0, 1)
    low, high = shard_range(shape_of(pool)[0], rank, world)  # under torchrun each rank scans its block of rows
    shard = TableRows(pool, start=low, stop=high) if isinstance(pool, VectorTable) else pool[low:high]
    for start, stop, seed_start, sims in pair_blocks(shard, seeds, prepare, chunk_rows, metric):
        start, stop = start + low, stop + low
        block = sims.T  # (seed rows, pool rows)
        if excluded is not None:
            block = block.masked_fill(excluded[start:stop], -torch.inf)
        here = slice(seed_start, seed_start + len(block))
        top = torch.topk(block, min(keep, block.shape[1]), dim=1)
        cut = top.values[:, -1:]
        columns = top.indices + start
        tied = torch.nonzero((block >= cut).sum(dim=1) > top.values.shape[1]).reshape(-1)
        values = top.values
        if len(tied):  # a tie at the cut: the lower rows win, as a full sort would say
            every = torch.arange(start, stop).expand(len(tied), -1)
            values[tied], columns[tied] = _sorted_top(block[tied], every, values.shape[1])
        merged = _sorted_top(torch.cat([best[here], values], 1), torch.cat([found[here], columns], 1), keep)
        best[here], found[here] = merged
    if world > 1:  # one merge: every rank's (seed rows, keep) best, side by side, cut to the best keep again
        counts = [seed_rows] * world
        every_best = all_gather_rows(best, counts).reshape(world, seed_rows, keep).permute(1, 0, 2)
        every_found = all_gather_rows(found, counts).reshape(world, seed_rows, keep).permute(1, 0, 2)
        best, found = _sorted_top(every_best.reshape(seed_rows, -1), every_found.reshape(seed_rows, -1), keep)
    found[torch.isneginf(best)] = -1
    return best.numpy(), found.numpy()


def _top_per_group(
    group: np.ndarray, item: np.ndarray, score: np.ndarray, limit: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(group, item, score) triples: per (group, item) pair its highest score, then per group the ``limit`` items
    of highest score (ties: the lower item). Returns (group, item, score), sorted by group then score.

    Example:
        >>> g, i, s = _top_per_group(np.array([0, 0, 0, 1]), np.array([5, 5, 6, 5]), np.array([0.1, 0.9, 0.5, 0.2]), 1)
        >>> g.tolist(), i.tolist(), s.tolist()
        ([0, 1], [5, 5], [0.9, 0.2])
    """
    if len(group) == 0:
        return group, item, score
    order = np.lexsort((-score, item, group))
    group, item, score = group[order], item[order], score[order]
    first = np.r_[True, (group[1:] != group[:-1]) | (item[1:] != item[:-1])]
    group, item, score = group[first], item[first], score[first]
    order = np.lexsort((item, -score, group))
    group, item, score = group[order], item[order], score[order]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    rank = np.arange(len(group)) - np.repeat(starts, np.diff(np.r_[starts, len(group)]))
    kept = rank < limit
    return group[kept], item[kept], score[kept]


def _centroids(
    pool: Any, prepare: Callable[[torch.Tensor], torch.Tensor], labels: np.ndarray, metric: str, chunk_rows: int
) -> tuple[torch.Tensor, np.ndarray]:
    """The mean prepared row of each cluster (unit length for cosine), read ``chunk_rows`` at a time, and the
    cluster ids they stand for (negative ids: no cluster)."""
    names = np.unique(labels[labels >= 0])
    sums: torch.Tensor | None = None
    rows = len(labels)
    for start in range(0, rows, chunk_rows):
        block = prepare(as_matrix(pool, start, min(start + chunk_rows, rows))).double()
        if sums is None:
            sums = torch.zeros(len(names), block.shape[1], dtype=torch.float64)
        member = labels[start : start + len(block)] >= 0
        where = np.searchsorted(names, labels[start : start + len(block)][member])
        sums.index_add_(0, torch.from_numpy(where), block[torch.from_numpy(member)])
    assert sums is not None
    counts = torch.from_numpy(np.bincount(np.searchsorted(names, labels[labels >= 0]), minlength=len(names)))
    means = (sums / counts[:, None]).float()
    return (torch.nn.functional.normalize(means, dim=1) if metric == "cosine" else means), names


def _by_clusters(
    pool: Any,
    seeds: Any,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    metric: str,
    labels: np.ndarray | None,
    n_clusters: int | None,
    probes: int,
    excluded: torch.Tensor | None,
    pool_ids: np.ndarray,
    seed_ids: np.ndarray,
    chunk_rows: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pool sample of the clusters nearest the seeds: (sample, seed, similarity of the seed to the centroid)."""
    if labels is None:
        assert n_clusters is not None
        centroids, labels = cluster_rows(pool, prepare, n_clusters, chunk_rows, seed, metric)
        names = np.arange(len(centroids))
    else:
        centroids, names = _centroids(pool, prepare, labels, metric, chunk_rows)
    if len(names) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    seed_rows = shape_of(seeds)[0]
    picks, scores = [], []
    for start in range(0, seed_rows, chunk_rows):
        block = prepare(as_matrix(seeds, start, min(start + chunk_rows, seed_rows)))
        every = torch.arange(len(names)).expand(len(block), -1)
        top_scores, top = _sorted_top(similarities(block, centroids, metric), every, probes)
        picks.append(top.numpy())
        scores.append(top_scores.numpy())
    picked, score = np.concatenate(picks), np.concatenate(scores)
    seed_of = np.broadcast_to(seed_ids[:, None], picked.shape).reshape(-1)
    seed_of, cluster, score = _top_per_group(seed_of, picked.reshape(-1), score.reshape(-1), probes)
    cluster, seed_of, score = _top_per_group(cluster, seed_of, score, 1)  # per cluster, the seed nearest it
    position = np.full(len(names), -1, dtype=np.int64)
    position[cluster] = np.arange(len(cluster))
    member = labels >= 0
    row_cluster = np.full(len(labels), -1, dtype=np.int64)
    row_cluster[member] = position[np.searchsorted(names, labels[member])]
    kept = row_cluster >= 0
    if excluded is not None:
        kept &= ~excluded.numpy()
    where = row_cluster[kept]
    sample, seed_for, similarity = _top_per_group(pool_ids[kept], seed_of[where], score[where], 1)
    order = np.argsort(sample, kind="stable")
    return sample[order], seed_for[order], similarity[order]
