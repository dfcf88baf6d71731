"""Does our hierarchical k-means reproduce Fig. 3 of Vo et al. (2024)?

The paper's 2-D toy: 7,000 points of N((-1,-1), 0.25 I), 1,000 of N((1,-1), 0.25 I), 500 of N((0,1), 0.25 I) and 500
uniform on [-3, 3]^2. Each method yields 300 top-level centroids; their Gaussian KDE (bandwidth 0.5) is evaluated on
a grid of step 0.02 over [-3, 3)^2, normalised over the grid, and compared with the uniform density 1/36 by
KL(kde || uniform). The lower, the more uniformly the centroids cover the square. The paper's values (its notebook):
k-means 0.340, two levels [1500, 300] 0.132, three levels [3000, 1000, 300] 0.081, three levels with resampling
(r = [2, 2, 2], 10 steps) 0.0418; the floor (300 points drawn uniformly) is about 0.040.

Every method is run for 5 seeds (the data too is drawn per seed); the table prints the mean, its standard error
(std / sqrt(seeds)), the spread and the paper's value, and a PNG shows the centroids of seed 0 beside the KL bars.
The notebook behind the paper's figure keeps, for the plain k-means and the trees without resampling, the best of
10 k-means runs per level (lowest inertia), and one run per k-means in the resampled tree; rows marked "10 inits"
use that setting, the others one run. Two rows are not the paper's: the resampled tree with 3x the steps, and
scikit-learn's k-means (10 inits, to convergence) on the same data, a check of our k-means against another
implementation.

    python bench/fig3.py [--seeds 5 --steps 10 --out runs/fig3]
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np

from curata import HierarchicalKMeans, KMeans

PAPER = {"k-means": 0.340, "2 levels": 0.132, "3 levels": 0.081, "3 levels + resampling": 0.0418}
TEN_INITS = ", 10 inits"  # the notebook's setting for the runs without resampling
LONGER = "3 levels + resampling, 3x the steps"  # not in the paper: where more steps take the tree
SKLEARN = "k-means, scikit-learn (10 inits)"  # not in the paper: another k-means on the same data, as a check
STEP = 0.02
BANDWIDTH = 0.5


def toy_data(seed: int) -> np.ndarray:
    """The paper's mixture: three Gaussians of variance 0.25 (7000, 1000, 500 points) and 500 uniform points."""
    rng = np.random.default_rng(seed)
    parts = [
        rng.normal((-1.0, -1.0), 0.5, size=(7000, 2)),
        rng.normal((1.0, -1.0), 0.5, size=(1000, 2)),
        rng.normal((0.0, 1.0), 0.5, size=(500, 2)),
        rng.uniform(-3.0, 3.0, size=(500, 2)),
    ]
    return np.concatenate(parts).astype(np.float32)


def kl_to_uniform(points: np.ndarray) -> float:
    """KL(KDE of ``points`` || uniform on [-3, 3)^2), the KDE normalised over the grid of step 0.02."""
    axis = np.arange(-3.0, 3.0, STEP)
    gx, gy = np.meshgrid(axis, axis, indexing="ij")
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    density = np.zeros(len(grid))
    for start in range(0, len(points), 64):
        block = points[start : start + 64].astype(np.float64)
        d2 = ((grid[:, None, :] - block[None, :, :]) ** 2).sum(axis=2)
        density += np.exp(-d2 / (2 * BANDWIDTH**2)).sum(axis=1)
    p = density / density.sum()  # probability of each grid cell
    q = 1.0 / len(grid)  # the uniform density 1/36 times the cell's area
    nonzero = p > 0
    return float(np.sum(p[nonzero] * np.log(p[nonzero] / q)))


def paper_value(method: str) -> float | None:
    """The paper's value for a row: its own, or that of the same method with another number of inits."""
    return PAPER.get(method.removesuffix(TEN_INITS))


