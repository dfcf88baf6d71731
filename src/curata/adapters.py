"""Adapters to other stores: Hugging Face ``datasets`` in and out (``curata[hf]``)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from curata.table import VectorTable

__all__ = ["table_from_hf", "add_to_hf"]


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
