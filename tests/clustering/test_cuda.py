"""The clustering paths on a CUDA GPU give what the CPU gives (skipped without a GPU; run on a lent device)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from curata import HierarchicalKMeans, KMeans, VectorTable
from curata.clustering.kmeans import assign

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def X() -> np.ndarray:
    rng = np.random.default_rng(0)
    means = rng.normal(size=(40, 24)).astype(np.float32) * 3
    return means[rng.integers(0, 40, 40_000)] + rng.normal(size=(40_000, 24)).astype(np.float32)


def test_kmeans_on_cuda_labels_like_cpu(X):
    init = X[np.random.default_rng(1).choice(len(X), 300, replace=False)]
    cpu = KMeans(300, n_iter=8, init=init, bounds=False).fit(X)
    gpu = KMeans(300, n_iter=8, init=init, bounds=False, device="cuda").fit(X)
    # other GEMM blockings round the scores differently; near-ties are decided by exact sums, so only rows whose
    # centroids drifted apart by rounding over the iterations may differ
    assert (cpu.labels_ == gpu.labels_).mean() >= 0.999
    np.testing.assert_allclose(gpu.inertia_, cpu.inertia_, rtol=1e-4)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_bounds_do_not_change_labels_on_cuda(X, metric):
    bounded = KMeans(300, n_iter=10, seed=0, bounds=True, metric=metric, device="cuda").fit(X)
    plain = KMeans(300, n_iter=10, seed=0, bounds=False, metric=metric, device="cuda").fit(X)
    np.testing.assert_array_equal(bounded.labels_, plain.labels_)
    np.testing.assert_array_equal(bounded.cluster_centers_, plain.cluster_centers_)


def test_same_result_on_every_cuda_run(X):
    """index_add_ on a GPU adds in thread order unless deterministic mode is on: the sums use it."""
    runs = [KMeans(100, n_iter=6, seed=0, device="cuda").fit(X) for _ in range(3)]
    for other in runs[1:]:
        np.testing.assert_array_equal(other.cluster_centers_, runs[0].cluster_centers_)
    assert not torch.are_deterministic_algorithms_enabled()  # the mode is restored


def test_assign_on_cuda_like_cpu(X):
    centroids = X[:1000] + 0.01
    labels_cpu, d2_cpu = assign(X, centroids)
    labels_gpu, d2_gpu = assign(torch.from_numpy(X).cuda(), centroids, device="cuda")
    np.testing.assert_array_equal(labels_gpu, labels_cpu)
    np.testing.assert_allclose(d2_gpu, d2_cpu, rtol=1e-5, atol=1e-6)


def test_tree_on_cuda_like_cpu(X):
    cpu = HierarchicalKMeans([200, 20], n_resampling_steps=2, n_iter=8, seed=0).fit(X)
    gpu = HierarchicalKMeans([200, 20], n_resampling_steps=2, n_iter=8, seed=0, device="cuda").fit(X)
    assert (cpu.labels_[:, 0] == gpu.labels_[:, 0]).mean() >= 0.99
    assert abs(cpu.score(X) / gpu.score(X) - 1) < 1e-3


def test_streamed_table_on_cuda_matches_in_memory(tmp_path, X):
    table = VectorTable.create(tmp_path / "vectors", dim=X.shape[1])
    table.append(np.arange(len(X)), np.zeros(len(X)), X)
    budget = 6 << 20  # 3.8 MB for per-row arrays, the rest for windows: the rows are read from disk every pass
    streamed = KMeans(64, n_iter=5, seed=0, memory_budget=budget, device="cuda").fit(table)
    memory = KMeans(64, n_iter=5, seed=0, device="cuda").fit(table)
    np.testing.assert_array_equal(streamed.labels_, memory.labels_)
    np.testing.assert_allclose(streamed.inertia_, memory.inertia_, rtol=1e-6)
