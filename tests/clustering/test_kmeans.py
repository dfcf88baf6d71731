from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans as SklearnKMeans
from sklearn.datasets import make_blobs

from curata import KMeans, VectorTable
from curata.clustering.estimator import NotFittedError
from curata.clustering.kmeans import assign


@pytest.fixture
def blobs() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_blobs(4000, n_features=8, centers=12, cluster_std=1.5, random_state=0)
    return X.astype(np.float32), y


def test_inertia_within_one_percent_of_sklearn(blobs):
    X, _ = blobs
    ours = KMeans(12, n_init=3, tol=1e-7, seed=0).fit(X)
    theirs = SklearnKMeans(12, n_init=3, random_state=0).fit(X)
    assert ours.inertia_ <= 1.01 * theirs.inertia_
    assert ours.cluster_centers_.shape == (12, 8) and ours.labels_.shape == (4000,)
    assert ours.labels_.dtype == np.int64


def test_one_lloyd_step_matches_numpy(blobs):
    X, _ = blobs
    init = X[:12].copy()
    km = KMeans(12, n_iter=1, init=init).fit(X)
    labels = ((X[:, None] - init[None]) ** 2).sum(-1).argmin(1)
    expected = np.stack([X[labels == j].astype(np.float64).mean(0) for j in range(12)])
    np.testing.assert_allclose(km.cluster_centers_, expected, rtol=1e-5, atol=1e-5)
    final = ((X[:, None] - expected[None]) ** 2).sum(-1)
    assert np.array_equal(km.labels_, final.argmin(1))
    np.testing.assert_allclose(km.inertia_, final.min(1).sum(), rtol=1e-5)
    assert km.n_iter_ == 1


def test_stops_at_a_fixed_point_with_the_full_result(blobs):
    """Once no label moves, more passes cannot change anything: the fit stops there with the 200-pass result."""
    X, _ = blobs
    full = KMeans(40, n_iter=200, seed=3).fit(X)  # 40 clusters in 12 blobs: many passes before none moves
    assert 4 <= full.n_iter_ < 200
    for n_iter in (full.n_iter_, 500):
        again = KMeans(40, n_iter=n_iter, seed=3).fit(X)
        assert again.n_iter_ == full.n_iter_
        assert np.array_equal(again.cluster_centers_, full.cluster_centers_)
    # two passes short of the fixed point the centroids still move (the stop is not early)
    short = KMeans(40, n_iter=full.n_iter_ - 2, seed=3).fit(X)
    assert not np.array_equal(short.cluster_centers_, full.cluster_centers_)


@pytest.mark.parametrize("k", [12, 300])  # one-thread small passes, and passes dealt to workers with bounds
def test_labels_do_not_depend_on_the_thread_count(blobs, k):
    X = np.tile(blobs[0], (6, 1)) + np.random.default_rng(1).normal(scale=0.01, size=(24000, 8)).astype(np.float32)
    before = torch.get_num_threads()
    try:
        fits = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            fits.append(KMeans(k, n_iter=15, seed=0).fit(X))
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(fits[0].labels_, fits[1].labels_)
    # fixed-point sums: the workers' shares do not change the centroids' bits
    assert np.array_equal(fits[0].cluster_centers_, fits[1].cluster_centers_)


def test_same_seed_same_result_other_seed_other_init(blobs):
    X, _ = blobs
    a, b = KMeans(12, n_iter=3, seed=7).fit(X), KMeans(12, n_iter=3, seed=7).fit(X)
    assert np.array_equal(a.cluster_centers_, b.cluster_centers_) and np.array_equal(a.labels_, b.labels_)
    c = KMeans(12, n_iter=3, seed=8).fit(X)
    assert not np.array_equal(a.cluster_centers_, c.cluster_centers_)


def test_greedy_kmeanspp_beats_random_init(blobs):
    X, _ = blobs
    plus = np.mean([KMeans(12, n_iter=1, seed=s).fit(X).inertia_ for s in range(5)])
    rand = np.mean([KMeans(12, n_iter=1, init="random", seed=s).fit(X).inertia_ for s in range(5)])
    assert plus < rand


