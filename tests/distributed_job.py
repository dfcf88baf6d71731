"""Run under torchrun by tests/_internal/test_distributed.py: fit on every rank, rank 0 writes the results."""

from __future__ import annotations

import sys

import numpy as np
import torch.distributed as dist
from sklearn.datasets import make_blobs

from curata import ClusterBatchSampler, HierarchicalKMeans, KMeans, curate


def fit_all() -> dict[str, np.ndarray]:
    X, _ = make_blobs(3001, n_features=8, centers=15, random_state=0)
    X = X.astype(np.float32)
    flat = KMeans(15, n_iter=10, seed=0).fit(X)
    sampled = KMeans(15, n_iter=10, seed=0, max_points_per_centroid=50, init="random").fit(X)
    parallel = KMeans(15, n_iter=10, seed=0, init="k-means||").fit(X)
    tree = HierarchicalKMeans([40, 8], n_resampling_steps=2, n_iter=10, seed=0).fit(X)
    return {
        "flat_centers": flat.cluster_centers_,
        "flat_labels": flat.labels_,
        "flat_inertia": np.array([flat.inertia_]),
        "sampled_labels": sampled.labels_,
        "parallel_labels": parallel.labels_,
        "parallel_centers": parallel.cluster_centers_,
        "tree_labels": tree.labels_,
        "tree_centroids_1": tree.centroids_[0],
        "curated": curate(tree, 300, seed=0),
    }


def sampler_batches() -> np.ndarray:
    """This rank's batches of one epoch (rank and world size from the process group)."""
    clusters = np.random.default_rng(0).integers(0, 37, 1003)
    sampler = ClusterBatchSampler(clusters, 16, seed=0, drop_last=True)
    sampler.set_epoch(2)
    return np.array(list(sampler))


if __name__ == "__main__":
    dist.init_process_group("gloo")
    results = fit_all()
    if dist.get_rank() == 0:
        np.savez(sys.argv[1], **results)
    np.save(f"{sys.argv[1]}.batches.{dist.get_rank()}.npy", sampler_batches())
    dist.barrier()
    dist.destroy_process_group()
