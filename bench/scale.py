"""Can one machine curate 10M vectors in 4 GiB of memory, and what does streaming from disk cost?

Writes a 10M x 128 float16 VectorTable (a long-tailed mixture of 2,000 Gaussian concepts: 2.4 GiB on disk,
4.8 GiB as float32, more than the budget), then under ``memory_budget`` = 4 GiB: a 3-level HierarchicalKMeans with
a resampling step, streamed from disk on every pass; curate 1M rows; one ClusterBatchSampler epoch over all rows.
Prints time and peak RSS per stage (the peak is reset between stages). The competitor is the same KMeans with
the rows in memory: one Lloyd pass at k = level 1, streamed vs in memory, timed in this run.

    python bench/scale.py [--rows 10000000 --dim 128 --levels 1000 100 10 --budget-gib 4 --keep]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch

from curata import ClusterBatchSampler, HierarchicalKMeans, KMeans, VectorTable, curate


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(f.read().split(f"{field}:")[1].split()[0])


def reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux: writing 5 to clear_refs)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def timed(stages: list[tuple[str, float, float, str]], name: str, note: str, work: Callable[[], Any]) -> Any:
    reset_peak()
    start = time.perf_counter()
    out = work()
    stages.append((name, time.perf_counter() - start, _status_kib("VmHWM") / 2**20, note))
    print(f"  {name}: {stages[-1][1]:.1f} s, peak RSS {stages[-1][2]:.2f} GiB", flush=True)
    return out


def write_table(path: Path, rows: int, dim: int, seed: int) -> VectorTable:
    rng = np.random.default_rng(seed)
    concepts = rng.normal(size=(2000, dim)).astype(np.float32)
    weights = 1.0 / np.arange(1, len(concepts) + 1) ** 1.1  # Zipf-like: a few concepts dominate
    weights /= weights.sum()
    table = VectorTable.create(path, dim=dim, dtype="float16")
    for start in range(0, rows, 1_000_000):
        count = min(1_000_000, rows - start)
        block = concepts[rng.choice(len(concepts), count, p=weights)]
        block += rng.standard_normal((count, dim), dtype=np.float32) * 0.5
        table.append(np.arange(start, start + count), np.zeros(count), block.astype(np.float16))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--levels", type=int, nargs="+", default=[1000, 100, 10])
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--n-iter", type=int, default=10)
    parser.add_argument("--budget-gib", type=float, default=4.0)
    parser.add_argument("--curate", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu", help="where the k-means runs (rows are streamed to it)")
    parser.add_argument("--dir", type=Path, default=None, help="where the table goes (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the table for a rerun")
    args = parser.parse_args()
    budget = int(args.budget_gib * 2**30)
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="curata-scale-"))
    stages: list[tuple[str, float, float, str]] = []
    baseline = _status_kib("VmRSS") / 2**20
    print(
        f"curata scale bench, {date.today()}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, k-means on {args.device}"
        + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else "")
    )
    try:
        path = workdir / f"vectors-{args.rows}x{args.dim}"
        if VectorTable.is_table(path) and len(VectorTable.open(path)) == args.rows:
            table = VectorTable.open(path)
        else:
            shutil.rmtree(path, ignore_errors=True)
            table = timed(
                stages,
                "write the float16 table",
                f"{args.rows:,} x {args.dim}",
                lambda: write_table(path, args.rows, args.dim, 0),
            )
        tree = timed(
            stages,
            "hierarchical k-means (streamed)",
            f"{args.levels}, {args.steps} resampling step(s), {args.n_iter} iterations",
            lambda: HierarchicalKMeans(
                args.levels,
                n_resampling_steps=args.steps,
                n_iter=args.n_iter,
                memory_budget=budget,
                device=args.device,
                seed=0,
            ).fit(table),
        )
        chosen = timed(stages, "curate", f"{args.curate:,} rows", lambda: curate(tree, args.curate, seed=0))
        assert len(chosen) == args.curate

        def one_epoch() -> int:
            sampler = ClusterBatchSampler(tree.labels_[:, 0], args.batch_size, seed=0)
            return sum(len(batch) for batch in sampler)

        drawn = timed(stages, "sampler epoch", f"B = {args.batch_size}, level-1 clusters", one_epoch)
        assert drawn == args.rows
        centers = tree.centroids_[0]
        for name, kwargs in (("1 Lloyd pass, streamed", {"memory_budget": budget}), ("1 Lloyd pass, in memory", {})):
            timed(
                stages,
                name,
                f"k = {len(centers)}",
                lambda kwargs=kwargs: KMeans(len(centers), n_iter=1, init=centers, device=args.device, **kwargs).fit(
                    table
                ),
            )
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nprocess RSS before the stages (Python, torch, Lance loaded): {baseline:.2f} GiB")
    print(
        f"memory_budget = {args.budget_gib:g} GiB; table {args.rows:,} x {args.dim} float16 "
        f"({args.rows * args.dim * 2 / 2**30:.2f} GiB on disk, {args.rows * args.dim * 4 / 2**30:.2f} GiB as float32)"
    )
    print("| stage | seconds | peak RSS (GiB) | settings |")
    print("|---|---:|---:|---|")
    for name, seconds, peak, note in stages:
        print(f"| {name} | {seconds:.1f} | {peak:.2f} | {note} |")
    streamed = next(s for s in stages if s[0] == "1 Lloyd pass, streamed")
    memory = next(s for s in stages if s[0] == "1 Lloyd pass, in memory")
    print(
        f"\nstreamed / in-memory Lloyd pass: time {streamed[1] / memory[1]:.2f}x, peak RSS "
        f"{streamed[2] / memory[2]:.2f}x"
    )


if __name__ == "__main__":
    main()
