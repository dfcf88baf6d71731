"""select(): pick n rows to annotate or to keep: coverage, density, kernel herding, ZCore, clusters or random."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from curata._internal.checks import check_int, first_nonfinite_row
from curata._internal.grouping import order_within_groups, rows_per_group
from curata.clustering.kmeans import KMeans, assign
from curata.store.cosine_check import warn_if_degenerate
from curata.store.rows import (
    TableRows,
    as_matrix,
    keep_streamed_memory_in_budget,
    return_large_buffers_to_the_os,
    rows_at,
    shape_of,
)
from curata.store.samples import as_samples
from curata.store.table import VectorTable
from curata.subsets.curate import water_fill
from curata.subsets.kernel_points import kernel_points
from curata.subsets.nearest_greedy import greedy_by_nearest
from curata.subsets.quotas import proportional_quotas
from curata.subsets.zcore import zcore_scores

__all__ = ["select", "METHODS"]

METHODS = ("kcenter", "kernel_points", "zcore", "densest", "farthest", "cluster_balanced", "typical", "random")
_METRICS = ("l2", "cosine")
_OPTIONS = {
    "kernel_points": ("kernel", "bandwidth", "reference_rows"),
    "zcore": ("samples", "sample_dims", "neighbors", "exponent"),
}
# Bytes per row that each method holds beside the float32 row itself (its per-row arrays and their temporaries);
# zcore also keeps a transposed copy of the rows, so it pays the row twice.
_WORKING_BYTES_PER_ROW = {
    "kcenter": 32,
    "kernel_points": 64,
    "zcore": 48,
    "densest": 512,
    "farthest": 512,
    "cluster_balanced": 128,
    "typical": 128,
}
# Reading random rows of a VectorTable scans windows as large as the result beside it: two more copies per row.
_TABLE_READ_COPIES = 2
_CENTROID_BLOCK_ROWS = 16384


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


def _check_options(method: str, options: dict[str, Any]) -> None:
    allowed = _OPTIONS.get(method, ())
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        takes = f"takes {', '.join(allowed)}" if allowed else "takes no options"
        raise TypeError(f"select() got option(s) {', '.join(unknown)} that method={method!r} does not take; it {takes}")


def _by_clusters(
    x: torch.Tensor,
    n: int,
    method: str,
    excluded: np.ndarray,
    labels: np.ndarray | None,
    rng: np.random.Generator,
    seed: int,
) -> np.ndarray:
    rows = len(x)
    candidates = np.flatnonzero(~excluded)
    if labels is None:
        km = KMeans(n, seed=seed).fit(x if len(candidates) == rows else x[torch.from_numpy(candidates)])
        labels = np.full(rows, -1, dtype=np.int64)
        labels[candidates] = km.labels_
    _, dense = np.unique(labels[candidates], return_inverse=True)
    sizes = np.bincount(dense)
    if method == "cluster_balanced":
        budget = water_fill(np.zeros(len(sizes), dtype=np.int64), sizes, np.array([n]), rng)
        order, rank = order_within_groups(dense, rng.random(len(candidates)))
        return np.sort(candidates[order][rank < budget[dense[order]]])
    # typical: the row nearest each cluster's centroid, largest clusters first, then the next nearest. Sums and
    # distances in float64, a block of rows at a time (never a float64 copy of the rows).
    steps = range(0, len(candidates), _CENTROID_BLOCK_ROWS)
    dense_t = torch.from_numpy(dense)
    centroids = torch.zeros((len(sizes), x.shape[1]), dtype=torch.float64)
    for s in steps:
        block = x[torch.from_numpy(candidates[s : s + _CENTROID_BLOCK_ROWS])].double()
        centroids.index_add_(0, dense_t[s : s + _CENTROID_BLOCK_ROWS], block)
    centroids /= torch.from_numpy(sizes)[:, None]
    distance = np.empty(len(candidates), dtype=np.float64)
    for s in steps:
        block = x[torch.from_numpy(candidates[s : s + _CENTROID_BLOCK_ROWS])].double()
        block -= centroids[dense_t[s : s + _CENTROID_BLOCK_ROWS]]
        distance[s : s + _CENTROID_BLOCK_ROWS] = torch.linalg.vector_norm(block, dim=1).square_().numpy()
    order, ranks = order_within_groups(dense, distance)
    rank = np.empty(len(candidates), dtype=np.int64)
    rank[order] = ranks
    priority = np.lexsort((-sizes[dense], rank))
    return np.sort(candidates[priority[:n]])


def _pick(
    x: torch.Tensor,
    n: int,
    method: str,
    excluded: np.ndarray,
    clusters: np.ndarray | None,
    rng: np.random.Generator,
    seed: int,
    options: dict[str, Any],
) -> np.ndarray:
    """``n`` local row ids of one group (a label, a chunk, or the whole pool)."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    candidates = np.flatnonzero(~excluded)
    if method == "random":
        return np.sort(rng.choice(candidates, n, replace=False))
    if method == "kcenter":
        return _farthest_first(x, n, excluded, rng)
    if method == "kernel_points":
        return kernel_points(x, n, anchors=excluded, rng=rng, **options)
    if method == "zcore":
        scores = zcore_scores(x, rng=rng, **options)
        scores[excluded] = -np.inf
        return np.argsort(-scores, kind="stable")[:n]
    if method in ("densest", "farthest"):
        return candidates[greedy_by_nearest(x[torch.from_numpy(candidates)], n, densest=method == "densest")]
    return _by_clusters(x, n, method, excluded, clusters, rng, seed)


