"""describe(): embed a dataset batch by batch into a VectorTable, resumably."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate
from tqdm.auto import tqdm

from curata.checks import check_int
from curata.embed import TorchEmbedder
from curata.table import VectorTable
from curata.vectorize import Vectorizer

__all__ = ["describe", "Embedder"]

Embedder = Callable[[Any], torch.Tensor]
_COMMIT_SECONDS = 60.0  # an uninterrupted job never risks more than this much work between commits


class _Rows(Dataset):
    """The rows of an array as a dataset."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, i: int) -> Any:
        return self.array[i]


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
    """Collates (idx, item) pairs: the ids into a tensor, the items with the user's collate function."""

    def __init__(self, collate_fn: Callable[[list[Any]], Any] | None) -> None:
        self.collate_fn = collate_fn or default_collate

    def __call__(self, pairs: list[tuple[int, Any]]) -> tuple[torch.Tensor, Any]:
        return torch.tensor([p[0] for p in pairs], dtype=torch.long), self.collate_fn([p[1] for p in pairs])


def _as_source(dataset: Any) -> Any:
    if isinstance(dataset, np.ndarray):
        return _Rows(dataset)
    if type(dataset).__module__.startswith("datasets.") and hasattr(dataset, "with_format"):
        return dataset.with_format("torch")  # Hugging Face datasets: items as dicts of tensors
    if isinstance(dataset, torch.Tensor):
        return _Rows(dataset)  # type: ignore[arg-type]
    if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
        raise TypeError(
            f"dataset must be a map-style torch Dataset (with __len__ and __getitem__), a numpy array "
            f"or a Hugging Face datasets.Dataset, got {type(dataset).__name__}"
        )
    return dataset


def _as_embedder(embedder: Any) -> Embedder:
    if isinstance(embedder, nn.Module) and not isinstance(embedder, TorchEmbedder):
        return TorchEmbedder(embedder)
    if not callable(embedder):
        raise TypeError(
            f"embedder must be a TorchEmbedder, an nn.Module or a callable batch -> Tensor, "
            f"got {type(embedder).__name__}"
        )
    return embedder


def _embedder_fingerprint(embedder: Any) -> Any:
    fingerprint = getattr(embedder, "fingerprint", None)
    if callable(fingerprint):
        return fingerprint()
    name = getattr(embedder, "__qualname__", type(embedder).__qualname__)
    return {"kind": "callable", "name": f"{getattr(embedder, '__module__', '')}.{name}"}


def _differences(stored: Any, wanted: Any, prefix: str = "") -> list[str]:
    if isinstance(stored, dict) and isinstance(wanted, dict):
        out: list[str] = []
        for key in sorted(set(stored) | set(wanted), key=str):
            out += _differences(stored.get(key), wanted.get(key), f"{prefix}{key}.")
        return out
    return [] if stored == wanted else [f"{prefix.rstrip('.')}: table has {stored!r}, this run has {wanted!r}"]


def _split_batch(batch: Any, data_key: Any, label_key: Any, mask_key: str | None) -> tuple[Any, Any, Any]:
    """(data, label, mask) of a collated batch of dicts, (data, label) tuples or bare tensors."""
    if isinstance(batch, Mapping):
        for key, what in ((data_key, "data_key"), (label_key, "label_key"), (mask_key, "mask_key")):
            if key is not None and key not in batch:
                raise KeyError(f"{what} {key!r} is not in the dataset's items; their keys are {sorted(batch)}")
        return (
            batch[data_key],
            batch[label_key] if label_key is not None else None,
            batch[mask_key] if mask_key is not None else None,
        )
    if isinstance(batch, (tuple, list)):
        if mask_key is not None:
            raise ValueError(f"mask_key {mask_key!r} needs dict items; this dataset gives tuples")
        return batch[0], (batch[1] if len(batch) > 1 else None), None
    if mask_key is not None:
        raise ValueError(f"mask_key {mask_key!r} needs dict items; this dataset gives {type(batch).__name__}")
    return batch, None, None


def _labels_to_numpy(labels: Any, count: int) -> np.ndarray:
    array = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if array.shape != (count,) or not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise ValueError(f"labels must be one integer per sample, got {array.dtype} of shape {array.shape}")
    return array.astype(np.int64)


