"""Does hierarchical k-means with resampling curate a balanced subset of a long-tailed pool?

Long-tailed Gaussian mixture: C = 50 concepts in 8-d, concept c (1-based) has round(2000 c^-1.2) points, centres
drawn from N(0, 9 I), unit-variance points. Curate M = 500 rows, 3 seeds, with:
random sampling; flat k-means + curate; 2-level hierarchical k-means + curate; the same with resampling steps.
Prints KL(concept histogram || uniform) and the allocation exponent beta (least-squares slope of log(picks + 1)
against log(concept size); 1 = proportional to size, 0 = balanced).

Goal: that strict ordering of KL, and for the resampled tree KL <= 2 (C - 1) / (2 M) ~ 0.1 and beta < 0.2.

    python bench/curation_balance.py [--seeds 3] [--levels 300 50]
"""

from __future__ import annotations

import argparse
import time
from datetime import date

import numpy as np

from curata import HierarchicalKMeans, KMeans, curate


def long_tailed_pool(seed: int, concepts: int = 50, dim: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = np.round(2000 * np.arange(1, concepts + 1) ** -1.2).astype(np.int64)
    centres = rng.normal(0.0, 3.0, size=(concepts, dim))
    X = np.concatenate([centres[c] + rng.normal(size=(s, dim)) for c, s in enumerate(sizes)]).astype(np.float32)
    return X, np.repeat(np.arange(concepts), sizes)


def balance(picked_concepts: np.ndarray, concept_sizes: np.ndarray) -> tuple[float, float]:
    counts = np.bincount(picked_concepts, minlength=len(concept_sizes)).astype(np.float64)
    p = counts / counts.sum()
    nonzero = p > 0
    kl = float(np.sum(p[nonzero] * np.log(p[nonzero] * len(p))))
    beta = float(np.polyfit(np.log(concept_sizes), np.log(counts + 1), 1)[0])
    return kl, beta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--target", type=int, default=500)
    parser.add_argument("--levels", type=int, nargs=2, default=[300, 50])
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    k1, k2 = args.levels
    methods = {
        "random sampling": None,
        f"flat k-means (k={k2}) + curate": lambda s: KMeans(k2, seed=s),
        f"hierarchical {k1}/{k2}, no resampling + curate": lambda s: HierarchicalKMeans(
            [k1, k2], n_resampling_steps=0, seed=s
        ),
        f"hierarchical {k1}/{k2}, {args.steps} resampling steps + curate": lambda s: HierarchicalKMeans(
            [k1, k2], n_resampling_steps=args.steps, seed=s
        ),
    }
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in methods}
    for seed in range(args.seeds):
        X, concept = long_tailed_pool(seed)
        sizes = np.bincount(concept)
        for name, make in methods.items():
            start = time.perf_counter()
            if make is None:
                picked = np.random.default_rng(seed).choice(len(X), args.target, replace=False)
            else:
                picked = curate(make(seed).fit(X), args.target, seed=seed)
            assert len(picked) == args.target
            results[name].append((*balance(concept[picked], sizes), time.perf_counter() - start))
    bound = 2 * (50 - 1) / (2 * args.target)
    print(
        f"# bench/curation_balance.py, {date.today()}: 50 long-tailed concepts in 8-d "
        f"({len(X)} points), curate {args.target}, {args.seeds} seeds (mean +- std)"
    )
    print()
    print("| method | KL to uniform | beta | seconds |")
    print("|---|---:|---:|---:|")
    for name, rows in results.items():
        values = np.array(rows)
        mean, std = values.mean(axis=0), values.std(axis=0)
        print(f"| {name} | {mean[0]:.3f} +- {std[0]:.3f} | {mean[1]:.3f} +- {std[1]:.3f} | {mean[2]:.2f} |")
    kls = [np.mean([r[0] for r in rows]) for rows in results.values()]
    last = np.array(results[list(results)[-1]])
    print()
    print(
        f"strict KL ordering: {all(a > b for a, b in zip(kls, kls[1:]))}; resampled tree KL <= {bound:.3f}: "
        f"{last[:, 0].mean() <= bound}; beta < 0.2: {last[:, 1].mean() < 0.2}"
    )


if __name__ == "__main__":
    main()
