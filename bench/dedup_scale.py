"""Does dedup run on a million rows read from disk within a memory budget, and does it still find the copies?

A VectorTable of ``--rows`` x 128 float32 rows: a mixture of 1,000 overlapping Gaussian clusters (centres at a
quarter of the spread, as distinct samples of one domain: unrelated rows at whitened cosines far below 0.6), in
which 1 % of the rows are near-copies of other rows (the source plus noise of 1 % of its norm). Tight,
well-separated clusters are not a fit: after whitening every row of such a cluster is near-parallel to the others,
and dedup's ``max_removed`` guard refuses the run. ``dedup(table,
memory_budget=...)`` runs in a fresh process with its defaults (k-means with k = rows / 1000 streamed from disk,
whitened cosines, threshold 0.6, margin 0.35), then once more with the table read whole; printed per run: time,
peak RSS growth over the process before the call, rows removed, and precision / recall against the injected copies
(a removal is right when it is a copy whose source stays, or a source whose copy stays).

    python bench/dedup_scale.py [--rows 1000000] [--budget 256M]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from curata import VectorTable, dedup
from curata.cli.main import memory_bytes


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(f.read().split(f"{field}:")[1].split()[0]) * 1024


def pool(rows: int, dim: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(rows, source of each of the last rows // 100 rows, which are copies)."""
    rng = np.random.default_rng(seed)
    copies = rows // 100
    distinct = rows - copies
    centres = rng.standard_normal((1000, dim), dtype=np.float32) * 0.5
    which = rng.choice(1000, distinct, p=rng.dirichlet(np.full(1000, 2.0)))
    spread = rng.uniform(0.8, 1.2, 1000).astype(np.float32)
    X = np.empty((rows, dim), dtype=np.float32)
    X[:distinct] = centres[which] + rng.standard_normal((distinct, dim), dtype=np.float32) * spread[which, None]
    sources = rng.choice(distinct, copies, replace=False)
    noise = rng.standard_normal((copies, dim), dtype=np.float32)
    noise *= 0.01 * np.linalg.norm(X[sources], axis=1, keepdims=True) / np.sqrt(dim)
    X[distinct:] = X[sources] + noise
    return X, sources


def one(table: Path, budget: int | None, out: Path) -> None:
    opened = VectorTable.open(table)
    opened.vectors(slice(0, 100))
    dedup(np.random.default_rng(0).standard_normal((3000, opened.dim), dtype=np.float32), max_removed=1.0)
    before = _status("VmRSS")
    start = time.perf_counter()
    kept, _ = dedup(opened, memory_budget=budget, max_removed=1.0)
    seconds = time.perf_counter() - start
    np.save(out, kept)
    print(json.dumps({"seconds": seconds, "grown": _status("VmHWM") - before}))


def scores(kept: np.ndarray, rows: int, sources: np.ndarray) -> tuple[int, float, float]:
    is_kept = np.zeros(rows, dtype=bool)
    is_kept[kept] = True
    copies = np.arange(rows - len(sources), rows)
    removed = ~is_kept
    right = int((removed[copies] & is_kept[sources]).sum() + (removed[sources] & is_kept[copies]).sum())
    resolved = int((is_kept[sources] != is_kept[copies]).sum())
    total = int(removed.sum())
    return total, right / total if total else 1.0, resolved / len(sources)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--budget", default="256M")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        table, budget, out = args.one
        one(Path(table), None if budget == "none" else memory_bytes(budget), Path(out))
        return
    print(
        f"{date.today()}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    with tempfile.TemporaryDirectory() as scratch:
        X, sources = pool(args.rows)
        path = Path(scratch) / "pool"
        VectorTable.from_arrays(path, X)
        print(f"table {args.rows} x {X.shape[1]} float32 ({X.nbytes / 2**20:.0f} MB), {len(sources)} injected copies")
        del X
        print("\n| run | seconds | peak RSS growth (MB) | removed | precision | recall |")
        print("|---|---:|---:|---:|---:|---:|")
        for budget in (args.budget, "none"):
            out = Path(scratch) / f"kept-{budget}.npy"
            command = [sys.executable, __file__, "--one", str(path), budget, str(out)]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise SystemExit(result.stderr[-3000:])
            numbers = json.loads(result.stdout.strip().splitlines()[-1])
            removed, precision, recall = scores(np.load(out), args.rows, sources)
            label = f"memory_budget={budget}" if budget != "none" else "table read whole"
            print(
                f"| {label} | {numbers['seconds']:.1f} | {numbers['grown'] / 2**20:.0f} | {removed} | "
                f"{precision:.3f} | {recall:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