def _parts(
    rows: int,
    n: int,
    excluded: np.ndarray,
    labels: np.ndarray | None,
    chunk_rows: int | None,
    rng: np.random.Generator,
) -> list[tuple[np.ndarray, int]]:
    """(row ids, quota) of every group the selection runs in: per label, then per random chunk of a label."""
    groups = [np.arange(rows)] if labels is None else rows_per_group(labels)
    quotas = proportional_quotas(np.array([int((~excluded[g]).sum()) for g in groups]), n)
    parts: list[tuple[np.ndarray, int]] = []
    for group, quota in zip(groups, quotas.tolist()):
        if chunk_rows is None or len(group) <= chunk_rows:
            parts.append((group, quota))
            continue
        count = -(-len(group) // chunk_rows)
        chunks = np.array_split(group[rng.permutation(len(group))], count)
        chunk_quotas = proportional_quotas(np.array([int((~excluded[c]).sum()) for c in chunks]), quota)
        parts.extend((np.sort(c), q) for c, q in zip(chunks, chunk_quotas.tolist()))
    return parts


def _chunk_for_budget(
    method: str, dim: int, chunk_rows: int | None, memory_budget: int | None, on_disk: bool
) -> int | None:
    """``chunk_rows``, lowered so that a part's float32 rows, their reading and the method's per-row arrays fit
    the budget."""
    if memory_budget is None or method == "random":
        return chunk_rows
    copies = 1 + (method == "zcore") + (_TABLE_READ_COPIES if on_disk else 0)
    per_row = dim * 4 * copies + _WORKING_BYTES_PER_ROW[method]
    fitting = memory_budget // per_row
    if fitting < 2:
        raise ValueError(
            f"memory_budget={memory_budget} bytes cannot hold 2 rows of dim {dim} for method={method!r} "
            f"({per_row} bytes per row); give at least {2 * per_row}"
        )
    return fitting if chunk_rows is None else min(chunk_rows, fitting)


def _prepared(X: Any, group: np.ndarray, metric: str) -> torch.Tensor:
    """The float32 rows ``group`` (sorted) of X, checked for NaN and, for "cosine", L2-normalised."""
    x = as_matrix(X) if len(group) == shape_of(X)[0] else rows_at(X, group)
    bad = first_nonfinite_row(x)
    if bad is not None:
        raise ValueError(f"X holds NaN or inf (row {int(group[bad])})")
    if metric == "cosine":
        norms = torch.linalg.vector_norm(x, dim=1)
        if bool((norms == 0).any()):
            raise ValueError(
                f"X has a zero row (row {int(group[int(torch.nonzero(norms == 0)[0])])}), which has no "
                "direction for metric='cosine'"
            )
        x = x.div_(norms[:, None]) if _owned(x, X) else x / norms[:, None]
    return x


def _owned(x: torch.Tensor, X: Any) -> bool:
    """Whether ``x`` is a fresh copy, not a view of the caller's X (which must not be changed in place)."""
    if isinstance(X, (VectorTable, TableRows)):
        return True
    source = X if isinstance(X, torch.Tensor) else np.asarray(X)
    start = source.data_ptr() if isinstance(source, torch.Tensor) else source.__array_interface__["data"][0]
    size = source.numel() * source.element_size() if isinstance(source, torch.Tensor) else source.nbytes
    return not start <= x.data_ptr() < start + max(size, 1)


def select(
    X: Any,
    n: int,
    *,
    method: str = "kcenter",
    metric: str = "l2",
    labels: Any = None,
    clusters: Any = None,
    exclude: Any = None,
    within: Any = None,
    approx_chunk_rows: int | None = None,
    memory_budget: int | None = None,
    pooling: str = "mean",
    seed: int = 0,
    **options: Any,
) -> np.ndarray:
    """Ids of ``n`` samples to annotate (or to keep as a coreset): sample ids (``idx``) for a VectorTable, row ids
    for an array or tensor.

    Args:
        X: (rows, dim) array, tensor or VectorTable (a sample with several vectors is pooled into one by
            ``pooling`` and counted once).
        n: how many rows to pick.
        method: "kcenter" (greedy farthest-first: each pick is the row farthest from all picks so far, the best
            coverage), "kernel_points" (greedy kernel herding: each pick minimises the MMD between the picks and
            the pool; options ``kernel="rbf"|"linear"``, ``bandwidth``, ``reference_rows``), "zcore" (the rows of
            highest ZCore score; options ``samples``, ``sample_dims``, ``neighbors``, ``exponent``), "densest"
            (each pick is the unpicked row whose nearest unpicked neighbour is closest), "farthest" (the same, most
            isolated first: outliers), "cluster_balanced" (water-filling over clusters, random rows inside each, as
            in ``curate``), "typical" (the row nearest each cluster's centroid, largest clusters first) or
            "random". Greedy methods return rows in pick order, the others sorted.
        metric: "l2" or "cosine" (rows are L2-normalised first; a zero row is refused).
        labels: a class id per row: each label gets its quota, the floor of its share of the pool then the
            remainder one row at a time from the largest label (as Goldener does), and is selected on its own.
        clusters: a cluster id per row for "cluster_balanced" and "typical" (default: k-means with k = n).
        exclude: ids already labelled (or a boolean mask with one flag per row/sample): never returned; for
            "kcenter" and "kernel_points" they are anchors, counted as already picked.
        within: ids to choose among (e.g. those ``dedup`` kept); None: all. ``labels`` and ``clusters`` still
            hold one value per row (or sample) of the whole of X.
        approx_chunk_rows: split each label's rows at random into chunks of at most this many rows and select in
            each with a quota in proportion: an approximation of the selection over all rows that bounds the cost
            of "densest"/"farthest", O(approx_chunk_rows^2 * dim).
        memory_budget: bytes of rows and per-row working arrays held at a time (at least 1 MiB). X is then read
            one part (label, chunk) at a time, never whole, and a part that does not fit is split at random into
            chunks that do, as ``approx_chunk_rows`` splits it (with a warning: the answer is then approximate);
            the methods' fixed-size blocks (at most ~64 MB each) come on top. None reads X whole once.
        pooling: how a table's sample with several vectors becomes one: "mean" of its vectors or its "first".
        seed: seed of every random choice.
        **options: the options of "kernel_points" and "zcore" named above.

    Example:
        >>> X = np.array([[0.0, 0], [0.1, 0], [5, 5], [5, 5.1], [10, 0]])
        >>> sorted(select(X, 3, seed=0).tolist())
        [0, 3, 4]
        >>> select(X, 1, method="farthest").tolist()
        [4]
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    _check_options(method, options)
    check_int(n, "n", minimum=1)
    check_int(approx_chunk_rows, "approx_chunk_rows", minimum=2, allow_none=True)
    check_int(memory_budget, "memory_budget", minimum=1 << 20, allow_none=True)
    check_int(seed, "seed")
    view = as_samples(X, pooling=pooling)
    excluded = np.zeros(len(view), dtype=bool)
    if exclude is not None:
        excluded[view.positions(exclude, "exclude", mask_allowed=True)] = True
    cluster_ids = None if clusters is None else view.per_sample(clusters, "clusters", vote=True)
    label_ids = None if labels is None else view.per_sample(labels, "labels")
    if within is not None:
        inside = np.unique(view.positions(within, "within"))
        excluded, view = excluded[inside], view.restrict(inside)
        cluster_ids = None if cluster_ids is None else cluster_ids[inside]
        label_ids = None if label_ids is None else label_ids[inside]
    if method != "random" and metric == "cosine":
        warn_if_degenerate(view.X, f"select(method={method!r}, metric='cosine')", seed)
    picked = _select_rows(
        view.X, n, method, metric, label_ids, cluster_ids, excluded, approx_chunk_rows, memory_budget, seed, options
    )
    return view.answer(picked)


def _select_rows(
    X: Any,
    n: int,
    method: str,
    metric: str,
    label_ids: np.ndarray | None,
    cluster_ids: np.ndarray | None,
    excluded: np.ndarray,
    chunk_rows: int | None,
    memory_budget: int | None,
    seed: int,
    options: dict[str, Any],
) -> np.ndarray:
    rows, dim = shape_of(X)
    pool = int((~excluded).sum())
    if n > pool:
        raise ValueError(f"n ({n}) is larger than the pool ({pool} rows that are not excluded)")
    chunk = _chunk_for_budget(method, dim, chunk_rows, memory_budget, isinstance(X, (VectorTable, TableRows)))
    if chunk is not None and chunk != chunk_rows:
        largest = rows if label_ids is None else int(np.unique(label_ids, return_counts=True)[1].max())
        if largest > chunk:
            warnings.warn(
                f"select: memory_budget={memory_budget} holds {chunk} rows of this method at a time, fewer than the "
                f"{largest} of the largest part: it selects in random chunks, an approximation of the selection "
                "over all rows; raise memory_budget for the exact answer",
                RuntimeWarning,
                stacklevel=3,
            )
    if memory_budget is not None and method != "random" and isinstance(X, (VectorTable, TableRows)):
        keep_streamed_memory_in_budget()  # as a streamed fit: otherwise the reader threads' arenas keep the chunks
    rng = np.random.default_rng(seed)
    parts = _parts(rows, n, excluded, label_ids, chunk, rng)
    whole = None
    if method != "random":
        if memory_budget is None:  # one read of X; the parts index it
            whole = _prepared(X, np.arange(rows), metric)
    picked = []
    for group, quota in parts:
        local_x = None
        if whole is not None:
            local_x = whole if len(group) == rows else whole[torch.from_numpy(group)]
        elif method != "random":
            local_x = _prepared(X, group, metric)
        local_clusters = None if cluster_ids is None else cluster_ids[group]
        local = _pick(local_x, quota, method, excluded[group], local_clusters, rng, seed, options)
        picked.append(group[local])
    result = np.concatenate(picked).astype(np.int64)
    whole = local_x = None
    return_large_buffers_to_the_os()  # glibc keeps the greedy loops' freed blocks in its arenas: give them back
    return result
