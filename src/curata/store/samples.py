"""Samples and rows: what a subset function reads, and the sample id of each thing it answers with.

A VectorTable holds *rows* (vectors); a *sample* is one item of the source dataset, named by the ``idx`` column,
and may own several rows (patch tokens, sampled pixels) or none (an unreadable file). Every function that returns
a subset of a table answers in sample ids; arrays and tensors stay row-in, row-out.

``as_samples`` is the one door: given a table with one row per sample it hands the table on unread (streamed
paths stay streamed) with the ``idx`` of each row; given a table with several rows per sample it pools each
sample's rows into one vector (their mean, or the first row) so that a sample is counted, split and selected once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from curata._internal.checks import check_labels, check_row_ids
from curata.store.rows import TableRows, shape_of
from curata.store.table import VectorTable

__all__ = [
    "POOLINGS",
    "Samples",
    "as_samples",
    "find_ids",
    "pool_rows",
    "per_sample_majority",
    "rows_of",
    "sample_ids_of",
]

POOLINGS = ("mean", "first")


def per_sample_majority(idx: np.ndarray, clusters: np.ndarray, n_samples: int | None = None) -> np.ndarray:
    """One cluster per sample id 0..n-1: the most frequent among its rows (ties: the smallest id); -1 for a sample
    with no row, and rows whose cluster is negative (no cluster) do not vote.

    Example:
        >>> per_sample_majority(np.array([0, 0, 0, 2]), np.array([5, 2, 5, 7])).tolist()
        [5, -1, 7]
    """
    idx = np.asarray(idx, dtype=np.int64)
    clusters = np.asarray(clusters, dtype=np.int64)
    size = (int(idx.max()) + 1 if len(idx) else 0) if n_samples is None else int(n_samples)
    out = np.full(size, -1, dtype=np.int64)
    voting = clusters >= 0
    idx, clusters = idx[voting], clusters[voting]
    if len(idx) == 0:
        return out
    order = np.lexsort((clusters, idx))
    i, c = idx[order], clusters[order]
    change = np.r_[True, (i[1:] != i[:-1]) | (c[1:] != c[:-1])]
    starts = np.flatnonzero(change)
    runs = np.diff(np.r_[starts, len(i)])
    run_idx, run_cluster = i[starts], c[starts]
    best = np.lexsort((run_cluster, -runs, run_idx))  # per sample: longest run first, then smallest cluster
    first = np.r_[True, run_idx[best][1:] != run_idx[best][:-1]]
    out[run_idx[best][first]] = run_cluster[best][first]
    return out


def pool_rows(table: VectorTable, pooling: str = "mean", *, batch_rows: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """One float32 vector per sample of ``table``: the mean of its rows or its first row (``idx_vector`` 0), read
    ``batch_rows`` at a time. Returns (sorted sample ids, vectors).

    Example:
        >>> import tempfile, os
        >>> t = VectorTable.from_arrays(os.path.join(tempfile.mkdtemp(), "t"), np.eye(3), ids=[4, 1, 4])
        >>> ids, vectors = pool_rows(t)
        >>> ids.tolist(), vectors.tolist()
        ([1, 4], [[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    idx = table.column("idx")
    ids, entry = np.unique(idx, return_inverse=True)
    if pooling == "first":
        rows = np.flatnonzero(table.column("idx_vector") == 0)
        firsts = np.full(len(ids), -1, dtype=np.int64)
        firsts[entry[rows]] = rows
        if (firsts < 0).any():  # a sample without its vector 0 (rows written by hand): its first row in storage
            missing = np.flatnonzero(firsts < 0)
            order = np.argsort(entry, kind="stable")
            starts = np.searchsorted(entry[order], missing)
            firsts[missing] = order[starts]
        order = np.argsort(firsts)
        vectors = np.empty((len(ids), table.dim), dtype=np.float32)
        vectors[order] = table.vectors(firsts[order]).astype(np.float32, copy=False)
        return ids, vectors
    sums = torch.zeros((len(ids), table.dim), dtype=torch.float64)
    start = 0
    for block in table.iter_vectors(batch_rows):
        stop = start + len(block)
        sums.index_add_(0, torch.from_numpy(entry[start:stop]), torch.from_numpy(block.astype(np.float64)))
        start = stop
    counts = torch.from_numpy(np.bincount(entry, minlength=len(ids)).astype(np.float64))
    return ids, (sums / counts[:, None]).to(torch.float32).numpy()


def sample_ids_of(X: Any) -> np.ndarray | None:
    """The sample id of each row of X when it is a VectorTable (what a fit stores as ``sample_ids_``), else None."""
    return X.column("idx") if isinstance(X, VectorTable) else None


def find_ids(known: np.ndarray, wanted: Any, name: str) -> np.ndarray:
    """Positions in ``known`` (distinct sample ids) of the ids ``wanted``, refusing ids that are not there.

    Example:
        >>> find_ids(np.array([7, 3, 5]), [5, 7], "within").tolist()
        [2, 0]
    """
    array = np.asarray(wanted.cpu() if hasattr(wanted, "cpu") else wanted).reshape(-1)
    if array.size and (array.dtype == bool or not np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"{name} must hold integer sample ids (the table's idx), got dtype {array.dtype}")
    order = np.argsort(known, kind="stable")
    found = np.minimum(np.searchsorted(known[order], array), max(len(order) - 1, 0))
    unknown = np.flatnonzero(known[order][found] != array) if len(order) else np.arange(len(array))
    if len(unknown):
        raise ValueError(
            f"{name} holds sample ids that are not in the table: {int(array[unknown[0]])} at position "
            f"{int(unknown[0])} ({len(unknown)} in all); pass sample ids (the table's idx column), as the "
            f"functions of curata return them"
        )
    return order[found].astype(np.int64)


def rows_of(table: VectorTable, sample_ids: Any, name: str) -> np.ndarray:
    """Sorted positions of every row of ``table`` that belongs to one of ``sample_ids`` (refusing unknown ids).

    Example:
        >>> import tempfile, os
        >>> t = VectorTable.from_arrays(os.path.join(tempfile.mkdtemp(), "t"), np.eye(3), ids=[4, 1, 4])
        >>> rows_of(t, [4], "curated").tolist()
        [0, 2]
    """
    idx = table.column("idx")
    known = np.unique(idx)
    wanted = known[find_ids(known, sample_ids, name)]
    return np.flatnonzero(np.isin(idx, wanted))


@dataclass
class Samples:
    """What a subset function reads (``X``: the table itself, its pooled vectors, or the caller's array) and the
    sample id of each of its rows (``ids``; None when ``X`` is the caller's array: answers are its row ids).

    Example:
        >>> view = as_samples(np.ones((3, 2)))
        >>> len(view), view.answer(np.array([2, 0])).tolist()
        (3, [2, 0])
    """

    X: Any
    ids: np.ndarray | None
    table: VectorTable | None = None
    pooled: bool = False

    def __len__(self) -> int:
        return shape_of(self.X)[0]

    def answer(self, positions: Any) -> np.ndarray:
        """Sample ids for positions of ``X`` (positions themselves for arrays)."""
        positions = np.asarray(positions, dtype=np.int64)
        return positions if self.ids is None else self.ids[positions]

    def positions(self, sample_ids: Any, name: str, *, mask_allowed: bool = False) -> np.ndarray:
        """Positions in ``X`` of the given sample ids (row ids for arrays), refusing ids that are not there.

        Example:
            >>> Samples(np.ones((2, 1)), np.array([7, 3])).positions([3], "exclude").tolist()
            [1]
        """
        if self.ids is None:
            return check_row_ids(sample_ids, name, len(self), mask_allowed=mask_allowed)
        array = np.asarray(sample_ids.cpu() if hasattr(sample_ids, "cpu") else sample_ids)
        if array.dtype == bool:
            if not mask_allowed:
                raise TypeError(f"{name} holds booleans: pass sample ids, not a mask")
            if len(array) != len(self):
                raise ValueError(
                    f"{name} as a boolean mask must have one flag per sample ({len(self)}), got {len(array)}"
                )
            return np.flatnonzero(array)
        return find_ids(self.ids, array, name)

    def per_sample(self, values: Any, name: str, *, vote: bool = False) -> np.ndarray:
        """A per-row array of the table (labels, clusters) as one value per row of ``X``: unchanged when ``X`` has
        a row per table row; for pooled samples the majority among a sample's rows (``vote``) or its first row's.
        """
        if not self.pooled:
            return check_labels(values, name, len(self))
        assert self.table is not None and self.ids is not None
        idx = self.table.column("idx")
        array = np.asarray(values.cpu() if hasattr(values, "cpu") else values)
        if array.ndim == 1 and len(array) == len(self.ids):  # already one value per sample
            return check_labels(array, name, len(self.ids))
        array = check_labels(array, name, len(idx))
        entry = np.searchsorted(self.ids, idx)
        if vote:
            return per_sample_majority(entry, array, len(self.ids))
        first = np.empty(len(self.ids), dtype=np.int64)
        first[entry[::-1]] = np.arange(len(idx))[::-1]  # the earliest row of each sample wins
        return array[first]

    def restrict(self, positions: np.ndarray) -> Samples:
        """The same view over the sorted ``positions`` of ``X`` only."""
        positions = np.asarray(positions, dtype=np.int64)
        if isinstance(self.X, VectorTable):
            X: Any = TableRows(self.X, positions)
        elif isinstance(self.X, TableRows):
            X = self.X.subset(positions)
        elif isinstance(self.X, torch.Tensor):
            X = self.X[torch.from_numpy(positions)]
        else:
            X = np.asarray(self.X)[positions]
        ids = positions if self.ids is None else self.ids[positions]
        return Samples(X, ids, None, False)


def as_samples(X: Any, *, pooling: str = "mean") -> Samples:
    """The samples of ``X``: a VectorTable answers in sample ids (several rows per sample pooled by ``pooling``:
    "mean" or "first"); arrays, tensors and lazy row subsets answer in row ids.

    Example:
        >>> import tempfile, os
        >>> t = VectorTable.from_arrays(os.path.join(tempfile.mkdtemp(), "t"), np.eye(4), ids=[0, 0, 5, 5])
        >>> view = as_samples(t)
        >>> len(view), view.ids.tolist(), view.pooled
        (2, [0, 5], True)
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if not isinstance(X, VectorTable):
        shape_of(X)  # 2-D, or a clear error
        return Samples(X, None)
    idx = X.column("idx")
    if len(np.unique(idx)) == len(idx):
        return Samples(X, idx, X, False)
    ids, vectors = pool_rows(X, pooling)
    return Samples(vectors, ids, X, True)
