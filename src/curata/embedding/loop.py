"""The loop that embeds samples batch by batch: shared by describe() and its sharded form."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate
from tqdm.auto import tqdm

from curata.embedding.vectorize import Vectorizer
from curata.sources.unreadable import Unreadable

__all__ = [
    "EmbeddedBatch",
    "RowBuffer",
    "check_item_keys",
    "embedded_batches",
    "check_consistent",
    "loader_kwargs",
    "progress_bar",
    "report_unreadable",
    "start_normalization",
    "finish_normalization",
    "record_normalization",
]

Embedder = Callable[[Any], torch.Tensor]
COMMIT_SECONDS = 60.0  # an uninterrupted job never risks more than this much work between writes


class _Pending(Dataset):
    """The samples still to embed, each returned with its index in the source dataset."""

    def __init__(self, source: Any, indices: np.ndarray) -> None:
        self.source = source
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[int, Any]:
        idx = int(self.indices[i])
        return idx, self.source[idx]


class _IndexedCollate:
    """Collates (idx, item) pairs: the ids into a tensor, the items with the user's collate function; items a
    source could not read (``Unreadable``) are set aside as (idx, where, reason)."""

    def __init__(self, collate_fn: Callable[[list[Any]], Any] | None) -> None:
        self.collate_fn = collate_fn or default_collate

    def __call__(self, pairs: list[tuple[int, Any]]) -> tuple[torch.Tensor, Any, list[tuple[int, str, str]]]:
        skipped = [(p[0], p[1].where, p[1].reason) for p in pairs if isinstance(p[1], Unreadable)]
        if skipped:
            pairs = [p for p in pairs if not isinstance(p[1], Unreadable)]
        ids = torch.tensor([p[0] for p in pairs], dtype=torch.long)
        return ids, (self.collate_fn([p[1] for p in pairs]) if pairs else None), skipped


def _split_batch(batch: Any, data_key: Any, label_key: Any, vectorizer: Vectorizer) -> tuple[Any, Any, Any, Any]:
    """(data, label, mask, label map) of a collated batch of dicts, (data, label) tuples or bare tensors."""
    masks = (("mask_key", vectorizer.mask_key), ("label_mask_key", vectorizer.label_mask_key))
    if isinstance(batch, Mapping):
        for what, key in (("data_key", data_key), ("label_key", label_key), *masks):
            if key is not None and key not in batch:
                raise KeyError(f"{what} {key!r} is not in the dataset's items; their keys are {sorted(batch)}")
        return (
            batch[data_key],
            batch[label_key] if label_key is not None else None,
            *(batch[key] if key is not None else None for _, key in masks),
        )
    for what, key in (("label_key", label_key), *masks):
        if key is not None:
            kind = "tuples" if isinstance(batch, (tuple, list)) else type(batch).__name__
            raise ValueError(f"{what} {key!r} needs dict items; this dataset gives {kind}")
    if isinstance(batch, (tuple, list)):
        return batch[0], (batch[1] if len(batch) > 1 else None), None, None
    return batch, None, None, None


def check_item_keys(batch: Any, keys: tuple[Any, Any], vectorizer: Vectorizer) -> None:
    """Raise as the job would at this (collated) batch: a key the items lack, a label key on items that are not
    dicts, labels that are not integers. Run on a first item, it refuses a bad job before anything is written.

    Example:
        >>> check_item_keys({"data": torch.ones(1, 2)}, ("data", "label"), Vectorizer())
        Traceback (most recent call last):
        ...
        KeyError: "label_key 'label' is not in the dataset's items; their keys are ['data']"
    """
    _, labels, _, _ = _split_batch(batch, keys[0], keys[1], vectorizer)
    if labels is not None:
        _labels_to_numpy(labels, len(labels))


def _labels_to_numpy(labels: Any, count: int) -> np.ndarray:
    array = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if array.shape != (count,) or not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise ValueError(f"labels must be one integer per sample, got {array.dtype} of shape {array.shape}")
    return array.astype(np.int64)


class RowBuffer:
    """Rows waiting for the next commit.

    Example:
        >>> buffer = RowBuffer()
        >>> buffer.add(np.array([0, 1]), np.array([0, 0]))
        >>> buffer.rows, [c.tolist() for c in buffer.take()], buffer.rows
        (2, [[0, 1], [0, 0]], 0)
    """

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []
        self.rows = 0
        self.since = time.monotonic()
        self.skipped: list[tuple[int, str, str]] = []  # unreadable samples seen, kept across commits

    def absorb(self, batch: EmbeddedBatch, dim: int | None, has_label: bool | None) -> tuple[int, bool]:
        """Check ``batch`` against the rows before it, hold its rows and note its unreadable samples; returns the
        table's (dim, has_label) after it."""
        dim, has_label = check_consistent(batch, dim, has_label)
        if batch.rows:
            self.add(*batch.columns())
        self.skipped += batch.skipped
        return dim, has_label

    def due(self, commit_rows: int) -> bool:
        """Whether the rows should be written now: ``commit_rows`` of them, or a minute since the last write."""
        return self.rows >= commit_rows or time.monotonic() - self.since > COMMIT_SECONDS

    def add(self, *columns: np.ndarray) -> None:
        self.parts.append(columns)
        self.rows += len(columns[0])

    def take(self) -> list[np.ndarray]:
        merged = [np.concatenate(col) for col in zip(*self.parts, strict=True)]
        self.parts, self.rows, self.since = [], 0, time.monotonic()
        return merged


