"""How much time do Hamerly's bounds save a k-means fit, on real features and on the kmeans.py mixture?

Fits KMeans with bounds=True (the default) and bounds=False (every row through the GEMM on every pass) from the
same k-means++ start, alternating them `--repeats` times, and prints seconds per fit, the ratio bounded / plain,
and whether both gave the same labels. Data: the EfficientNet-Lite0 features of Fashion-MNIST that
`make evidence` leaves in runs/evidence/train (skipped when absent), and the Gaussian mixture of bench/kmeans.py.

    python bench/kmeans_bounds.py [--table runs/evidence/train] [--ks 100 1000] [--iters 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from kmeans import mixture  # bench/kmeans.py, beside this script

from curata import KMeans, VectorTable
from curata.clustering.cpu_gemm import numpy_gemm_preferred, panel_gemm_preferred


def compare(name: str, X: np.ndarray, k: int, iters: int, repeats: int) -> None:
    times: dict[bool, list[float]] = {True: [], False: []}
    labels: dict[bool, np.ndarray] = {}
    for _ in range(repeats):
        for bounds in (True, False):
            start = time.perf_counter()
            fitted = KMeans(k, n_iter=iters, bounds=bounds, seed=0).fit(X)
            times[bounds].append(time.perf_counter() - start)
            labels[bounds] = fitted.labels_
    bounded, plain = float(np.median(times[True])), float(np.median(times[False]))
    same = float(np.mean(labels[True] == labels[False]))
    print(
        f"| {name} | {X.shape[0]} x {X.shape[1]} | {k} | {plain:.2f} | {bounded:.2f} | {bounded / plain:.2f} | "
        f"{100 * same:.2f} % |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", default="runs/evidence/train")
    parser.add_argument("--ks", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mixture-rows", type=int, default=50_000)
    args = parser.parse_args()
    print(
        f"# bench/kmeans_bounds.py, {date.today()}, {platform.machine()}, {torch.get_num_threads()} threads, "
        f"CPU GEMMs by {'AVX-512 panel kernel, else ' if panel_gemm_preferred() else ''}"
        f"{'numpy' if numpy_gemm_preferred() else 'torch'}; {args.iters} iterations, "
        f"k-means++ (seed 0), median of {args.repeats}"
    )
    print()
    print("| data | rows x dim | k | plain fit (s) | bounded fit (s) | bounded / plain | same labels |")
    print("|---|---|---:|---:|---:|---:|---:|")
    if VectorTable.is_table(args.table):
        features = np.ascontiguousarray(VectorTable.open(args.table).vectors(), dtype=np.float32)
        for k in args.ks:
            compare(f"EfficientNet-Lite0 features ({Path(args.table).name})", features, k, args.iters, args.repeats)
    else:
        print(f"(no table at {args.table}: run `make evidence` for the real-feature rows)")
    X = mixture(args.mixture_rows, 384, 1000, 0)
    for k in args.ks:
        compare("Gaussian mixture (bench/kmeans.py)", X, k, args.iters, args.repeats)


if __name__ == "__main__":
    main()
