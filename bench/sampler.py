"""How fast is ClusterBatchSampler next to torch's random batch sampler?

N = 10M samples in K = 10k clusters (sizes long-tailed), B = 256: constructor, then one full epoch (every batch
produced as a list of ints, as a DataLoader consumes them), against BatchSampler(RandomSampler(...)) in the same
run. Goal: <= 2 s per epoch and <= 3x the random sampler.

    python bench/sampler.py [--samples 10000000 --clusters 10000 --batch-size 256 --repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date

import numpy as np
import torch
from torch.utils.data import BatchSampler, RandomSampler

from curata import ClusterBatchSampler


def epoch_seconds(sampler, epoch: int) -> tuple[float, int]:
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    start = time.perf_counter()
    count = sum(1 for _ in sampler)
    return time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument("--clusters", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    weights = rng.pareto(1.5, args.clusters) + 0.05
    clusters = rng.choice(args.clusters, size=args.samples, p=weights / weights.sum())
    results: dict[str, list[float]] = {}
    start = time.perf_counter()
    ours = ClusterBatchSampler(clusters, args.batch_size, seed=0)
    build = time.perf_counter() - start
    generator = torch.Generator().manual_seed(0)
    theirs = BatchSampler(RandomSampler(range(args.samples), generator=generator), args.batch_size, drop_last=False)
    for strategy in ("exclude", "stop"):
        results[f"ClusterBatchSampler ({strategy})"] = []
    results["BatchSampler(RandomSampler)"] = []
    stop = ClusterBatchSampler(clusters, args.batch_size, seed=0, strategy="stop")
    for epoch in range(args.repeats):  # interleaved, so that drift in machine speed hits every contender alike
        seconds, count = epoch_seconds(ours, epoch)
        assert count == len(ours)
        results["ClusterBatchSampler (exclude)"].append(seconds)
        results["ClusterBatchSampler (stop)"].append(epoch_seconds(stop, epoch)[0])
        results["BatchSampler(RandomSampler)"].append(epoch_seconds(theirs, epoch)[0])
    random_time = statistics.median(results["BatchSampler(RandomSampler)"])
    print(
        f"# bench/sampler.py, {date.today()}: N = {args.samples}, K = {len(np.unique(clusters))} clusters, "
        f"B = {args.batch_size}, median of {args.repeats} epochs; ClusterBatchSampler constructor {build:.2f} s"
    )
    print()
    print("| sampler | seconds per epoch | batches | ratio to random |")
    print("|---|---:|---:|---:|")
    lengths = {
        "ClusterBatchSampler (exclude)": len(ours),
        "ClusterBatchSampler (stop)": len(stop),
        "BatchSampler(RandomSampler)": len(theirs),
    }
    for name, times in results.items():
        t = statistics.median(times)
        print(f"| {name} | {t:.2f} | {lengths[name]} | {t / random_time:.2f} |")


if __name__ == "__main__":
    main()
