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

Then ``contamination(table, reference)``: a 10,000-row "test set" of which 1,000 rows are near-copies of table
rows (noise of 1 % of the norm) and the rest new draws of the same mixture; printed: time, peak RSS growth, rows flagged
and how many of the 1,000 copied table rows are among them; then the same with ``reference_clusters=10,
probes=2`` (each table row compared with the test rows of its 2 nearest of 10 test-set clusters).

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

from curata import VectorTable, contamination, dedup
from curata.cli.main import memory_bytes


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(f.read().split(f"{field}:")[1].split()[0]) * 1024


def pool(
    rows: int, dim: int = 128, seed: int = 0, draws: int = 0, copy_share: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, source of each of the last rows // ``copy_share`` rows, which are copies); the mixture is fixed by
    ``seed``, the rows drawn from it by ``draws``."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim), dtype=np.float32) * 0.5
    weights = rng.dirichlet(np.full(1000, 2.0))
    spread = rng.uniform(0.8, 1.2, 1000).astype(np.float32)
    rng = np.random.default_rng([seed, draws])
    copies = rows // copy_share
    distinct = rows - copies
    which = rng.choice(1000, distinct, p=weights)
    X = np.empty((rows, dim), dtype=np.float32)
    X[:distinct] = centres[which] + rng.standard_normal((distinct, dim), dtype=np.float32) * spread[which, None]
    sources = rng.choice(distinct, copies, replace=False)
    noise = rng.standard_normal((copies, dim), dtype=np.float32)
    noise *= 0.01 * np.linalg.norm(X[sources], axis=1, keepdims=True) / np.sqrt(dim)
    X[distinct:] = X[sources] + noise
    return X, sources


def test_set(
    table: VectorTable, rows: int = 10_000, copied: int = 1_000, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """(reference rows, the table rows the first ``copied`` of them copy)."""
    rng = np.random.default_rng(seed)
    sources = np.sort(rng.choice(len(table), copied, replace=False))
    copies = table.vectors(sources)
    copies = copies + rng.standard_normal(copies.shape, dtype=np.float32) * (
        0.01 * np.linalg.norm(copies, axis=1, keepdims=True) / np.sqrt(copies.shape[1])
    )
    fresh, _ = pool(rows - copied, table.dim, draws=1, copy_share=rows)  # new draws of the same mixture
    return np.concatenate([copies, fresh]).astype(np.float32), sources


def one_contamination(table: Path, out: Path) -> None:
    opened = VectorTable.open(table)
    reference, sources = test_set(opened)
    contamination(reference[:500], reference[500:1000])
    before = _status("VmRSS")
    start = time.perf_counter()
    flagged, _, _ = contamination(opened, reference)
    seconds = time.perf_counter() - start
    grown = _status("VmHWM") - before
    np.save(out, flagged)
    found = int(np.isin(sources, flagged).sum())
    start = time.perf_counter()
    clustered, _, _ = contamination(opened, reference, reference_clusters=len(reference) // 1000, probes=2)
    clustered_seconds = time.perf_counter() - start
    numbers = {"seconds": seconds, "grown": grown, "found": found, "clustered_seconds": clustered_seconds}
    numbers["clustered_found"] = int(np.isin(sources, clustered).sum())
    numbers["clustered_flagged"] = len(clustered)
    numbers["clustered_subset"] = bool(np.isin(clustered, flagged).all())
    print(json.dumps(numbers))


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
    parser.add_argument("--one-contamination", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        table, budget, out = args.one
        one(Path(table), None if budget == "none" else memory_bytes(budget), Path(out))
        return
    if args.one_contamination:
        one_contamination(*(Path(a) for a in args.one_contamination))
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
        out = Path(scratch) / "flagged.npy"
        command = [sys.executable, __file__, "--one-contamination", str(path), str(out)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemExit(result.stderr[-3000:])
        numbers = json.loads(result.stdout.strip().splitlines()[-1])
        print(
            f"\ncontamination(table, 10,000-row test set with 1,000 near-copies of table rows): "
            f"{numbers['seconds']:.1f} s, peak RSS growth {numbers['grown'] / 2**20:.0f} MB, "
            f"{len(np.load(out))} table rows flagged, {numbers['found']} of the 1,000 copied rows among them"
        )
        print(
            f"the same with reference_clusters=10, probes=2: {numbers['clustered_seconds']:.1f} s "
            f"({numbers['clustered_seconds'] / numbers['seconds']:.2f}x), {numbers['clustered_flagged']} flagged "
            f"(all among the exact ones: {numbers['clustered_subset']}), {numbers['clustered_found']} of the 1,000"
        )


if __name__ == "__main__":
    main()
