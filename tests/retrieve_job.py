"""Run under torchrun by tests/subsets/test_retrieve.py: retrieve on every rank (each scans its block of the pool),
rank 0 writes the answers."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch.distributed as dist

from curata import VectorTable, retrieve


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A pool of 301 rows (a sample id per 3 rows, but the last), 7 seeds, and two seeds copied into the pool."""
    rng = np.random.default_rng(5)
    pool, seeds = rng.normal(size=(301, 12)).astype(np.float32), rng.normal(size=(7, 12)).astype(np.float32)
    pool[[10, 200]] = seeds[[0, 1]] + 0.01 * rng.normal(size=(2, 12)).astype(np.float32)
    return pool, seeds, np.arange(301) // 3 * 5


def retrieve_all(folder: Path) -> dict[str, np.ndarray]:
    """Every kind of answer, from arrays and from a multi-vector table in ``folder`` (written if missing)."""
    pool, seeds, ids = data()
    table = VectorTable.open(folder / "pool") if (folder / "pool").exists() else None
    if table is None:
        table = VectorTable.from_arrays(folder / "pool", pool, ids=ids)
    answers = {
        "cosine": retrieve(pool, seeds, per_seed=5, chunk_rows=16),
        "l2": retrieve(pool, seeds, per_seed=5, metric="l2", chunk_rows=16),
        "copies": retrieve(pool, seeds, per_seed=5, exclude_near_copies=True, threshold=0.95, chunk_rows=16),
        "table": retrieve(table, seeds, per_seed=3, chunk_rows=16),
        "clusters": retrieve(pool, seeds, method="clusters", n_clusters=6, chunk_rows=16),
    }
    return {f"{name}_{part}": values for name, got in answers.items() for part, values in zip("isv", got)}


if __name__ == "__main__":
    dist.init_process_group("gloo")
    out = Path(sys.argv[1])
    if dist.get_rank() == 0:  # the table is written once, before any rank reads it
        pool, _, ids = data()
        VectorTable.from_arrays(out.parent / "pool", pool, ids=ids)
    dist.barrier()
    results = retrieve_all(out.parent)
    if dist.get_rank() == 0:
        np.savez(out, **results)
    dist.barrier()
    dist.destroy_process_group()