class EmbeddedBatch:
    """The rows of one embedded batch, and the samples of it that could not be read (idx, where, reason)."""

    def __init__(
        self,
        samples: int,
        idx: np.ndarray,
        idx_vector: np.ndarray,
        vectors: np.ndarray,
        labels: Any,
        skipped: list[tuple[int, str, str]] | None = None,
    ):
        self.samples, self.idx, self.idx_vector, self.vectors, self.labels = samples, idx, idx_vector, vectors, labels
        self.skipped = skipped or []

    @property
    def rows(self) -> int:
        return len(self.idx)

    def columns(self) -> tuple[np.ndarray, ...]:
        """(idx, idx_vector, vectors, labels), labels zero-filled when the dataset has none."""
        labels = self.labels if self.labels is not None else np.zeros(len(self.idx), np.int64)
        return self.idx, self.idx_vector, self.vectors, labels


def loader_kwargs(batch_size: int, num_workers: int, collate_fn: Any) -> dict[str, Any]:
    """DataLoader arguments that keep each sample's index beside it."""
    return {"batch_size": batch_size, "num_workers": num_workers, "collate_fn": _IndexedCollate(collate_fn)}


def embedded_batches(
    source: Any,
    samples: np.ndarray,
    embed: Embedder,
    vectorizer: Vectorizer,
    loader_kwargs: dict[str, Any],
    keys: tuple[Any, Any],
) -> Iterator[EmbeddedBatch]:
    """Embed ``samples`` of ``source`` batch by batch; every vector is checked to be finite."""
    if len(samples) == 0:
        return
    loader = DataLoader(_Pending(source, samples), shuffle=False, **loader_kwargs)
    with warnings.catch_warnings():
        # Lance warns on fork; the DataLoader's workers only read the user's dataset and never call Lance.
        warnings.filterwarnings("ignore", message="lance is not fork-safe")
        batches = iter(loader)
    carried: list[tuple[int, str, str]] = []  # unreadable samples of batches that had nothing else
    for ids, batch, skipped in batches:
        if batch is None:
            carried += skipped
            continue
        skipped, carried = carried + skipped, []
        data, labels, mask, label_map = _split_batch(batch, keys[0], keys[1], vectorizer)
        features = embed(data)
        if not isinstance(features, torch.Tensor):
            raise TypeError(f"the embedder returned {type(features).__name__}, not a torch.Tensor")
        out = vectorizer(features, idx=ids, mask=mask, label_mask=label_map)
        vectors = out.vectors.detach().to("cpu", torch.float32).numpy()
        sample = out.sample.cpu().numpy()
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():
            raise ValueError(f"the embedding of sample idx {int(ids[sample[np.argmax(bad)]])} holds NaN or inf")
        if out.label is not None:  # a label map gave each row its own label
            row_labels = out.label.cpu().numpy().astype(np.int64)
        else:
            row_labels = None if labels is None else _labels_to_numpy(labels, len(ids))[sample]
        yield EmbeddedBatch(
            len(ids) + len(skipped),
            ids.numpy()[sample],
            out.idx_vector.cpu().numpy().astype(np.int32),
            vectors,
            row_labels,
            skipped,
        )
    if carried:
        empty = np.empty(0, np.int64)
        yield EmbeddedBatch(len(carried), empty, empty.astype(np.int32), np.empty((0, 0), np.float32), None, carried)


