"""describe(): embed a dataset batch by batch into a VectorTable, resumably."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from curata._internal.checks import check_int
from curata._internal.distributed import all_reduce_sum, is_distributed, rank_and_world
from curata.embedding.embed import as_embedder, embedder_fingerprint
from curata.embedding.loop import (
    RowBuffer,
    embedded_batches,
    finish_normalization,
    loader_kwargs,
    progress_bar,
    report_unreadable,
    start_normalization,
)
from curata.embedding.shards import describe_shards, uncommitted_sample_ids
from curata.embedding.vectorize import Vectorizer
from curata.store.locking import TableLockedError, write_lock
from curata.store.table import VectorTable

__all__ = ["describe", "Embedder"]

Embedder = Callable[[Any], torch.Tensor]


class _Rows(Dataset):
    """The rows of an array as a dataset."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, i: int) -> Any:
        return self.array[i]


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


def _differences(stored: Any, wanted: Any, prefix: str = "") -> list[str]:
    if isinstance(stored, dict) and isinstance(wanted, dict):
        out: list[str] = []
        for key in sorted(set(stored) | set(wanted), key=str):
            out += _differences(stored.get(key), wanted.get(key), f"{prefix}{key}.")
        return out
    return [] if stored == wanted else [f"{prefix.rstrip('.')}: table has {stored!r}, this run has {wanted!r}"]


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
    normalize: str = "none",
    commit_rows: int = 16384,
    progress: bool = True,
) -> VectorTable:
    """Embed every sample of ``dataset`` and store its vectors in the VectorTable at ``path``.

    Rows are committed atomically every ``commit_rows`` rows (and at least once a minute). Rerunning after a
    crash embeds only the samples not yet in the table; a rerun with other settings (a different fingerprint:
    model weights, layers, fusion, vectorizer, dataset length) is refused and says what differs.

    Under an initialised torch.distributed process group (``torchrun``), every rank passes the same arguments and
    embeds its own contiguous share of the pending samples into its own fragments; when all are done, one commit
    makes every row visible, in sample order: the same table as one process. A rerun after a crash (any world
    size) keeps the fragments that finished ranks wrote and embeds only the rest.

    Args:
        dataset: a map-style torch Dataset whose items are dicts (``data_key``, ``label_key``, the vectorizer's
            ``mask_key``), ``(data, label)`` tuples or tensors; a numpy array (one sample per row); or a
            Hugging Face ``datasets.Dataset``. An ``Unreadable`` item is skipped: no row, one warning, and it is
            listed in the table's ``unreadable`` attribute. A dataset with a ``fingerprint()`` method (curata's
            sources) has it recorded, so that a resume on other files is refused.
        embedder: a ``TorchEmbedder``, an ``nn.Module`` (its output is used) or any callable batch -> Tensor.
            A callable with a ``fingerprint()`` method has it recorded; plain callables are known by name.
        path: the table's directory (created; or resumed when it holds a table of this same job).
        vectorizer: how features become vectors (default ``Vectorizer()``: one per sample for (B, C) features).
        batch_size, num_workers, collate_fn: passed to the DataLoader (``collate_fn`` sees the raw items).
        data_key, label_key: keys of the data and integer label in dict items. Tuples are (data, label).
        dtype: storage dtype, "float32" or "float16".
        normalize: how the table gives its vectors back: "none", "l2" (unit norm) or "center+l2" (minus the mean
            of all its rows, computed when the job ends and recorded, then unit norm). Rows are stored as embedded
            (``vectors(raw=True)``); rows appended later are given back the same way.
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
    if normalize not in ("none", "l2", "center+l2"):
        raise ValueError(f"normalize must be 'none', 'l2' or 'center+l2', got {normalize!r}")
    source = _as_source(dataset)
    total = len(source)
    if total == 0:
        raise ValueError("dataset is empty: nothing to describe")
    embed = as_embedder(embedder)
    vectorizer = Vectorizer() if vectorizer is None else vectorizer
    if not isinstance(vectorizer, Vectorizer):
        raise TypeError(f"vectorizer must be a Vectorizer or None, got {type(vectorizer).__name__}")
    if label_key is not None and vectorizer.label_mask_key is not None:
        raise ValueError(
            f"label_key {label_key!r} and the vectorizer's label_mask_key {vectorizer.label_mask_key!r} both label "
            "the rows: pass one"
        )
    fingerprint = {
        "embedder": embedder_fingerprint(embed),
        "vectorizer": vectorizer.fingerprint(),
        "dataset_length": total,
        "data_key": data_key,
        "label_key": label_key,
        "dtype": dtype,
    }
    if normalize != "none":
        fingerprint["normalize"] = normalize
    source_fingerprint = getattr(dataset, "fingerprint", None)
    if callable(source_fingerprint):  # curata's sources know their files: a resume on other files is refused
        fingerprint["source"] = source_fingerprint()
    rank, world = rank_and_world() if is_distributed() else (0, 1)
    with ExitStack() as held:
        _hold_write_lock(held, path, rank, world)
        table = _describe_locked(
            source,
            embed,
            vectorizer,
            path,
            fingerprint,
            (rank, world),
            (data_key, label_key),
            loader_kwargs(batch_size, num_workers, collate_fn),
            dtype,
            commit_rows,
            progress,
        )
        if rank == 0:
            finish_normalization(table)
            from curata.sources.locations import record_source

            record_source(table, dataset)  # sample id -> file or record, so that ids lead back to the data
        if world > 1:
            dist.barrier()  # the mean is recorded before any rank reads the vectors
        return VectorTable.open(path)


def _hold_write_lock(held: ExitStack, path: str | os.PathLike[str], rank: int, world: int) -> None:
    """Rank 0 holds the table's write lock for the whole job; every rank fails alike when another job has it."""
    refused: TableLockedError | None = None
    if rank == 0:
        try:
            held.enter_context(write_lock(path, wait=0))
        except TableLockedError as exc:
            refused = exc
    if world > 1 and all_reduce_sum(torch.tensor([float(refused is not None)])).item() and refused is None:
        refused = TableLockedError(f"table {os.fspath(path)!r} is being written by another job (see rank 0's error)")
    if refused is not None:
        raise refused