def top_centroids(method: str, X: np.ndarray, seed: int, steps: int) -> np.ndarray:
    n_init = 10 if method.endswith(TEN_INITS) else 1
    method = method.removesuffix(TEN_INITS)
    if method == "k-means":
        return KMeans(300, n_init=n_init, seed=seed).fit(X).cluster_centers_
    if method == SKLEARN:
        from sklearn.cluster import KMeans as SklearnKMeans

        return SklearnKMeans(300, n_init=10, random_state=seed).fit(X).cluster_centers_
    if method == "2 levels":
        return HierarchicalKMeans([1500, 300], n_resampling_steps=0, n_init=n_init, seed=seed).fit(X).centroids_[-1]
    if method == "3 levels":
        tree = HierarchicalKMeans([3000, 1000, 300], n_resampling_steps=0, n_init=n_init, seed=seed)
        return tree.fit(X).centroids_[-1]
    if method == LONGER:
        steps *= 3
    tree = HierarchicalKMeans([3000, 1000, 300], n_resampling_steps=steps, sample_size=[2, 2, 2], seed=seed)
    return tree.fit(X).centroids_[-1]


def plot(results: dict[str, list[float]], centroids: dict[str, np.ndarray], X: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(3.2 * len(centroids), 8.5))
    grid = fig.add_gridspec(2, len(centroids), height_ratios=[1.0, 1.0])
    for i, (method, points) in enumerate(centroids.items()):  # the paper's four panels
        ax = fig.add_subplot(grid[0, i])
        ax.scatter(X[:, 0], X[:, 1], s=0.3, c="#bbbbbb")
        ax.scatter(points[:, 0], points[:, 1], s=5, c="#d62728")
        title = method.replace(" + resampling", "\n+ resampling")
        ax.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal", xticks=[], yticks=[])
        ax.set_title(f"{title}\nKL {results[method][0]:.3f} (seed 0)", fontsize=9)
    bars = fig.add_subplot(grid[1, :])
    names = list(results)
    at = np.arange(len(names))
    ours = [np.mean(results[m]) for m in names]
    spread = [np.std(results[m]) for m in names]
    bars.barh(at - 0.2, ours, xerr=spread, height=0.4, label="curata, mean +- std over seeds")
    paper = [paper_value(m) for m in names]
    bars.barh(at + 0.2, [np.nan if p is None else p for p in paper], height=0.4, label="Vo et al. (their notebook)")
    bars.set_yticks(at, names, fontsize=9)
    bars.invert_yaxis()
    bars.set_xlabel("KL(KDE of the 300 top centroids || uniform on [-3, 3]^2)")
    bars.legend(loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", default="runs/fig3")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = ["k-means", "k-means" + TEN_INITS, "2 levels", "2 levels" + TEN_INITS, "3 levels", "3 levels" + TEN_INITS]
    results: dict[str, list[float]] = {m: [] for m in [*rows, "3 levels + resampling", LONGER, SKLEARN]}
    floor = [kl_to_uniform(np.random.default_rng(s).uniform(-3, 3, size=(300, 2))) for s in range(args.seeds)]
    centroids: dict[str, np.ndarray] = {}
    start = time.perf_counter()
    for seed in range(args.seeds):
        X = toy_data(seed)
        for method in results:
            points = top_centroids(method, X, seed, args.steps)
            results[method].append(kl_to_uniform(points))
            if seed == 0 and method in PAPER:
                centroids[method] = points
    elapsed = time.perf_counter() - start
    print(
        f"bench/fig3.py, {date.today()}, {platform.machine()}, {args.seeds} seeds, {args.steps} resampling steps, "
        f"{elapsed:.0f} s"
    )
    print("| method | KL mean | std. error | std | min | max | Vo et al. | difference |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for method, values in results.items():
        v = np.asarray(values)
        paper = paper_value(method)
        print(
            f"| {method} | {v.mean():.4f} | {v.std() / np.sqrt(len(v)):.4f} | {v.std():.4f} | {v.min():.4f} | "
            f"{v.max():.4f} | " + ("| |" if paper is None else f"{paper:.4f} | {v.mean() - paper:+.4f} |")
        )
    f = np.asarray(floor)
    floor_error = f.std() / np.sqrt(len(f))
    print(f"| 300 uniform points (floor) | {f.mean():.4f} | {floor_error:.4f} | {f.std():.4f} | | | 0.040 | |")
    X = toy_data(0)
    plot(results, centroids, X, out / "fig3.png")
    print(f"plot: {out / 'fig3.png'}")


if __name__ == "__main__":
    main()
