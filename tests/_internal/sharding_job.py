"""Run under torchrun by tests/_internal/test_distributed.py (and in-process for one process): the fits of issue 30
on crowded CNN-like features, so that 1, 2 and 3 processes can be compared bit for bit."""

from __future__ import annotations

import sys

import numpy as np
import torch
import torch.distributed as dist

from curata import HierarchicalKMeans, KMeans, curate


def crowded_features(n: int = 6000, seed: int = 0) -> np.ndarray:
    """Pooled ReLU features of a tiny seeded conv net on seeded random images: uncentred, non-negative and
    crowded (every row near every other), as pooled CNN features are, which makes near-tie labels common."""
    generator = torch.Generator().manual_seed(seed)
    conv1 = torch.randn(16, 3, 3, 3, generator=generator) / 3
    conv2 = torch.randn(64, 16, 3, 3, generator=generator) / 12
    images = torch.rand(n, 3, 16, 16, generator=generator)
    with torch.no_grad():
        hidden = torch.relu(torch.nn.functional.conv2d(images, conv1))
        pooled = torch.relu(torch.nn.functional.conv2d(hidden, conv2, stride=2)).mean(dim=(2, 3))
    return pooled.numpy().astype(np.float32)


def fit_all(X: np.ndarray) -> dict[str, np.ndarray]:
    flat = KMeans(30, seed=0).fit(X)
    tree = HierarchicalKMeans([80, 8], n_resampling_steps=2, seed=0).fit(X)
    return {
        "flat_labels": flat.labels_,
        "flat_centers": flat.cluster_centers_,
        "flat_inertia": np.array([flat.inertia_]),
        "tree_labels": tree.labels_,
        "tree_centroids_1": tree.centroids_[0],
        "tree_centroids_2": tree.centroids_[1],
        "curated": curate(tree, 800, seed=0),
    }


if __name__ == "__main__":
    dist.init_process_group("gloo")
    results = fit_all(np.load(sys.argv[1]))
    if dist.get_rank() == 0:
        np.savez(sys.argv[2], **results)
    dist.barrier()
    dist.destroy_process_group()
