"""cluster(): cluster the vectors of a VectorTable with any clusterer, per label and per chunk, and store the ids."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from curata._internal.checks import check_int
from curata.store.rows import TableRows
from curata.store.samples import per_sample_majority
from curata.store.table import VectorTable

__all__ = ["cluster", "reduce", "per_sample_majority"]

_PER_SAMPLE = ("majority", "all", "same")


def reduce(vectors: np.ndarray, reducer: Any, *, batch_rows: int = 65536) -> np.ndarray:
    """Apply a dimension reducer: a scikit-learn-style object (``fit_transform``: PCA, GaussianRandomProjection,
    UMAP, TSNE) or any torch module (run in batches under ``inference_mode``).

    Example:
        >>> reduce(np.ones((4, 3), dtype=np.float32), torch.nn.Linear(3, 2, bias=False)).shape
        (4, 2)
    """
    if isinstance(reducer, torch.nn.Module):
        device = next(reducer.parameters(), torch.empty(0)).device
        was_training = reducer.training
        reducer.eval()
        parts = []
        try:
            with torch.inference_mode():
                for start in range(0, len(vectors), batch_rows):
                    block = torch.from_numpy(np.ascontiguousarray(vectors[start : start + batch_rows])).to(device)
                    parts.append(reducer(block.float()).float().cpu().numpy())
        finally:
            reducer.train(was_training)
        return np.concatenate(parts)
    if not hasattr(reducer, "fit_transform"):
        raise TypeError(
            f"reducer must have fit_transform (PCA, UMAP, ...) or be a torch module, got {type(reducer).__name__}"
        )
    return np.asarray(reducer.fit_transform(vectors), dtype=np.float32)


def _fresh(clusterer: Any) -> Any:
    """An unfitted copy of the clusterer (scikit-learn's clone when it applies)."""
    try:
        from sklearn.base import clone

        return clone(clusterer)
    except Exception:  # noqa: BLE001 - not a scikit-learn estimator: a deep copy of the unfitted object
        return copy.deepcopy(clusterer)


def _fit_labels(clusterer: Any, X: Any, n_clusters: int | None, seed: int) -> np.ndarray:
    model = _fresh(clusterer)
    if n_clusters is not None:
        if not hasattr(model, "n_clusters"):
            raise ValueError(f"n_clusters was given but {type(model).__name__} has no n_clusters parameter")
        model.n_clusters = min(n_clusters, len(X))
    for name in ("seed", "random_state"):
        if hasattr(model, name) and getattr(model, name) is None:
            setattr(model, name, seed)
    labels = model.fit_predict(X) if hasattr(model, "fit_predict") else model.fit(X).labels_
    labels = np.asarray(labels)
    if labels.ndim == 2:  # a tree: its finest level
        labels = labels[:, 0]
    return labels.astype(np.int64)


def cluster(
    table: VectorTable,
    clusterer: Any,
    *,
    column: str = "cluster",
    n_clusters: int | None = None,
    reducer: Any = None,
    stratify_by_label: bool = False,
    approx_chunk_size: int | None = None,
    per_sample: str = "majority",
    seed: int = 0,
) -> np.ndarray:
    """Cluster every vector of ``table``, write the ids as the column ``column``, and return one answer per sample.

    Args:
        table: the VectorTable to cluster.
        clusterer: ``KMeans``, ``HierarchicalKMeans`` (its finest level) or any scikit-learn-style estimator
            (``fit`` + ``labels_``, or ``fit_predict``); each part gets a fresh copy.
        column: the vector-level column written into the table (replaced if it exists).
        n_clusters: set on the clusterer for every part (capped at the part's rows).
        reducer: dimension reduction first (see ``reduce``).
        stratify_by_label: cluster each label separately (needs a label column).
        approx_chunk_size: cluster random (seeded) chunks of at most this many vectors separately (Goldener's
            chunking): an approximation that bounds the cost of clusterers that grow faster than linearly; the
            answer differs from one fit over all rows.
        per_sample: "majority" returns one cluster per sample (the most frequent among its vectors; -1 for a
            sample with no vector); "all" returns the unique (sample, cluster) pairs, an (P, 2) array that
            ``ClusterBatchSampler`` accepts, listing a sample in every cluster its vectors fall in; "same" forces
            every vector of a sample into its majority cluster (written so in ``column``) and returns as "majority".
        seed: seed of the chunking and of clusterers whose seed is unset.

    Cluster ids are unique across labels and chunks: each part's ids are offset past the previous parts'. A
    clusterer with a ``memory_budget`` (``KMeans``, ``HierarchicalKMeans``) is handed each part as lazy rows of the
    table, so it streams them under its budget; other clusterers (and any ``reducer``) get each part in memory.

    Example:
        >>> import tempfile, os
        >>> from curata import KMeans
        >>> X = np.r_[np.zeros((4, 2)), np.ones((4, 2))].astype(np.float32)
        >>> t = VectorTable.from_arrays(os.path.join(tempfile.mkdtemp(), "t"), X, labels=[0, 1] * 4)
        >>> cluster(t, KMeans(2), stratify_by_label=True).tolist()
        [0, 2, 0, 2, 1, 3, 1, 3]
    """
    if not isinstance(table, VectorTable):
        raise TypeError(f"table must be a VectorTable, got {type(table).__name__}")
    if per_sample not in _PER_SAMPLE:
        raise ValueError(f"per_sample must be one of {_PER_SAMPLE}, got {per_sample!r}")
    check_int(approx_chunk_size, "approx_chunk_size", minimum=1, allow_none=True)
    check_int(n_clusters, "n_clusters", minimum=1, allow_none=True)
    if stratify_by_label and not table.has_labels:
        raise ValueError("stratify_by_label=True needs a table with a label column")
    if not (hasattr(clusterer, "fit") or hasattr(clusterer, "fit_predict")):
        raise TypeError(f"clusterer must have fit (with labels_) or fit_predict, got {type(clusterer).__name__}")
    if len(table) == 0:
        raise ValueError("table is empty: nothing to cluster")
    # a clusterer with a memory budget streams the table's rows itself; a reducer needs them all in memory
    streamed = reducer is None and getattr(clusterer, "memory_budget", None) is not None
    vectors: Any = None
    if not streamed:
        vectors = table.vectors().astype(np.float32, copy=False)
        if reducer is not None:
            vectors = reduce(vectors, reducer)
    rows_total = len(table)
    rng = np.random.default_rng(seed)
    strata = table.column("label") if stratify_by_label else np.zeros(rows_total, dtype=np.int64)
    ids = np.full(rows_total, -1, dtype=np.int64)
    offset = 0
    for stratum in np.unique(strata):
        rows = np.flatnonzero(strata == stratum)
        if approx_chunk_size is not None and len(rows) > approx_chunk_size:
            shuffled = rng.permutation(rows)
            parts = np.array_split(shuffled, -(-len(rows) // approx_chunk_size))
        else:
            parts = [rows]
        for part in parts:
            part = np.sort(part)
            if streamed:
                X = table if len(part) == rows_total else TableRows(table, part)
            else:
                X = vectors[part]
            labels = _fit_labels(clusterer, X, n_clusters, seed)
            _, dense = np.unique(labels, return_inverse=True)
            ids[part] = dense + offset
            offset += int(dense.max()) + 1
    sample_idx = table.column("idx")
    if per_sample == "same":
        ids = per_sample_majority(sample_idx, ids)[sample_idx]
    table.add_column(column, ids, overwrite=True)
    if per_sample == "all":
        return np.unique(np.stack([sample_idx, ids], axis=1), axis=0)
    n_samples = max(int(table.fingerprint.get("dataset_length", 0)), int(sample_idx.max()) + 1)
    return per_sample_majority(sample_idx, ids, n_samples)
