"""describe() under torch.distributed: every rank embeds its share into its own fragments, one commit shows all.

Each rank writes Lance fragments (data files nobody sees yet) and, after each, a small JSON manifest naming the
fragment and the run of consecutive sample ids in it, inside the table's directory. When every rank is done,
rank 0 commits all fragments in one Append, in sample order, and removes the manifests. A rerun after a crash
counts the samples the manifests name as done, embeds only the rest, and commits old and new fragments together
(committing is idempotent): no finished work is lost, no row is duplicated, whatever the new world size, and the
rows end in sample order, as in a run that never crashed.
"""

from __future__ import annotations

import itertools
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from curata._internal.atomic import write_atomically
from curata._internal.distributed import all_reduce_sum, shard_range
from curata.embedding.loop import (
    RowBuffer,
    embedded_batches,
    progress_bar,
    report_unreadable,
    start_normalization,
)
from curata.store.table import VectorTable

__all__ = ["commit_uncommitted_shards", "describe_shards", "uncommitted_sample_ids"]

_SHARDS_DIR = "_curata_shards"


def _manifests(path: Path) -> list[tuple[Path, dict[str, Any]]]:
    folder = path / _SHARDS_DIR
    if not folder.is_dir():
        return []
    found = [(f, json.loads(f.read_text())) for f in folder.glob("*.json")]
    return sorted(found, key=lambda item: (item[1]["first_idx"], item[0].name))


def uncommitted_sample_ids(path: Path) -> np.ndarray:
    """The sample ids in fragments that ranks wrote but nobody committed yet (sorted).

    Example:
        >>> import tempfile
        >>> uncommitted_sample_ids(Path(tempfile.mkdtemp())).tolist()
        []
    """
    runs = [np.arange(m["first_idx"], m["last_idx"] + 1) for _, m in _manifests(path)]
    return np.unique(np.concatenate(runs)) if runs else np.zeros(0, dtype=np.int64)


def commit_uncommitted_shards(table: VectorTable) -> int:
    """Commit the fragments that ranks wrote but nobody committed (all of them, in sample order, in one commit),
    then remove their manifests; returns the rows added. Call it on one process only.

    Example:
        >>> import tempfile, os
        >>> commit_uncommitted_shards(VectorTable.create(os.path.join(tempfile.mkdtemp(), "t"), dim=2))
        0
    """
    manifests = _manifests(table.path)
    added = table.commit_fragments([f for _, m in manifests for f in m["fragments"]])
    for file, _ in manifests:
        file.unlink()
    folder = table.path / _SHARDS_DIR
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    return added


def _write_manifest(table: VectorTable, fragments: list[dict[str, Any]], idx: np.ndarray, rank: int) -> None:
    folder = table.path / _SHARDS_DIR
    folder.mkdir(exist_ok=True)
    name = f"rank{rank}-{uuid.uuid4().hex}"
    manifest = {"first_idx": int(idx[0]), "last_idx": int(idx[-1]), "rank": rank, "fragments": fragments}
    text = json.dumps(manifest)
    write_atomically(folder / f"{name}.json", lambda file: file.write_text(text))


def _consecutive_runs(idx: np.ndarray) -> list[slice]:
    """Slices of ``idx`` (sorted sample ids, repeated for several vectors) over runs of consecutive ids."""
    cuts = np.flatnonzero(np.diff(idx) > 1) + 1
    bounds = [0, *cuts.tolist(), len(idx)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def _agree_on_layout(dim: int | None, has_label: bool | None, rank: int, world: int) -> tuple[int, bool]:
    """Every rank's (dim, has_label) from its first batch; ranks without samples report nothing."""
    seen = torch.zeros((world, 2), dtype=torch.float64)
    if dim is not None:
        seen[rank] = torch.tensor([dim, 1.0 + bool(has_label)], dtype=torch.float64)
    seen = all_reduce_sum(seen)
    reported = seen[seen[:, 0] > 0]
    if len(reported) == 0 or len(set(map(tuple, reported.tolist()))) != 1:
        raise ValueError(f"ranks disagree on the vectors' dimension or labels: (dim, has_label + 1) per rank {seen}")
    return int(reported[0, 0]), bool(reported[0, 1] == 2.0)


def describe_shards(
    source: Any,
    pending: np.ndarray,
    embed: Any,
    vectorizer: Any,
    path: Path,
    table: VectorTable | None,
    create: dict[str, Any],
    commit_rows: int,
    progress: bool,
    loader: dict[str, Any],
    keys: tuple[Any, Any],
    rank_world: tuple[int, int],
) -> VectorTable:
    """Embed this rank's contiguous block of ``pending`` and write it as fragments; rank 0 commits all at the end.

    ``create`` holds VectorTable.create's dtype and fingerprint, used when the table does not exist yet. Runs with
    one process too (``rank_world=(0, 1)``), to finish a sharded run that crashed.
    """
    rank, world = rank_world
    start, stop = shard_range(len(pending), rank, world)
    batches = embedded_batches(source, pending[start:stop], embed, vectorizer, loader, keys)
    first = next(batches, None)
    if table is None:
        dim, has_label = _agree_on_layout(
            None if first is None or not first.rows else first.vectors.shape[1],
            None if first is None or not first.rows else first.labels is not None,
            rank,
            world,
        )
        if rank == 0:
            start_normalization(VectorTable.create(path, dim=dim, has_label=has_label, **create))
        if world > 1:
            dist.barrier()
        table = VectorTable.open(path)
    dim, has_label = table.dim, table.has_labels
    buffer = RowBuffer()

    def write() -> None:
        if buffer.rows:
            idx, idx_vector, vectors, labels = buffer.take()
            # one fragment per run of consecutive ids: sorted by first id, all fragments are in sample order
            for run in _consecutive_runs(idx):
                part = labels[run] if has_label else None
                fragments = table.write_fragments(idx[run], idx_vector[run], vectors[run], part)
                _write_manifest(table, fragments, idx[run], rank)

    bar = progress_bar(stop - start, 0, progress and rank == 0)
    try:
        for batch in itertools.chain([] if first is None else [first], batches):
            dim, has_label = buffer.absorb(batch, dim, has_label)
            if buffer.due(commit_rows):
                write()
            bar.update(batch.samples)
        write()
    finally:
        if buffer.rows:
            write()  # keep the finished batches of a rank that stops on bad input
        bar.close()
    report_unreadable(buffer.skipped)  # each rank warns about its own share
    if world > 1:
        dist.barrier()  # every rank's fragments and manifests are on disk
    if rank == 0:
        commit_uncommitted_shards(table)
    if world > 1:
        dist.barrier()
    return VectorTable.open(path)
