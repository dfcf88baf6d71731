import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_blobs

from curata import KMeans
from curata.clustering.nearest import nearest_centroids
from curata.clustering.row_bounds import RowBounds
from curata.store.rows import MemoryShard


def _shard(x: np.ndarray, metric: str = "l2") -> MemoryShard:
    return MemoryShard(torch.from_numpy(x.astype(np.float32)), metric, 0, len(x))


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_bounded_passes_label_like_full_passes_as_centroids_move(metric):
    rng = np.random.default_rng(0)
    x, _ = make_blobs(4000, n_features=16, centers=30, random_state=0)
    shard = _shard(x, metric)
    centers = shard.x[torch.from_numpy(rng.choice(len(x), 50, replace=False))].clone()
    bounds = RowBounds(len(x), shard.device)
    scored = []
    for step in range(12):
        # small moves most of the time, a large jump of a few centroids now and then
        scale = (2.0 if step % 4 == 3 else 0.05) * (1.0 if metric == "l2" else 0.1)  # blobs span ~10, the sphere 1
        moved = torch.from_numpy(rng.standard_normal((50, 16)).astype(np.float32)) * scale
        mask = torch.from_numpy(rng.random(50) < (0.2 if step % 4 == 3 else 1.0)).unsqueeze(1)
        centers = centers + moved * mask
        if metric == "cosine":
            centers = torch.nn.functional.normalize(centers, dim=1)
        want_labels, want_d2, want_sums = nearest_centroids(shard, centers, metric, 512, True)
        labels, d2, sums = nearest_centroids(shard, centers, metric, 512, True, bounds=bounds)
        assert torch.equal(labels, want_labels)
        assert torch.allclose(d2, want_d2, rtol=1e-4, atol=2e-3)  # scores ||c||^2 - 2x.c lose ~1e-6 |x|^2
        assert torch.allclose(sums, want_sums, rtol=1e-5, atol=1e-3)
        scored.append(bounds.scored)
    assert scored[0] == len(x)
    assert min(scored) < len(x) // 4  # small moves leave most rows unscored


def test_bounded_kmeans_equals_plain_lloyd():
    x = load_digits().data.astype(np.float32)
    plain = KMeans(40, n_iter=30, bounds=False, seed=3).fit(x)
    bounded = KMeans(40, n_iter=30, bounds=True, seed=3).fit(x)
    np.testing.assert_array_equal(bounded.labels_, plain.labels_)
    np.testing.assert_allclose(bounded.cluster_centers_, plain.cluster_centers_, rtol=1e-5, atol=1e-4)
    assert bounded.inertia_ == pytest.approx(plain.inertia_, rel=1e-6)
    assert bounded.n_iter_ == plain.n_iter_


def test_bounded_kmeans_with_split_empty_clusters_and_cosine():
    x, _ = make_blobs(3000, n_features=8, centers=5, random_state=1)
    init = np.repeat(x[:1], 12, axis=0) + np.arange(12)[:, None] * 1e-3  # crowded start: clusters empty out
    for metric in ("l2", "cosine"):
        kwargs = dict(n_iter=25, init=init, empty_clusters="split", metric=metric)
        plain = KMeans(12, bounds=False, **kwargs).fit(x)
        bounded = KMeans(12, bounds=True, **kwargs).fit(x)
        np.testing.assert_array_equal(bounded.labels_, plain.labels_)
        np.testing.assert_allclose(bounded.cluster_centers_, plain.cluster_centers_, rtol=1e-5, atol=1e-4)


def test_single_centroid_never_rescores():
    shard = _shard(np.random.default_rng(0).standard_normal((300, 4)))
    bounds = RowBounds(300, shard.device)
    center = torch.zeros(1, 4)
    nearest_centroids(shard, center, "l2", 128, False, bounds=bounds)
    labels, d2, _ = nearest_centroids(shard, center + 5.0, "l2", 128, False, bounds=bounds)
    assert bounds.scored == 0
    assert labels.eq(0).all()
    assert torch.allclose(d2, ((shard.x - 5.0) ** 2).sum(1), rtol=1e-5)


def test_bounds_reject_other_rows_or_centroids():
    shard = _shard(np.random.default_rng(0).standard_normal((10, 3)))
    with pytest.raises(ValueError, match="the bounds are for 9 rows, the shard has 10"):
        nearest_centroids(shard, torch.zeros(2, 3), "l2", 8, False, bounds=RowBounds(9, shard.device))
    bounds = RowBounds(10, shard.device)
    nearest_centroids(shard, torch.zeros(2, 3), "l2", 8, False, bounds=bounds)
    with pytest.raises(ValueError, match=r"the bounds are for \(2, 3\) centroids, got \(3, 3\)"):
        nearest_centroids(shard, torch.zeros(3, 3), "l2", 8, False, bounds=bounds)


def test_kmeans_rejects_a_non_boolean_bounds():
    with pytest.raises(ValueError, match="bounds must be True, False or .auto., got .yes."):
        KMeans(2, bounds="yes").fit(np.zeros((4, 2)))


def test_auto_bounds_follow_k():
    assert KMeans(300)._uses_bounds() and not KMeans(100)._uses_bounds()
    assert KMeans(100, bounds=True)._uses_bounds() and not KMeans(300, bounds=False)._uses_bounds()