def check_consistent(batch: EmbeddedBatch, dim: int | None, has_label: bool | None) -> tuple[int, bool]:
    """The table's (dim, has_label) after this batch; raises when the batch disagrees with earlier ones."""
    if batch.rows == 0 and batch.labels is None:  # nothing readable in it: it says nothing
        return dim, has_label  # type: ignore[return-value]
    if dim is not None and batch.vectors.shape[1] != dim:
        raise ValueError(f"the embedder gives vectors of dimension {batch.vectors.shape[1]}, the table holds {dim}")
    if has_label is not None and has_label != (batch.labels is not None):
        raise ValueError("labels appeared or disappeared between batches")
    return batch.vectors.shape[1], batch.labels is not None


def report_unreadable(skipped: list[tuple[int, str, str]], table: Any = None) -> None:
    """Warn once about the samples that could not be read; with a table, record them (with earlier runs') in its
    ``unreadable`` attribute as [{"idx", "where", "reason"}]."""
    if not skipped:
        return
    shown = "; ".join(f"{where}: {reason}" for _, where, reason in skipped[:3])
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    warnings.warn(f"describe: skipped {len(skipped)} unreadable samples ({shown}{more})", RuntimeWarning, stacklevel=3)
    if table is not None:
        known = {int(item["idx"]): item for item in table.get_attr("unreadable", [])}
        known.update({int(i): {"idx": int(i), "where": w, "reason": r} for i, w, r in skipped})
        table.set_attr("unreadable", [known[i] for i in sorted(known)])


def start_normalization(table: Any) -> None:
    """Record how the table's vectors are to be given back (its fingerprint's ``normalize``), once it exists."""
    kind = table.fingerprint.get("normalize", "none")
    if kind != "none" and table.get_attr("normalize") is None:
        table.set_attr("normalize", {"kind": kind})  # center+l2 gets its mean when every row is in


def finish_normalization(table: Any) -> None:
    """For ``center+l2``: the mean of every stored row (float64, one streaming pass), recorded once."""
    start_normalization(table)
    setting = table.get_attr("normalize", {"kind": "none"})
    if setting["kind"] == "center+l2" and setting.get("mean") is None:
        record_normalization(table, "center+l2")


def record_normalization(table: Any, kind: str) -> None:
    """Give ``table``'s vectors back as ``kind`` says ("none", "l2", "center+l2": the mean of its rows now)."""
    if kind != "center+l2":
        if kind != table.normalization:
            table.set_normalization(kind)
        return
    total = np.zeros(table.dim, dtype=np.float64)
    for block in table.iter_vectors(raw=True):
        total += block.sum(axis=0, dtype=np.float64)
    table.set_normalization("center+l2", total / max(len(table), 1))


def progress_bar(total: int, initial: int, progress: bool) -> tqdm:
    """A samples progress bar with rate and ETA (disabled when ``progress`` is false)."""
    return tqdm(total=total, initial=initial, unit="sample", desc="describe", disable=not progress, dynamic_ncols=True)