def _describe_locked(
    source: Any,
    embed: Embedder,
    vectorizer: Vectorizer,
    path: str | os.PathLike[str],
    fingerprint: dict[str, Any],
    rank_world: tuple[int, int],
    keys: tuple[Any, Any],
    loader: dict[str, Any],
    dtype: str,
    commit_rows: int,
    progress: bool,
) -> VectorTable:
    rank, world = rank_world
    total = int(fingerprint["dataset_length"])
    table: VectorTable | None = None
    done = uncommitted = np.empty(0, dtype=np.int64)
    if os.path.exists(path):
        table = VectorTable.open(path)
        differences = _differences(table.fingerprint, fingerprint)
        if differences:
            raise ValueError(
                f"table {os.fspath(path)!r} was made by a different job; not mixing rows. "
                f"Differences: {'; '.join(differences)}. Use another path or delete this table."
            )
        # rows that ranks of a crashed sharded run wrote but never committed count as done; they are committed
        # with this run's rows, in sample order
        uncommitted = uncommitted_sample_ids(table.path)
        done = np.union1d(table.sample_ids(), uncommitted)
        if world > 1:
            dist.barrier()  # every rank has read the manifests before any rank writes new ones
    pending = np.setdiff1d(np.arange(total, dtype=np.int64), done, assume_unique=True)
    if len(pending) == 0 and world == 1 and len(uncommitted) == 0:
        assert table is not None
        return table

    if world > 1 or len(uncommitted):
        create = {"dtype": dtype, "fingerprint": fingerprint}
        return describe_shards(
            source,
            pending,
            embed,
            vectorizer,
            Path(path),
            table,
            create,
            commit_rows,
            progress,
            loader,
            keys,
            rank_world,
        )
    batches = embedded_batches(source, pending, embed, vectorizer, loader, keys)
    buffer = RowBuffer()
    dim = table.dim if table is not None else None
    has_label: bool | None = table.has_labels if table is not None else None

    def commit() -> None:
        nonlocal table
        if table is None:
            assert dim is not None
            table = VectorTable.create(path, dim=dim, dtype=dtype, has_label=bool(has_label), fingerprint=fingerprint)
            start_normalization(table)
        if buffer.rows:
            idx, idx_vector, vectors, labels = buffer.take()
            table.append(idx, idx_vector, vectors, labels if has_label else None)

    bar = progress_bar(total, total - len(pending), progress)
    try:
        for batch in batches:
            dim, has_label = buffer.absorb(batch, dim, has_label)
            if buffer.due(commit_rows):
                commit()
            bar.update(batch.samples)
        if dim is None:
            raise ValueError(
                f"no sample could be read: all {len(buffer.skipped)} were unreadable "
                f"({buffer.skipped[0][1]}: {buffer.skipped[0][2]})"
            )
        commit()
    finally:
        if buffer.rows and table is not None:
            commit()  # keep the finished batches of a job that stops on bad input
        bar.close()
    assert table is not None
    report_unreadable(buffer.skipped, table)
    return table
