"""Adapters to other stores: Hugging Face ``datasets`` (``curata[hf]``) and Pixeltable tables (``curata[pixeltable]``)
in and out."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from curata.store.table import VectorTable

__all__ = ["table_from_hf", "add_to_hf", "table_from_pixeltable", "add_to_pixeltable"]


def table_from_hf(
    dataset: Any,
    path: str | os.PathLike[str],
    *,
    vector_column: str = "embedding",
    label_column: str | None = None,
    overwrite: bool = False,
) -> VectorTable:
    """A VectorTable of the embeddings stored in a Hugging Face dataset (row i of the dataset is sample i).

    Example (needs ``datasets``)::

        hf = datasets.Dataset.from_dict({"embedding": [[0.0, 1.0], [1.0, 0.0]], "label": [0, 1]})
        table = table_from_hf(hf, "runs/hf/vectors", label_column="label")  # 2 rows
    """
    names = getattr(dataset, "column_names", None)
    if names is None:
        raise TypeError(f"dataset must be a Hugging Face datasets.Dataset, got {type(dataset).__name__}")
    for column, what in ((vector_column, "vector_column"), (label_column, "label_column")):
        if column is not None and column not in names:
            raise KeyError(f"{what} {column!r} is not a column of the dataset; columns: {names}")
    arrow = dataset.with_format("numpy")
    vectors = np.stack(arrow[vector_column]).astype(np.float32)
    labels = np.asarray(arrow[label_column]) if label_column is not None else None
    return VectorTable.from_arrays(path, vectors, labels=labels, overwrite=overwrite)


def add_to_hf(dataset: Any, name: str, values: Any, *, rows: Any = None, fill: Any = -1) -> Any:
    """The dataset with a new column: one value per row, or ``values`` at ``rows`` (e.g. a selection) and
    ``fill`` elsewhere. Returns a new dataset (Hugging Face datasets are immutable).

    Example (needs ``datasets``)::

        hf = add_to_hf(hf, "cluster", cluster(table, KMeans(8)))
        hf = add_to_hf(hf, "selected", np.ones(10, int), rows=select(table, 10), fill=0)
    """
    values = np.asarray(values)
    if rows is not None:
        full = np.full(len(dataset), fill, dtype=values.dtype if values.dtype.kind != "b" else np.int64)
        full[np.asarray(rows, dtype=np.int64)] = values
        values = full
    if len(values) != len(dataset):
        raise ValueError(f"values must hold one entry per row ({len(dataset)}), got {len(values)}")
    if name in dataset.column_names:
        dataset = dataset.remove_columns(name)
    return dataset.add_column(name, values.tolist())


def _pixeltable_columns(table: Any) -> list[str]:
    columns = getattr(table, "columns", None)
    if not callable(columns):
        raise TypeError(f"table must be a Pixeltable table, got {type(table).__name__}")
    return list(columns())


def table_from_pixeltable(
    table: Any,
    path: str | os.PathLike[str],
    *,
    vector_column: str,
    id_column: str,
    label_column: str | None = None,
    overwrite: bool = False,
) -> VectorTable:
    """A VectorTable of the embeddings in a Pixeltable table; ``id_column`` (integers >= 0) becomes ``idx`` and is
    the key that ``add_to_pixeltable`` writes results back by.

    Example (needs ``pixeltable``)::

        t = pxt.get_table("photos")
        vectors = table_from_pixeltable(t, "runs/p/vectors", vector_column="emb", id_column="id")
    """
    names = _pixeltable_columns(table)
    for column, what in ((vector_column, "vector_column"), (id_column, "id_column"), (label_column, "label_column")):
        if column is not None and column not in names:
            raise KeyError(f"{what} {column!r} is not a column of the table; columns: {names}")
    wanted = [table[vector_column], table[id_column]] + ([table[label_column]] if label_column else [])
    rows = table.select(*wanted).order_by(table[id_column]).collect()
    ids = np.asarray(rows[id_column], dtype=np.int64)
    if len(ids) and (ids.min() < 0 or len(np.unique(ids)) != len(ids)):
        raise ValueError(f"id_column {id_column!r} must hold distinct integers >= 0")
    vectors = np.stack([np.asarray(v, dtype=np.float32) for v in rows[vector_column]])
    labels = np.asarray(rows[label_column], dtype=np.int64) if label_column else None
    return VectorTable.from_arrays(path, vectors, ids=ids, labels=labels, overwrite=overwrite)


def add_to_pixeltable(table: Any, name: str, values: Any, *, id_column: str, ids: Any, fill: int | None = None) -> None:
    """Write integer results (cluster ids, a selection flag, a split number) into the column ``name`` of a Pixeltable
    table: ``values[i]`` goes to the row whose ``id_column`` is ``ids[i]``; other rows get ``fill`` (None: left
    empty). The column is created (nullable int) when missing. One update per distinct value.

    Example (needs ``pixeltable``)::

        add_to_pixeltable(t, "cluster", cluster(vectors, KMeans(50)), id_column="id", ids=vectors.sample_ids())
    """
    names = _pixeltable_columns(table)
    if id_column not in names:
        raise KeyError(f"id_column {id_column!r} is not a column of the table; columns: {names}")
    values = np.asarray(values)
    ids = np.asarray(ids, dtype=np.int64)
    if values.shape != ids.shape or values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"values must be integers, one per id ({ids.shape}), got {values.dtype} {values.shape}")
    import pixeltable as pxt

    if name not in names:
        table.add_column(**{name: pxt.Int | None})
    if fill is not None:
        table.update({name: int(fill)})
    for value in np.unique(values):
        table.where(table[id_column].isin(ids[values == value].tolist())).update({name: int(value)})
