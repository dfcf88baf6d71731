"""describe(): embed a dataset batch by batch into a VectorTable, resumably."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
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
from curata.embedding.content import (
    check_items,
    content_fingerprint,
    read_sample,
    sample_positions,
    stated_fingerprint,
)
from curata.embedding.embed import as_embedder, check_not_meta, embedder_fingerprint
from curata.embedding.loop import (
    RowBuffer,
    check_item_keys,
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


_CONTENT_CHANGED = (
    "the data's content changed (sampled items differ: other data, transform or collate_fn; a dataset whose items "
    "change from read to read needs fingerprint=)"
)


def _content_differences(stored: Any, wanted: Any) -> list[str]:
    if stored == wanted:
        return []
    stated = [isinstance(x, dict) and "stated" in x for x in (stored, wanted)]
    if all(stated):
        return [
            f"the data's stated fingerprint changed: table has {stored['stated']!r}, this run has {wanted['stated']!r}"
        ]
    if stated[0]:
        return [f"the table's data was identified by fingerprint={stored['stated']!r}, this run passes none"]
    if stated[1]:
        return ["the table's data was identified by its sampled content, this run passes fingerprint= instead"]
    return [_CONTENT_CHANGED]


def _differences(stored: Any, wanted: Any, prefix: str = "") -> list[str]:
    if isinstance(stored, dict) and isinstance(wanted, dict):
        out: list[str] = []
        for key in sorted(set(stored) | set(wanted), key=str):
            if not prefix and key == "content":
                out += _content_differences(stored.get(key), wanted.get(key))
            else:
                out += _differences(stored.get(key), wanted.get(key), f"{prefix}{key}.")
        return out
    if stored == wanted:
        return []
    key = prefix.rstrip(".")
    if key.startswith("embedder") and key.endswith("weights"):
        return [f"the model's weights changed ({key})"]
    return [f"{key}: table has {stored!r}, this run has {wanted!r}"]


def _without_unrecorded_weights(stored: Any, wanted: Any) -> tuple[Any, bool]:
    """``wanted`` less the weights of plain callables that ``stored`` (an older curata's) has no record of."""
    if not (isinstance(stored, dict) and isinstance(wanted, dict)):
        return wanted, False
    if wanted.get("kind") == "callable" and "weights" in wanted and "weights" not in stored:
        return {k: v for k, v in wanted.items() if k != "weights"}, True
    out, dropped = dict(wanted), False
    for key in set(stored) & set(wanted):
        out[key], inner = _without_unrecorded_weights(stored[key], wanted[key])
        dropped |= inner
    return out, dropped


def _comparable(stored: dict[str, Any], wanted: dict[str, Any], path: str | os.PathLike[str]) -> dict[str, Any]:
    """What of ``wanted`` the table can be checked against: a table written by an older curata recorded neither
    the data's content nor a plain callable's weights; those are skipped, with a warning."""
    view, dropped = _without_unrecorded_weights(stored, wanted)
    unchecked = ["a plain callable embedder's weights"] if dropped else []
    if "content" not in stored:
        view.pop("content", None)
        unchecked.insert(0, "the data's content")
    if unchecked:
        warnings.warn(
            f"table {os.fspath(path)!r} was written by an older curata that did not record {' nor '.join(unchecked)}:"
            " resuming without checking them",
            RuntimeWarning,
            stacklevel=4,
        )
    return view


def _job_fingerprint(
    dataset: Any,
    source: Any,
    embedder: Any,
    embed: Embedder,
    vectorizer: Vectorizer,
    keys: tuple[Any, Any],
    collate_fn: Callable[[list[Any]], Any] | None,
    stated: dict[str, Any] | None,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """What makes the table what it is, checked at every resume; the bad inputs that would fail later are
    refused here, before anything is written."""
    total = len(source)
    check_not_meta(embedder)  # what the user passed, so that the error names its weights as they know them
    if stated is None:
        sample = read_sample(source, sample_positions(total), collate_fn)
        content = content_fingerprint(sample)
    else:  # the user vouches for the data: one item read, for the checks only
        sample = read_sample(source, np.zeros(1, dtype=np.int64), collate_fn)
        check_items(sample)
        content = stated
    for _, batch in sample:
        check_item_keys(batch, keys, vectorizer)
    job = {
        "embedder": embedder_fingerprint(embed),
        "vectorizer": vectorizer.fingerprint(),
        "dataset_length": total,
        "data_key": keys[0],
        "label_key": keys[1],
        "content": content,
        **settings,
    }
    source_fingerprint = getattr(dataset, "fingerprint", None)
    if callable(source_fingerprint):  # curata's sources know their files: a resume on other files is refused
        job["source"] = source_fingerprint()
    return job


def _word(value: Any) -> float:
    """48 bits of a hash of a JSON value: exact in float64, so ranks can compare it through an all-reduce."""
    text = json.dumps(value, sort_keys=True, default=repr).encode()
    return float(int.from_bytes(hashlib.blake2b(text, digest_size=6).digest(), "big"))


def _agreed_fingerprint(make: Callable[[], dict[str, Any]], rank: int, world: int) -> dict[str, Any]:
    """``make()`` on every rank, checked to give the same result everywhere; every rank fails alike when one
    fails or they disagree (a rank that trusted its own fingerprint would mix rows another rank refuses)."""
    if world == 1:
        return make()
    job: dict[str, Any] | None = None
    error: Exception | None = None
    try:
        job = make()
    except Exception as exc:  # every rank must still reach the all-reduce, or the others wait forever
        error = exc
    parts = {"embedder": "the model", "content": "the data's content"}
    seen = torch.zeros((world, len(parts) + 2), dtype=torch.float64)
    if job is not None:
        rest = {k: v for k, v in job.items() if k not in parts}
        seen[rank] = torch.tensor([1.0, *(_word(job[k]) for k in parts), _word(rest)], dtype=torch.float64)
    seen = all_reduce_sum(seen)
    if error is not None:
        raise error
    failed = [r for r in range(world) if seen[r, 0] == 0]
    if failed:
        raise RuntimeError(f"describe: rank {failed[0]} failed before anything was written (see its error)")
    names = [*parts.values(), "the other settings"]
    differ = [names[c] for c in range(len(names)) if len(set(seen[:, c + 1].tolist())) > 1]
    if differ:
        raise ValueError(
            f"ranks disagree on {' and '.join(differ)}: every rank must pass the same data, transform, model weights "
            "and arguments (seed the model or load one checkpoint on all)"
        )
    assert job is not None
    return job


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
    fingerprint: Any = None,
) -> VectorTable:
    """Embed every sample of ``dataset`` and store its vectors in the VectorTable at ``path``.

    Rows are committed atomically every ``commit_rows`` rows (and at least once a minute), and the first batch's
    rows at once, so that the table exists from the first batch on. Rerunning after a crash or a Ctrl-C (the
    rows embedded before it are committed) embeds only the samples not yet in the table, and says so (with
    ``progress``); a rerun with other settings (a different fingerprint: model weights, layers, fusion,
    vectorizer, dataset length, the data's content) is refused and says what differs. The content is 16 items
    chosen by a fixed seed, read through the dataset's transform and ``collate_fn`` as the model receives them,
    and hashed; a table of an older curata, which has no such record, resumes with a warning. Bad inputs (a
    missing key, a model or item on the ``meta`` device) are refused before anything is written.

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
            A callable with a ``fingerprint()`` method has it recorded; a plain callable is known by its qualified
            name and the weights of the modules and tensors it reaches (a bound method's object, closure cells,
            defaults, globals it names, a ``functools.partial``'s arguments, and their attributes, 4 levels deep).
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
        fingerprint: the data's identity as the user states it (a JSON value: a dataset version, a dict of
            them), recorded and checked at a resume instead of hashing sampled items: for data slow to read, or
            whose items change from read to read (random augmentation). The model's weights are still hashed.

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
    stated = None if fingerprint is None else stated_fingerprint(fingerprint)
    settings = {"dtype": dtype, **({"normalize": normalize} if normalize != "none" else {})}
    keys = (data_key, label_key)
    rank, world = rank_and_world() if is_distributed() else (0, 1)
    job = _agreed_fingerprint(
        lambda: _job_fingerprint(dataset, source, embedder, embed, vectorizer, keys, collate_fn, stated, settings),
        rank,
        world,
    )
    with ExitStack() as held:
        _hold_write_lock(held, path, rank, world)
        table = _describe_locked(
            source,
            embed,
            vectorizer,
            path,
            job,
            (rank, world),
            keys,
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
        differences = _differences(table.fingerprint, _comparable(table.fingerprint, fingerprint, path))
        if differences:
            raise ValueError(
                f"table {os.fspath(path)!r} was made by a different job; not mixing rows: {'; '.join(differences)}. "
                "Use another path or delete this table."
            )
        # rows that ranks of a crashed sharded run wrote but never committed count as done; they are committed
        # with this run's rows, in sample order
        uncommitted = uncommitted_sample_ids(table.path)
        done = np.union1d(table.sample_ids(), uncommitted)
        if world > 1:
            dist.barrier()  # every rank has read the manifests before any rank writes new ones
    pending = np.setdiff1d(np.arange(total, dtype=np.int64), done, assume_unique=True)
    if progress and rank == 0 and len(done):
        print(f"resuming: {len(done)} of {total} samples already in the table", file=sys.stderr, flush=True)
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
            # the first rows are committed at once: a job stopped after its first batches resumes from them
            if buffer.due(commit_rows) or (table is None and buffer.rows):
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
