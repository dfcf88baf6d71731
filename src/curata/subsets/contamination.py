"""contamination(): rows of one set that nearly duplicate a row of another (train against test), memory bounded.

Both sets are read ``chunk_rows`` rows at a time (arrays, tensors or VectorTables, which stream from disk), so the
memory is O(chunk_rows^2) whatever their sizes; the time is O(rows x reference rows x dim).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from curata._internal.checks import check_int
from curata.store.rows import as_matrix, shape_of
from curata.subsets.cosine_space import check_space, fit_space_on
from curata.subsets.dedup import _check_threshold

__all__ = ["contamination"]


def contamination(
    X: Any,
    reference: Any,
    *,
    threshold: float | None = None,
    space: str = "whitened",
    chunk_rows: int = 4096,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of ``X`` whose cosine similarity to some row of ``reference`` is at least ``threshold``.

    Args:
        X: (rows, dim) array, tensor or VectorTable, e.g. the training set.
        reference: the set to protect, e.g. the test set, with the same dim.
        threshold: cosine similarity in (0, 1]; None: the space's default, as ``dedup``.
        space: "whitened", "centred" or "raw", as ``dedup``; fitted on both sets together.
        chunk_rows: rows of each set compared at a time.
        seed: seed of the whitening's row sample (when both sets hold over 65,536 rows).

    Returns:
        (sorted rows of X that are contaminated, the most similar reference row of each, that similarity).

    Example:
        >>> train = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
        >>> test = np.array([[0.0, 1.01], [-1.0, 0.1]])
        >>> rows, nearest, similarity = contamination(train, test, threshold=0.95, space="raw")
        >>> rows.tolist(), nearest.tolist()
        ([1], [0])
    """
    threshold = _check_threshold(threshold, space=check_space(space))
    check_int(chunk_rows, "chunk_rows", minimum=1)
    rows, dim = shape_of(X)
    ref_rows, ref_dim = shape_of(reference)
    if ref_dim != dim:
        raise ValueError(f"reference has dim {ref_dim}, X has dim {dim}: describe both with the same model")
    unit = fit_space_on([("X", X), ("reference", reference)], space, seed, chunk_rows).apply
    best = torch.full((rows,), -2.0)
    nearest = torch.full((rows,), -1, dtype=torch.int64)
    for start in range(0, rows, chunk_rows):
        stop = min(start + chunk_rows, rows)
        block = unit(as_matrix(X, start, stop))
        for ref_start in range(0, ref_rows, chunk_rows):
            ref = unit(as_matrix(reference, ref_start, min(ref_start + chunk_rows, ref_rows)))
            value, where = (block @ ref.T).max(dim=1)
            better = value > best[start:stop]
            best[start:stop] = torch.where(better, value, best[start:stop])
            nearest[start:stop] = torch.where(better, where + ref_start, nearest[start:stop])
    hit = torch.nonzero(best >= threshold).reshape(-1)
    return hit.numpy().astype(np.int64), nearest[hit].numpy(), best[hit].numpy().astype(np.float64)
