"""table_from_embeddings(): embeddings already computed, in many .npy or Parquet files, into one VectorTable.

The files are read a chunk at a time (.npy by memory map, Parquet by record batch), so they never sit in memory
together; rows are appended in file order, each chunk in one atomic commit, and a rerun after a crash goes on
from the rows already in the table.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curata._internal.checks import check_int, first_nonfinite_row
from curata.store.table import VectorTable

__all__ = ["table_from_embeddings"]

_VECTOR_COLUMNS = ("vector", "embedding")


def _parquet_column(path: Path) -> tuple[str, bool]:
    import pyarrow.parquet as pq

    names = pq.ParquetFile(path).schema_arrow.names
    column = next((c for c in _VECTOR_COLUMNS if c in names), None)
    if column is None:
        raise ValueError(f"{str(path)!r} has no 'vector' or 'embedding' column; columns: {names}")
    return column, "label" in names


def _chunks(path: Path, chunk_rows: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """(vectors, labels or None) of ``path``, ``chunk_rows`` rows at a time."""
    if path.suffix == ".npy":
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        for start in range(0, len(array), chunk_rows):
            yield np.array(array[start : start + chunk_rows]), None  # a copy: the map is read-only
        return
    import pyarrow.parquet as pq

    column, has_label = _parquet_column(path)
    columns = [column, "label"] if has_label else [column]
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=columns):
        values = batch.column(0).to_numpy(zero_copy_only=False)
        vectors = np.stack(values).astype(np.float32) if len(values) else np.zeros((0, 0), np.float32)
        yield vectors, (batch.column(1).to_numpy() if has_label else None)


def _shape(path: Path) -> tuple[int, int, bool]:
    """(rows, dim, has labels) of one file, read from its header (or first record batch)."""
    if not path.is_file():
        raise FileNotFoundError(f"embeddings file {str(path)!r} does not exist")
    if path.suffix == ".npy":
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"{str(path)!r} must hold a 2-D float array (rows, dim), got {array.dtype} {array.shape}")
        return int(array.shape[0]), int(array.shape[1]), False
    if path.suffix != ".parquet":
        raise ValueError(f"embeddings files must be .npy or .parquet, got {str(path)!r}")
    import pyarrow.parquet as pq

    _, has_label = _parquet_column(path)
    rows = int(pq.ParquetFile(path).metadata.num_rows)
    first = next(_chunks(path, 1), (np.zeros((0, 0)), None))[0]
    return rows, int(first.shape[1]) if len(first) else 0, has_label


def table_from_embeddings(
    files: Sequence[str | os.PathLike[str]],
    path: str | os.PathLike[str],
    *,
    dtype: str = "float32",
    chunk_rows: int = 65536,
) -> VectorTable:
    """One VectorTable at ``path`` from embeddings already computed in ``files``, in their order.

    Every file is checked first (shape, dtype, a vector column, NaN or inf naming the file and row), so a bad file
    stops the job before any row is written. Row ``idx`` counts across the files; Parquet ``label`` columns become
    labels (all files or none). A table already at ``path`` built from the same files (names and sizes) is
    continued from its last committed chunk; one built from other files is refused.

    Args:
        files: .npy files of (rows, dim) floats, or Parquet files with a list column ``vector`` or ``embedding``.
        path: the table's directory.
        dtype: storage dtype, "float32" or "float16".
        chunk_rows: rows read and committed at a time.

    Example:
        >>> import tempfile, os
        >>> folder = tempfile.mkdtemp()
        >>> for i in range(2):
        ...     np.save(os.path.join(folder, f"part{i}.npy"), np.full((3, 4), i, dtype=np.float32))
        >>> files = [os.path.join(folder, f"part{i}.npy") for i in range(2)]
        >>> table = table_from_embeddings(files, os.path.join(folder, "vectors"))
        >>> len(table), table.dim, table.column("idx").tolist()
        (6, 4, [0, 1, 2, 3, 4, 5])
    """
    check_int(chunk_rows, "chunk_rows", minimum=1)
    if isinstance(files, (str, os.PathLike)) or not files:
        raise ValueError(f"files must be a non-empty list of .npy or .parquet paths, got {files!r}")
    paths = [Path(f) for f in files]
    shapes = [_shape(p) for p in paths]
    dims = {dim for rows, dim, _ in shapes if rows}
    if len(dims) > 1:
        listed = {str(p): dim for p, (rows, dim, _) in zip(paths, shapes) if rows}
        raise ValueError(f"the files hold vectors of different dimensions: {listed}")
    if not dims:
        raise ValueError(f"the files hold no rows: {[str(p) for p in paths]}")
    labelled = {has for rows, _, has in shapes if rows}
    if len(labelled) > 1:
        raise ValueError("some files have a 'label' column and some do not: give labels in all files or none")
    for p in paths:  # a bad row anywhere stops the job before the first write
        done = 0
        for vectors, _ in _chunks(p, chunk_rows):
            bad = first_nonfinite_row(vectors)
            if bad is not None:
                raise ValueError(f"{str(p)!r} holds NaN or inf (row {done + bad})")
            done += len(vectors)
    fingerprint = {"embeddings": [[str(p.resolve()), p.stat().st_size] for p in paths]}
    table = _open_or_create(Path(path), dims.pop(), dtype, labelled.pop(), fingerprint)
    skip = len(table)
    offset = 0
    for p, (rows, _, _) in zip(paths, shapes):
        if offset + rows <= skip:
            offset += rows
            continue
        start = offset
        for vectors, labels in _chunks(p, chunk_rows):
            stop = start + len(vectors)
            if stop > skip:  # rows before ``skip`` are committed already
                keep = slice(max(0, skip - start), None)
                ids = np.arange(start, stop)[keep]
                table.append(ids, np.zeros(len(ids), np.int32), vectors[keep], None if labels is None else labels[keep])
            start = stop
        offset += rows
    return table


def _open_or_create(path: Path, dim: int, dtype: str, has_label: bool, fingerprint: dict[str, Any]) -> VectorTable:
    if VectorTable.is_table(path):
        table = VectorTable.open(path)
        if table.fingerprint != fingerprint:
            raise ValueError(
                f"{str(path)!r} holds a table built from other files ({table.fingerprint.get('embeddings')}); "
                "use another path, or delete it to rebuild"
            )
        return table
    return VectorTable.create(path, dim=dim, dtype=dtype, has_label=has_label, fingerprint=fingerprint)
