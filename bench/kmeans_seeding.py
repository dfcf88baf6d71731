"""How long does seeding take at large k, and how good a start is it?

curata.KMeans with init="k-means++" (greedy, 2 + ln k candidates per pick), "k-means||" (Bahmani et al.: 5 rounds
of about k / 2 draws, then greedy k-means++ on the weighted candidates) and "random", against scikit-learn's
`kmeans_plusplus` (greedy, the same number of candidates) on as many seeding rows: seconds to seed (our fit with
one Lloyd pass, less that pass, timed alone from the seeds) and the inertia after 10 Lloyd passes from each start
(float64, the same function for all). Gaussian mixture of k components; the seeding rows are the default sample of
max(10000, 8 k) rows.

    python bench/kmeans_seeding.py [--rows 200000 --dim 64 --ks 1000 10000]
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date

import numpy as np
import torch
from kmeans import mixture  # bench/kmeans.py: the same mixture

from curata import KMeans


def inertia_of(X: np.ndarray, centers: np.ndarray) -> float:
    c = torch.from_numpy(np.asarray(centers, dtype=np.float64))
    total = 0.0
    for s in range(0, len(X), 8192):
        block = torch.from_numpy(X[s : s + 8192]).double()
        total += float(torch.cdist(block, c).min(dim=1).values.square().sum())
    return total


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--ks", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--iters", type=int, default=10)
    args = parser.parse_args()
    print(
        f"bench/kmeans_seeding.py, {date.today()}, {platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}; {args.rows} x {args.dim} float32 mixture, inertia after {args.iters} passes"
    )
    print("| k | seeding | seconds to seed | ratio to scikit-learn's | inertia after the passes | vs k-means++ |")
    print("|---:|---|---:|---:|---:|---:|")
    for k in args.ks:
        X = mixture(args.rows, args.dim, k, seed=k)
        sample = X[np.sort(np.random.default_rng(0).choice(len(X), max(10_000, 8 * k), replace=False))]
        one_pass = seconds(lambda: KMeans(k, n_iter=1, init=X[:k], seed=0).fit(X))  # noqa: B023
        rows = {}
        for init in ("k-means++", "k-means||", "random"):
            seeded = seconds(lambda: KMeans(k, n_iter=1, init=init, seed=0).fit(X)) - one_pass  # noqa: B023
            fit = KMeans(k, n_iter=args.iters, init=init, seed=0, tol=0.0).fit(X)
            rows[init] = (max(seeded, 0.0), inertia_of(X, fit.cluster_centers_))
        from sklearn.cluster import kmeans_plusplus

        start = time.perf_counter()
        centers, _ = kmeans_plusplus(sample, k, random_state=0)
        theirs = time.perf_counter() - start
        fit = KMeans(k, n_iter=args.iters, init=centers, seed=0, tol=0.0).fit(X)
        rows["scikit-learn kmeans_plusplus"] = (theirs, inertia_of(X, fit.cluster_centers_))
        base = rows["k-means++"][1]
        for name, (secs, inertia) in rows.items():
            print(f"| {k} | {name} | {secs:.1f} | {secs / theirs:.2f} | {inertia:.4e} | {inertia / base:.3f} |")


if __name__ == "__main__":
    main()
