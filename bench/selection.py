"""Which selection method covers the pool, matches its distribution, and how fast, on real features and blobs?

Pools: the first 3,000 Fashion-MNIST training images described by EfficientNet-Lite0 (64x64, pooled 1280-d,
standardised), and a Gaussian mixture of 20,000 x 64 (50 clusters of unequal spread and size). Every method of
``select`` picks n rows; per method: coverage (max and mean distance from a pool row to its nearest picked row:
lower is better), the squared MMD between the picks and the pool (rbf kernel, median bandwidth: lower is better),
the share of classes' images picked against their share of the pool (real pool; KL to the pool's class mix), and
the time.

Against Goldener: its greedy k-center, closest-point (densest) and farthest-point selections, re-implemented from
their published descriptions (a full pairwise distance matrix; the closest/farthest ones recompute it over the
unpicked rows at every step; k-center starts from the row with the largest norm of its distance row), timed on
the real pool with n = 50, printing the ratio of our time to theirs and how many rows both pick (they compute in
float64 from a full matrix, we in float32 by GEMM: two rows at equal distance may swap, and a greedy sequence
then goes its own way).

Against Coreax: Goldener's kernel-points selection calls Coreax's ``KernelHerding`` (JAX) with a squared-
exponential kernel. Both run on the same pools with the same kernel (exp(-|a-b|^2 / h), h the median squared
distance of a seeded 1,000-row sample; Coreax's length scale sqrt(h / 2)); printed: time (Coreax's first call
includes JIT compilation, its second does not), the exact squared MMD of each pick set, and rows in common.
Skipped with a note when Coreax is not installed (``pip install coreax``, in the bench extras).

    python bench/selection.py [--images 3000] [--n 100] [--only-coreax]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from datetime import date

import numpy as np
import torch
from dedup import describe_images
from sklearn.datasets import make_blobs

from curata import select
from curata.cli.demo import FashionMNIST
from curata.subsets.kernel_points import squared_mmd
from curata.subsets.select import METHODS


def coverage(X: np.ndarray, picked: np.ndarray) -> tuple[float, float]:
    x = torch.from_numpy(X)
    d = torch.cdist(x, x[torch.from_numpy(picked)]).min(dim=1).values
    return float(d.max()), float(d.mean())


def class_kl(labels: np.ndarray, picked: np.ndarray) -> float:
    pool = np.bincount(labels, minlength=10) / len(labels)
    chosen = np.bincount(labels[picked], minlength=10) / len(picked)
    mask = chosen > 0
    return float(np.sum(chosen[mask] * np.log(chosen[mask] / pool[mask])))


def goldener_kcenter(X: np.ndarray, n: int) -> np.ndarray:
    d = torch.cdist(torch.from_numpy(X), torch.from_numpy(X))
    picks = [int(d.norm(dim=1).argmax())]
    nearest = d[picks[0]].clone()
    for _ in range(n - 1):
        picks.append(int(nearest.argmax()))
        nearest = torch.minimum(nearest, d[picks[-1]])
    return np.array(picks)


def goldener_nearest(X: np.ndarray, n: int, densest: bool) -> np.ndarray:
    left = list(range(len(X)))
    picks = []
    x = torch.from_numpy(X)
    for _ in range(n):
        sub = x[left]
        d = torch.cdist(sub, sub)
        d += torch.eye(len(left), dtype=d.dtype) * d.max()
        nearest = d.min(dim=1).values
        pick = left[int(nearest.argmin() if densest else nearest.argmax())]
        picks.append(pick)
        left.remove(pick)
    return np.array(picks)


def timed(function, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201
    start = time.perf_counter()
    out = function(*args, **kwargs)
    return out, time.perf_counter() - start


def table(name: str, X: np.ndarray, n: int, labels: np.ndarray | None) -> None:
    print(f"\n## {name}: {len(X)} x {X.shape[1]}, n = {n}\n")
    head = "| method | max distance to nearest pick | mean distance | squared MMD (rbf) |"
    head += " class KL to pool |" if labels is not None else ""
    print(head + " seconds |")
    print("|---|---:|---:|---:|" + ("---:|" if labels is not None else "") + "---:|")
    for method in METHODS:
        picked, seconds = timed(select, X, n, method=method, seed=0)
        worst, mean = coverage(X, picked)
        kl = f" {class_kl(labels, picked):.3f} |" if labels is not None else ""
        print(f"| {method} | {worst:.3f} | {mean:.3f} | {squared_mmd(X, picked):.5f} |{kl} {seconds:.2f} |", flush=True)


def against_goldener(X: np.ndarray, n: int) -> None:
    print(f"\n## Against Goldener's algorithms as published ({len(X)} x {X.shape[1]}, n = {n})\n")
    print("| method | Goldener-style seconds | curata seconds | time ratio curata / Goldener | rows in common |")
    print("|---|---:|---:|---:|---|")
    x64 = X.astype(np.float64)
    reference, ref_s = timed(goldener_kcenter, x64, n)
    ours, our_s = timed(select, X, n - 1, exclude=reference[:1])
    same = len(set(ours.tolist()) & set(reference[1:].tolist())) + 1
    print(f"| kcenter (same first row) | {ref_s:.2f} | {our_s:.2f} | {our_s / ref_s:.3f} | {same} of {n} |", flush=True)
    for method in ("densest", "farthest"):
        reference, ref_s = timed(goldener_nearest, x64, n, method == "densest")
        ours, our_s = timed(select, X, n, method=method)
        same = len(set(ours.tolist()) & set(reference.tolist()))
        print(f"| {method} | {ref_s:.2f} | {our_s:.2f} | {our_s / ref_s:.3f} | {same} of {n} |", flush=True)


def median_bandwidth(X: np.ndarray, seed: int = 0) -> float:
    rows = np.sort(np.random.default_rng(seed).choice(len(X), min(len(X), 1000), replace=False))
    sample = torch.from_numpy(X[rows]).double()
    d2 = torch.cdist(sample, sample).square_()
    return float(d2[torch.triu_indices(len(rows), len(rows), offset=1).unbind()].median())


def against_coreax(name: str, X: np.ndarray, n: int) -> None:
    print(f"\n## Kernel herding against Coreax ({name}: {len(X)} x {X.shape[1]}, n = {n})\n")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # else JAX logs its search for a TPU
    try:
        import jax
        import jax.numpy as jnp
        from coreax import Data, SquaredExponentialKernel
        from coreax.solvers import KernelHerding
    except ImportError:
        print("Coreax is not installed (pip install coreax): skipped")
        return
    h = median_bandwidth(X)
    solver = KernelHerding(n, kernel=SquaredExponentialKernel(length_scale=math.sqrt(h / 2)))
    data = Data(jnp.asarray(X))

    def coreax_herding() -> np.ndarray:
        coreset, _ = solver.reduce(data)
        return np.asarray(jax.block_until_ready(coreset.unweighted_indices))

    rows = [("Coreax KernelHerding, first call", *timed(coreax_herding))]
    rows.append(("Coreax KernelHerding, second call", *timed(coreax_herding)))
    exact = timed(select, X, n, method="kernel_points", bandwidth=h, reference_rows=len(X))
    rows.append(("curata kernel_points, exact pool mean", *exact))
    rows.append(
        ("curata kernel_points, default (8,192-row mean)", *timed(select, X, n, method="kernel_points", bandwidth=h))
    )
    print(f"h = {h:.4g}; MMD with the same kernel; 'in common' counts rows shared with Coreax's picks\n")
    print("| implementation | seconds | squared MMD to the pool | rows in common |")
    print("|---|---:|---:|---:|")
    reference = set(rows[0][1].tolist())
    coreax_seconds = rows[1][2]
    for label, picked, seconds in rows:
        mmd = squared_mmd(X, picked, bandwidth=h)
        print(f"| {label} | {seconds:.2f} | {mmd:.6f} | {len(reference & set(picked.tolist()))} of {n} |", flush=True)
    print(f"\ntime ratio curata (exact) / Coreax (second call): {exact[1] / coreax_seconds:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--only-coreax", action="store_true", help="run the Coreax comparison only")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(
        f"{date.today()}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    data = FashionMNIST("train")
    images = data.images[: args.images, 0].numpy()
    labels = data.labels[: args.images].numpy()
    features = describe_images(images)
    features = ((features - features.mean(0)) / (features.std(0) + 1e-6)).astype(np.float32)
    blobs, _ = make_blobs(20_000, n_features=64, centers=50, cluster_std=np.linspace(0.5, 4, 50), random_state=0)
    if not args.only_coreax:
        table(f"Fashion-MNIST, EfficientNet-Lite0 features ({args.images} images)", features, args.n, labels)
        table("Gaussian mixture", blobs.astype(np.float32), 5 * args.n, None)
        against_goldener(features, 50)
    against_coreax("Fashion-MNIST features", features, args.n)
    against_coreax("Gaussian mixture", blobs.astype(np.float32), 5 * args.n)


if __name__ == "__main__":
    main()
