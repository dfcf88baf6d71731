"""Labels as sources read them (ints, or names such as "cat") made into the integer labels a table stores."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["numbered_labels", "labelled_item"]


def numbered_labels(values: list[Any]) -> tuple[list[int], list[Any]]:
    """(labels, classes): int labels kept as they are; anything else numbered in sorted order of its text.

    Example:
        >>> numbered_labels(["cat", "dog", "cat"]), numbered_labels([7, 3])
        (([0, 1, 0], ['cat', 'dog']), ([7, 3], [3, 7]))
    """
    if any(v is None for v in values):
        raise ValueError("some records have no label")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return list(values), sorted(set(values))
    classes = sorted({str(v) for v in values})
    index = {name: i for i, name in enumerate(classes)}
    return [index[str(v)] for v in values], classes


def labelled_item(data: Any, labels: list[int] | None, i: int) -> dict[str, Any]:
    """A source's item: ``{"data": data}``, plus ``"label"`` (a tensor) when the source has labels."""
    item: dict[str, Any] = {"data": data}
    if labels is not None:
        item["label"] = torch.tensor(labels[i])
    return item
