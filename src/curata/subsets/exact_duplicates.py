"""exact_duplicates(): rows (or files) with identical content, by content hash, streamed in bounded blocks.

Cheaper and surer than a similarity threshold for the copies a crawl or a merge of datasets makes: byte-identical
files, or vectors equal bit for bit (an image described twice). Run it before ``dedup``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curata._internal.checks import first_nonfinite_row
from curata._internal.grouping import rows_per_group
from curata.store.rows import TableRows, shape_of
from curata.store.table import VectorTable

__all__ = ["exact_duplicates"]

_BLOCK_ROWS = 1 << 16
_FILE_BLOCK = 1 << 20


def _file_digest(path: Path) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(_FILE_BLOCK):
            digest.update(block)
    return digest.digest()


def _native_rows(X: Any, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) in their stored dtype: a float64 input is not rounded to float32 before hashing."""
    if isinstance(X, VectorTable):
        X = TableRows(X)
    if isinstance(X, TableRows):
        return X.read(start, stop)
    if hasattr(X, "detach"):
        return X[start:stop].detach().cpu().numpy()
    return np.asarray(X[start:stop])


def _row_digests(X: Any) -> list[bytes]:
    rows, _ = shape_of(X)
    digests: list[bytes] = []
    for start in range(0, rows, _BLOCK_ROWS):
        block = np.ascontiguousarray(_native_rows(X, start, min(start + _BLOCK_ROWS, rows)))
        bad = first_nonfinite_row(block) if np.issubdtype(block.dtype, np.floating) else None
        if bad is not None:
            raise ValueError(f"X holds NaN or inf (row {start + bad}): NaN is never equal to itself")
        block = block + np.zeros((), dtype=block.dtype)  # -0.0 becomes 0.0: equal values, equal bytes
        digests.extend(hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in block)
    return digests


def _sample_digests(table: VectorTable) -> tuple[np.ndarray, list[bytes]]:
    """(sorted sample ids, one digest per sample over its rows in ``idx_vector`` order)."""
    rows = np.array(_row_digests(table), dtype="S16")
    idx = table.column("idx")
    order = np.lexsort((table.column("idx_vector"), idx))
    ids, starts = np.unique(idx[order], return_index=True)
    bounds = np.r_[starts, len(order)]
    digests = [
        hashlib.blake2b(b"".join(rows[order[a:b]].tolist()), digest_size=16).digest()
        for a, b in zip(bounds[:-1], bounds[1:])
    ]
    return ids, digests


def exact_duplicates(items: Any) -> tuple[np.ndarray, list[np.ndarray]]:
    """Rows (or files) whose content is identical: keep the first of each group.

    Args:
        items: (rows, dim) array, tensor or VectorTable (rows equal value for value in their stored dtype; a
            table's samples are equal when all their vectors are, and it answers in sample ids), or a list of file
            paths (files equal byte for byte).

    Returns:
        (sorted ids to keep, groups: the sorted ids of each set of two or more identical items), as ``dedup``.

    Example:
        >>> kept, groups = exact_duplicates(np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [-0.0, 1.0], [0.0, 1.0]]))
        >>> kept.tolist(), [g.tolist() for g in groups]
        ([0, 1, 3], [[0, 2], [3, 4]])
    """
    if isinstance(items, (str, os.PathLike)):
        raise TypeError("items must be a list of file paths or a (rows, dim) array, got one path")
    is_files = isinstance(items, Sequence) and all(isinstance(item, (str, os.PathLike)) for item in items)
    if is_files:
        paths = [Path(item) for item in items]
        missing = next((p for p in paths if not p.is_file()), None)
        if missing is not None:
            raise FileNotFoundError(f"items: {str(missing)!r} is not a file")
        digests = [_file_digest(p) for p in paths]
        ids = None
    elif isinstance(items, VectorTable):
        ids, digests = _sample_digests(items)
    else:
        digests, ids = _row_digests(items), None
    if not digests:
        return np.zeros(0, dtype=np.int64), []
    _, first, inverse = np.unique(np.array(digests, dtype="S16"), return_index=True, return_inverse=True)
    kept = np.sort(first).astype(np.int64)
    groups = [np.sort(g) for g in rows_per_group(inverse.reshape(-1)) if len(g) > 1]
    groups.sort(key=lambda g: int(g[0]))
    if ids is None:
        return kept, groups
    return ids[kept], [ids[g] for g in groups]
