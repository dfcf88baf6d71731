"""How long does a 3-level hierarchical k-means with resampling take on 1M x 384 rows, and how much memory?

1M x 384 float32 rows (a Gaussian mixture of 20,000 components) in a VectorTable; HierarchicalKMeans
[10000, 1000, 100] with resampling steps; each k-means fits on a seeded sample (max_points_per_centroid) and then
assigns all rows; then curate 100,000 rows. Prints wall time per stage and the peak RSS of the process.

    python bench/hkmeans_scale.py [--rows 1000000 --dim 384 --steps 2 --n-iter 10 --points-per-centroid 16]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from curata import HierarchicalKMeans, VectorTable, curate


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--levels", type=int, nargs="+", default=[10_000, 1_000, 100])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--n-iter", type=int, default=10)
    parser.add_argument("--points-per-centroid", type=int, default=16)
    parser.add_argument("--init", default="random", choices=["random", "k-means++"])
    parser.add_argument("--curate", type=int, default=100_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="curata-hkmeans-"))
    stages: list[tuple[str, float, float]] = []
    try:
        start = time.perf_counter()
        rng = np.random.default_rng(0)
        table = VectorTable.create(workdir / "vectors", dim=args.dim)
        means = rng.normal(size=(20_000, args.dim)).astype(np.float32)
        for begin in range(0, args.rows, 100_000):
            count = min(100_000, args.rows - begin)
            block = means[rng.integers(0, len(means), count)] + rng.normal(scale=0.3, size=(count, args.dim))
            table.append(np.arange(begin, begin + count), np.zeros(count), block.astype(np.float32))
        del means
        stages.append(("write the table", time.perf_counter() - start, peak_rss_gib()))
        start = time.perf_counter()
        tree = HierarchicalKMeans(
            args.levels,
            n_resampling_steps=args.steps,
            n_iter=args.n_iter,
            init=args.init,
            max_points_per_centroid=args.points_per_centroid,
            seed=0,
        )
        tree.fit(table)
        stages.append(
            (
                f"HierarchicalKMeans {args.levels}, {args.steps} resampling steps",
                time.perf_counter() - start,
                peak_rss_gib(),
            )
        )
        start = time.perf_counter()
        picked = curate(tree, args.curate, seed=0)
        stages.append((f"curate {args.curate}", time.perf_counter() - start, peak_rss_gib()))
        assert len(picked) == args.curate
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"# bench/hkmeans_scale.py, {date.today()}: {args.rows} x {args.dim} float32 in a VectorTable, "
        f"{torch.get_num_threads()} threads; k-means: n_iter={args.n_iter}, init={args.init}, "
        f"max_points_per_centroid={args.points_per_centroid}"
    )
    print()
    print("| stage | seconds | peak RSS so far (GiB) |")
    print("|---|---:|---:|")
    for name, seconds, rss in stages:
        print(f"| {name} | {seconds:.1f} | {rss:.2f} |")


if __name__ == "__main__":
    main()