def test_cosine_groups_by_direction(rng):
    directions = np.eye(3, dtype=np.float32)
    X = np.concatenate([d * rng.uniform(0.1, 50, (200, 1)) + rng.normal(0, 0.01, (200, 3)) for d in directions])
    km = KMeans(3, metric="cosine", seed=0).fit(X.astype(np.float32))
    assert sorted(np.bincount(km.labels_).tolist()) == [200, 200, 200]
    np.testing.assert_allclose(np.linalg.norm(km.cluster_centers_, axis=1), 1.0, rtol=1e-5)
    assert km.inertia_ < 0.1  # 600 rows, each within a few degrees of its axis
    distances = km.transform(X[:5])
    assert distances.shape == (5, 3) and np.all(distances >= 0) and np.all(distances <= 2)


def test_empty_clusters_keep_or_split(blobs):
    X, _ = blobs
    init = np.concatenate([X[:11], np.full((1, 8), 1e4, dtype=np.float32)])
    kept = KMeans(12, n_iter=5, init=init, empty_clusters="keep").fit(X)
    assert np.array_equal(kept.cluster_centers_[11], init[11])
    assert np.bincount(kept.labels_, minlength=12)[11] == 0
    split = KMeans(12, n_iter=5, init=init, empty_clusters="split").fit(X)
    assert np.all(np.bincount(split.labels_, minlength=12) > 0)
    assert split.inertia_ < kept.inertia_


def test_fit_on_sample_assigns_all(blobs):
    X, _ = blobs
    km = KMeans(12, max_points_per_centroid=20, seed=0).fit(X)
    assert len(km.labels_) == len(X)
    assert np.array_equal(km.labels_, km.predict(X))
    full = KMeans(12, seed=0).fit(X)
    assert km.inertia_ < 1.2 * full.inertia_


def test_predict_transform_assign_agree(blobs):
    X, _ = blobs
    km = KMeans(12, seed=0).fit(X)
    distances = km.transform(X)
    assert np.array_equal(distances.argmin(1), km.predict(X))
    labels, squared = assign(X, km.cluster_centers_)
    assert np.array_equal(labels, km.labels_)
    np.testing.assert_allclose(np.sqrt(squared), distances.min(1), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(squared.sum(), km.inertia_, rtol=1e-5)


def test_inputs_table_tensor_array_agree(tmp_path, blobs):
    X, _ = blobs
    table = VectorTable.from_arrays(tmp_path / "t", X)
    from_array = KMeans(12, n_iter=4, seed=1).fit(X)
    from_table = KMeans(12, n_iter=4, seed=1).fit(table)
    from_tensor = KMeans(12, n_iter=4, seed=1).fit(torch.from_numpy(X))
    assert np.array_equal(from_array.labels_, from_table.labels_)
    assert np.array_equal(from_array.labels_, from_tensor.labels_)
    half = VectorTable.from_arrays(tmp_path / "h", X.astype(np.float16))
    assert len(KMeans(12, n_iter=2).fit(half).labels_) == len(X)


def test_chunk_size_does_not_change_result(blobs):
    X, _ = blobs
    small = KMeans(12, n_iter=3, chunk_size=100, seed=2).fit(X)
    large = KMeans(12, n_iter=3, chunk_size=10_000, seed=2).fit(X)
    assert np.array_equal(small.labels_, large.labels_)
    np.testing.assert_allclose(small.cluster_centers_, large.cluster_centers_, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "X", "error", "match"),
    [
        ({"n_clusters": 0}, np.ones((5, 2)), ValueError, "n_clusters must be an int >= 1"),
        ({"n_clusters": 6}, np.ones((5, 2)), ValueError, r"n_clusters \(6\) must be <= the number of rows of X \(n_"),
        ({"n_clusters": 2}, np.ones(5), ValueError, "X must be 2-D"),
        ({"n_clusters": 2}, np.ones((0, 3)), ValueError, "X is empty"),
        ({"n_clusters": 2}, np.array([[0.0, 1], [np.nan, 1], [2, 2]]), ValueError, "NaN or inf"),
        ({"n_clusters": 2, "metric": "dot"}, np.ones((5, 2)), ValueError, "metric must be one of"),
        ({"n_clusters": 2, "init": np.ones((3, 2))}, np.ones((5, 2)), ValueError, r"init centroids must have shape"),
        ({"n_clusters": 2, "empty_clusters": "drop"}, np.ones((5, 2)), ValueError, "empty_clusters"),
        ({"n_clusters": 2, "n_iter": 0}, np.ones((5, 2)), ValueError, "n_iter"),
        ({"n_clusters": 2, "tol": -1}, np.ones((5, 2)), ValueError, "tol"),
    ],
)
def test_bad_input(kwargs, X, error, match):
    with pytest.raises(error, match=match):
        KMeans(**kwargs).fit(X)


