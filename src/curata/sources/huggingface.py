"""HuggingFaceDisk: a Hugging Face ``datasets`` dataset saved with ``save_to_disk``, as a dataset of samples."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from curata.sources.images import decode_image
from curata.sources.labels import labelled_item, numbered_labels
from curata.sources.locations import Locations
from curata.sources.unreadable import Unreadable

__all__ = ["HuggingFaceDisk"]


class HuggingFaceDisk(Dataset):
    """The ``column`` of a dataset saved by ``datasets``' ``save_to_disk`` as ``{"data": ..., "label": ...}``.

    Image columns (``datasets.Image``, PIL images) become uint8 (3, size, size) RGB tensors, string columns stay
    strings (for a text model), anything else is passed as a tensor. Nothing is downloaded: the folder is read with
    ``datasets.load_from_disk``.

    Args:
        path: the folder ``save_to_disk`` wrote (a Dataset, or a DatasetDict with ``split``).
        column: the column holding the data.
        label_column: an integer (or ``ClassLabel``) column, or strings numbered in sorted order.
        split: which split of a saved DatasetDict.
        size: image side.

    Example::

        dataset = HuggingFaceDisk("saved/cifar", column="img", label_column="label", split="train")
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        column: str,
        label_column: str | None = None,
        split: str | None = None,
        size: int = 224,
    ) -> None:
        try:
            import datasets
        except ImportError as exc:
            raise ImportError("HuggingFaceDisk needs the datasets package: pip install 'curata[hf]'") from exc
        if not os.path.isdir(path):
            raise NotADirectoryError(f"path {os.fspath(path)!r} is not a folder written by save_to_disk")
        try:
            loaded = datasets.load_from_disk(os.fspath(path))
        except FileNotFoundError as error:
            raise ValueError(f"path {os.fspath(path)!r} is not a folder written by save_to_disk: {error}") from None
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise ValueError(f"{os.fspath(path)!r} holds the splits {sorted(loaded)}: pass split=, got {split!r}")
            loaded = loaded[split]
        elif split is not None:
            raise ValueError(f"{os.fspath(path)!r} holds one dataset, not splits: leave split out")
        for name in (column, label_column):
            if name is not None and name not in loaded.column_names:
                raise ValueError(f"{os.fspath(path)!r} has no column {name!r}; its columns: {loaded.column_names}")
        self.path, self.column, self.label_column, self.split, self.size = path, column, label_column, split, size
        self.rows = loaded
        self.image = isinstance(loaded.features[column], datasets.Image)
        self.classes: list[Any] = []
        self.labels: list[int] | None = None
        if label_column is not None:
            values = loaded[label_column]
            feature = loaded.features[label_column]
            if isinstance(feature, datasets.ClassLabel):
                self.classes, self.labels = list(feature.names), [int(v) for v in values]
            else:
                self.labels, self.classes = numbered_labels(list(values))

    def fingerprint(self) -> dict[str, Any]:
        """The saved dataset's content hash (``datasets``' own fingerprint), column, split and size."""
        return {
            "kind": "HuggingFaceDisk",
            "fingerprint": self.rows._fingerprint,
            "column": self.column,
            "label_column": self.label_column,
            "split": self.split,
            "size": self.size,
            "rows": len(self.rows),
        }

    def locations(self) -> Locations:
        """Each sample id's ``row`` in the saved dataset (the id itself) and its label: ``describe`` records this
        with the table so that ids lead back to rows later.

        Example::

            places = HuggingFaceDisk("saved/cifar", column="img", split="train").locations()
            places.where(3)  # '/data/saved/cifar[3]'
        """
        columns: dict[str, list[Any]] = {"row": list(range(len(self.rows)))}
        if self.labels is not None:
            columns["label"] = list(self.labels)
        named = bool(self.classes) and all(isinstance(c, str) for c in self.classes)
        settings = {"column": self.column, "label_column": self.label_column, "split": self.split, "size": self.size}
        root = os.path.abspath(self.path)
        return Locations("HuggingFaceDisk", root, [], settings, list(self.classes), named, columns)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any] | Unreadable:
        where = f"{os.fspath(self.path)}[{i}].{self.column}"
        try:
            value = self.rows[int(i)][self.column]
        except (OSError, SyntaxError, ValueError) as error:  # an image column decodes its bytes here
            return Unreadable(where, f"{type(error).__name__}: {error}")
        if self.image:
            value = decode_image(value, self.size, where)
            if isinstance(value, Unreadable):
                return value
        elif not isinstance(value, str):
            value = torch.as_tensor(np.asarray(value))
        return labelled_item(value, self.labels, i)