class _Buffer:
    """Rows waiting for the next commit."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []
        self.rows = 0

    def add(self, *columns: np.ndarray) -> None:
        self.parts.append(columns)
        self.rows += len(columns[0])

    def take(self) -> list[np.ndarray]:
        merged = [np.concatenate(col) for col in zip(*self.parts, strict=True)]
        self.parts, self.rows = [], 0
        return merged


def describe(
    dataset: Any,
    embedder: Any,
    path: str | os.PathLike[str],
    *,
    vectorizer: Vectorizer | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    data_key: Any = "data",
    label_key: Any = None,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    dtype: str = "float32",
    commit_rows: int = 16384,
    progress: bool = True,
) -> VectorTable:
    """Embed every sample of ``dataset`` and store its vectors in the VectorTable at ``path``.

    Rows are committed atomically every ``commit_rows`` rows (and at least once a minute). Rerunning after a
    crash embeds only the samples not yet in the table; a rerun with other settings (a different fingerprint:
    model weights, layers, fusion, vectorizer, dataset length) is refused and says what differs.

    Args:
        dataset: a map-style torch Dataset whose items are dicts (``data_key``, ``label_key``, the vectorizer's
            ``mask_key``), ``(data, label)`` tuples or tensors; a numpy array (one sample per row); or a
            Hugging Face ``datasets.Dataset``.
        embedder: a ``TorchEmbedder``, an ``nn.Module`` (its output is used) or any callable batch -> Tensor.
            A callable with a ``fingerprint()`` method has it recorded; plain callables are known by name.
        path: the table's directory (created; or resumed when it holds a table of this same job).
        vectorizer: how features become vectors (default ``Vectorizer()``: one per sample for (B, C) features).
        batch_size, num_workers, collate_fn: passed to the DataLoader (``collate_fn`` sees the raw items).
        data_key, label_key: keys of the data and integer label in dict items. Tuples are (data, label).
        dtype: storage dtype, "float32" or "float16".
        commit_rows: rows buffered between two commits.
        progress: show a progress bar with rate and ETA.

    Example:
        >>> import numpy as np, tempfile, os
        >>> from torch import nn
        >>> data = np.random.default_rng(0).random((10, 4), dtype=np.float32)
        >>> t = describe(data, nn.Linear(4, 3), os.path.join(tempfile.mkdtemp(), "v"), progress=False)
        >>> len(t), t.dim
        (10, 3)
    """
    check_int(batch_size, "batch_size", minimum=1)
    check_int(commit_rows, "commit_rows", minimum=1)
    check_int(num_workers, "num_workers", minimum=0)
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
    source = _as_source(dataset)
    total = len(source)
    if total == 0:
        raise ValueError("dataset is empty: nothing to describe")
    embed = _as_embedder(embedder)
    vectorizer = Vectorizer() if vectorizer is None else vectorizer
    if not isinstance(vectorizer, Vectorizer):
        raise TypeError(f"vectorizer must be a Vectorizer or None, got {type(vectorizer).__name__}")
    fingerprint = {
        "embedder": _embedder_fingerprint(embed),
        "vectorizer": vectorizer.fingerprint(),
        "dataset_length": total,
        "data_key": data_key,
        "label_key": label_key,
        "dtype": dtype,
    }
    table: VectorTable | None = None
    done = np.empty(0, dtype=np.int64)
    if os.path.exists(path):
        table = VectorTable.open(path)
        differences = _differences(table.fingerprint, fingerprint)
        if differences:
            raise ValueError(
                f"table {os.fspath(path)!r} was made by a different job; not mixing rows. "
                f"Differences: {'; '.join(differences)}. Use another path or delete this table."
            )
        done = table.sample_ids()
    pending = np.setdiff1d(np.arange(total, dtype=np.int64), done, assume_unique=True)
    if len(pending) == 0:
        assert table is not None
        return table

    loader = DataLoader(
        _Pending(source, pending),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_IndexedCollate(collate_fn),
    )
    buffer = _Buffer()
    dim = table.dim if table is not None else None
    has_label: bool | None = table.has_labels if table is not None else None
    last_commit = time.monotonic()

    def commit() -> None:
        nonlocal table, last_commit
        if table is None:
            assert dim is not None
            table = VectorTable.create(path, dim=dim, dtype=dtype, has_label=bool(has_label), fingerprint=fingerprint)
        if buffer.rows:
            idx, idx_vector, vectors, labels = buffer.take()
            table.append(idx, idx_vector, vectors, labels if has_label else None)
        last_commit = time.monotonic()

    bar = tqdm(
        total=total,
        initial=total - len(pending),
        unit="sample",
        desc="describe",
        disable=not progress,
        dynamic_ncols=True,
    )
    try:
        with warnings.catch_warnings():
            # Lance warns on fork; the DataLoader's workers only read the user's dataset and never call Lance.
            warnings.filterwarnings("ignore", message="lance is not fork-safe")
            batches = iter(loader)
        for ids, batch in batches:
            data, labels, mask = _split_batch(batch, data_key, label_key, vectorizer.mask_key)
            features = embed(data)
            if not isinstance(features, torch.Tensor):
                raise TypeError(f"the embedder returned {type(features).__name__}, not a torch.Tensor")
            out = vectorizer(features, idx=ids, mask=mask)
            vectors = out.vectors.detach().to("cpu", torch.float32).numpy()
            if dim is None:
                dim = vectors.shape[1]
            elif vectors.shape[1] != dim:
                raise ValueError(f"the embedder gives vectors of dimension {vectors.shape[1]}, the table holds {dim}")
            sample = out.sample.cpu().numpy()
            bad = ~np.isfinite(vectors).all(axis=1)
            if bad.any():
                raise ValueError(f"the embedding of sample idx {int(ids[sample[np.argmax(bad)]])} holds NaN or inf")
            label_array = None if labels is None else _labels_to_numpy(labels, len(ids))
            if has_label is None:
                has_label = label_array is not None
            elif has_label != (label_array is not None):
                raise ValueError("labels appeared or disappeared between batches")
            buffer.add(
                ids.numpy()[sample],
                out.idx_vector.cpu().numpy().astype(np.int32),
                vectors,
                label_array[sample] if label_array is not None else np.zeros(len(sample), np.int64),
            )
            if buffer.rows >= commit_rows or time.monotonic() - last_commit > _COMMIT_SECONDS:
                commit()
            bar.update(len(ids))
        commit()
    finally:
        if buffer.rows and table is not None:
            commit()  # keep the finished batches of a job that stops on bad input
        bar.close()
    assert table is not None
    return table