def test_predict_before_fit_and_wrong_dim():
    with pytest.raises(NotFittedError, match="not fitted"):
        KMeans(2).predict(np.ones((3, 2)))
    km = KMeans(2).fit(np.arange(10, dtype=np.float32).reshape(5, 2))
    with pytest.raises(ValueError, match="X has 3 features, but KMeans is expecting 2"):
        km.predict(np.ones((3, 3)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(blobs):
    X, _ = blobs
    cpu = KMeans(12, n_iter=5, seed=0).fit(X)
    gpu = KMeans(12, n_iter=5, seed=0, device="cuda").fit(X)
    np.testing.assert_allclose(gpu.inertia_, cpu.inertia_, rtol=1e-3)


def test_nan_in_init_or_centroids_is_named():
    """A NaN in init used to be reported as a NaN in X; assign with another dimension failed inside numpy."""
    with pytest.raises(ValueError, match=r"init holds NaN or inf \(row 1\)"):
        KMeans(2, init=np.array([[0.0, 0], [np.nan, 1]])).fit(np.ones((5, 2)))
    with pytest.raises(ValueError, match=r"centroids must have shape \(k >= 1, 3\) to match X, got \(2, 2\)"):
        assign(np.ones((5, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="centroids holds NaN or inf"):
        assign(np.ones((5, 2)), np.array([[0.0, np.inf]]))


def _matmul_settings() -> tuple[str, ...]:
    """Every float32-matmul setting torch reads (the per-backend ones since torch 2.9), as the user sees them."""
    settings = (torch.get_float32_matmul_precision(),)
    backends = torch.backends
    if hasattr(backends.mkldnn, "matmul"):
        settings += (backends.cuda.matmul.fp32_precision, backends.mkldnn.matmul.fp32_precision)
    return settings


@pytest.fixture
def user_allows_tf32():
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")  # TF32 on a GPU, as many training scripts set it
    yield _matmul_settings()
    torch.set_float32_matmul_precision(before)


def test_a_fit_runs_fp32_matmuls_and_leaves_the_users_tf32_setting_as_it_was(blobs, user_allows_tf32, monkeypatch):
    import curata.clustering.kmeans as kmeans

    during, real = [], kmeans.nearest_centroids

    def watched(*args, **kwargs):
        during.append(_matmul_settings())
        return real(*args, **kwargs)

    monkeypatch.setattr(kmeans, "nearest_centroids", watched)
    X, _ = blobs
    with pytest.warns(RuntimeWarning, match="full fp32.*'tf32' is set aside while it runs and restored"):
        KMeans(12, n_iter=3, seed=0).fit(X)
    assert _matmul_settings() == user_allows_tf32
    assert during and all(settings != user_allows_tf32 for settings in during)


def test_the_users_tf32_setting_is_back_after_a_fit_that_failed(blobs, user_allows_tf32, monkeypatch):
    import curata.clustering.kmeans as kmeans

    def failing(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(kmeans, "nearest_centroids", failing)
    with pytest.warns(RuntimeWarning, match="set aside"), pytest.raises(RuntimeError, match="out of memory"):
        KMeans(12, n_iter=3, seed=0).fit(blobs[0])
    assert _matmul_settings() == user_allows_tf32
