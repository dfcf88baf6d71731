"""k-means|| seeding: k distinct centres drawn from the rows, reproducible, as good a start as k-means++."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

from curata import KMeans
from curata.clustering import kmeans as kmeans_module
from curata.clustering.parallel_seeding import kmeans_parallel, squared_distances
from curata.store.rows import MemoryShard


def _blobs(n: int = 4000, k: int = 40, seed: int = 0) -> np.ndarray:
    X, _ = make_blobs(n, n_features=16, centers=k, cluster_std=0.5, center_box=(-40, 40), random_state=seed)
    return X.astype(np.float32)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_centres_are_distinct_rows_and_reproducible(metric):
    X = torch.from_numpy(_blobs())
    shard = MemoryShard(X, metric, 0, len(X))
    runs = [kmeans_parallel(shard, 40, metric, torch.Generator().manual_seed(s), 512) for s in (3, 3, 4)]
    assert all(r is not None and r.shape == (40, 16) for r in runs)
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    rows = {tuple(r) for r in shard.x.numpy().round(5).tolist()}
    assert len({tuple(c) for c in runs[0].numpy().round(5).tolist()}) == 40  # distinct
    assert all(tuple(c) in rows for c in runs[0].numpy().round(5).tolist())  # rows of the (prepared) data


def test_it_finds_every_blob_like_kmeans_plus_plus():
    X = _blobs(6000, 60, seed=1)
    fits = {init: KMeans(60, n_iter=20, init=init, seed=0).fit(X) for init in ("k-means++", "k-means||", "random")}
    assert len(np.unique(fits["k-means||"].labels_)) == 60
    assert fits["k-means||"].inertia_ <= 1.02 * fits["k-means++"].inertia_
    assert fits["k-means||"].inertia_ < fits["random"].inertia_  # where random seeding merges blobs


def test_too_few_distinct_rows_fall_back_to_kmeans_plus_plus():
    X = np.repeat(_blobs(50, 5), 4, axis=0)[:200]  # at most 50 distinct rows
    centers = kmeans_parallel(MemoryShard(torch.from_numpy(X), "l2", 0, 200), 48, "l2", torch.Generator(), 64)
    assert centers is None or len(centers) == 48
    fit = KMeans(48, n_iter=5, init="k-means||", seed=0).fit(X)
    assert fit.cluster_centers_.shape == (48, 16) and np.isfinite(fit.inertia_)


def test_squared_distances():
    shard = MemoryShard(torch.tensor([[0.0, 3.0], [1.0, 1.0]]), "l2", 0, 2)
    assert squared_distances(shard, torch.tensor([[4.0, 0.0], [1.0, 1.0]]), "l2").tolist() == [[25.0, 5.0], [10.0, 0.0]]


def test_bad_init_names_the_choices():
    with pytest.raises(ValueError, match=r"k-means\|\|"):
        KMeans(3, init="kmeans||").fit(_blobs(100, 3))


def test_auto_seeds_by_kmeans_parallel_from_the_threshold(monkeypatch):
    assert KMeans(9_999)._seeding() == "k-means++" and KMeans(10_000)._seeding() == "k-means||"
    monkeypatch.setattr(kmeans_module, "_PARALLEL_SEEDING_FROM_K", 40)  # the same rule at a k a test can afford
    X = _blobs()
    for k, named in ((39, "k-means++"), (40, "k-means||")):
        auto = KMeans(k, n_iter=3, seed=0).fit(X)
        np.testing.assert_array_equal(
            auto.cluster_centers_, KMeans(k, n_iter=3, init=named, seed=0).fit(X).cluster_centers_
        )
    other = KMeans(40, n_iter=3, init="k-means++", seed=0).fit(X)
    assert not np.array_equal(other.cluster_centers_, KMeans(40, n_iter=3, seed=0).fit(X).cluster_centers_)


def test_cosine_distances_make_no_copy_of_the_rows():
    """`2.0 * x @ c.T` scaled all the rows before the product: a (rows, dim) copy on each of k-means++'s k calls, which
    made a cosine fit of 14,904 x 1280 rows at k = 500 spend 13 s of system time mapping fresh pages (l2: 0.2 s)."""
    from torch.profiler import ProfilerActivity, profile

    x = torch.from_numpy(np.abs(np.random.default_rng(0).normal(size=(4096, 256))).astype(np.float32) + 0.5)
    shard = MemoryShard(x, "cosine", 0, len(x))
    centers = shard.x[[5, 70, 900]]
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiled:
        distances = squared_distances(shard, centers, "cosine")
    largest = max((event.cpu_memory_usage for event in profiled.events()), default=0)
    assert largest < x.numel() * 4 // 8  # the (rows, 3) result, not another (rows, 256) block
    # the same values as before, bit for bit: scaling by 2 is exact, before or after the sums
    assert torch.equal(distances, (2.0 - 2.0 * shard.x @ centers.T).clamp_(min=0.0))
    assert float(distances[5, 0]) == pytest.approx(0.0, abs=1e-6) and bool((distances >= 0).all())
