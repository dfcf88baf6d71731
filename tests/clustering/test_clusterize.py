from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import AgglomerativeClustering
from sklearn.cluster import KMeans as SklearnKMeans
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA

from curata import ClusterBatchSampler, HierarchicalKMeans, KMeans, VectorTable, cluster, reduce


@pytest.fixture
def table(tmp_path) -> VectorTable:
    X, y = make_blobs(600, n_features=6, centers=6, random_state=0)
    return VectorTable.from_arrays(tmp_path / "t", X.astype(np.float32), labels=y % 2)


class Recording:
    """A clusterer that records what it was fitted on."""

    def __init__(self, n_clusters: int = 3) -> None:
        self.n_clusters = n_clusters
        self.seen: list[tuple[int, ...]] = []

    def fit(self, X):
        Recording.last_shape = X.shape
        self.labels_ = np.arange(len(X)) % self.n_clusters
        return self


@pytest.mark.parametrize("clusterer", [KMeans(6, seed=0), SklearnKMeans(6, n_init=2, random_state=0)])
def test_writes_column_and_returns_per_sample(table, clusterer):
    per_sample = cluster(table, clusterer)
    assert per_sample.shape == (600,) and set(per_sample.tolist()) == set(range(6))
    assert np.array_equal(table.column("cluster"), per_sample)
    again = cluster(table, clusterer)  # a rerun replaces the column
    assert np.array_equal(again, per_sample)


def test_stratified_ids_unique_across_labels(table):
    per_sample = cluster(table, KMeans(3, seed=0), stratify_by_label=True)
    labels = table.column("label")
    for c in np.unique(per_sample):
        assert len(np.unique(labels[per_sample == c])) == 1
    assert len(np.unique(per_sample)) == 6


def test_chunks_are_seeded_and_ids_unique(table):
    a = cluster(table, KMeans(2, seed=0), approx_chunk_size=250, seed=1)
    b = cluster(table, KMeans(2, seed=0), approx_chunk_size=250, seed=1)
    assert np.array_equal(a, b)
    assert len(np.unique(a)) == 6  # 3 chunks x 2 clusters, never reused


def test_reducers_run_first(table):
    cluster(table, Recording(), reducer=PCA(2))
    assert Recording.last_shape == (600, 2)
    torch.manual_seed(0)
    cluster(table, Recording(), reducer=torch.nn.Linear(6, 3))
    assert Recording.last_shape == (600, 3)
    assert reduce(np.random.default_rng(0).random((5, 6)), PCA(1)).shape == (5, 1)
    with pytest.raises(TypeError, match="fit_transform"):
        reduce(np.ones((5, 6)), object())


def test_tree_fit_predict_and_n_clusters(table):
    tree = cluster(table, HierarchicalKMeans([12, 3], n_resampling_steps=1, n_iter=5))
    assert len(np.unique(tree)) == 12
    agglomerative = cluster(table, AgglomerativeClustering(), n_clusters=4)
    assert len(np.unique(agglomerative)) == 4
    capped = cluster(table, KMeans(2), n_clusters=1000, approx_chunk_size=100)
    assert capped.max() >= 100  # each chunk of 100 rows got at most 100 clusters, ids still unique


def test_multi_vector_samples_majority_and_pairs(tmp_path):
    X = np.r_[np.zeros((3, 2)), np.full((3, 2), 9.0)].astype(np.float32)
    table = VectorTable.from_arrays(tmp_path / "t", X, ids=[0, 0, 1, 1, 2, 2])
    per_sample = cluster(table, KMeans(2, seed=0))
    assert per_sample[0] != per_sample[2]
    pairs = cluster(table, KMeans(2, seed=0), per_sample="all")
    assert pairs.shape == (4, 2)  # sample 1 falls in both clusters
    assert np.array_equal(np.bincount(pairs[:, 0]), [1, 2, 1])
    sampler = ClusterBatchSampler(pairs, 2, seed=0)
    assert sorted(np.concatenate(list(sampler)).tolist()) == [0, 1, 1, 2]


def test_same_forces_every_vector_of_a_sample_into_one_cluster(tmp_path):
    X = np.r_[np.zeros((4, 2)), np.full((2, 2), 9.0)].astype(np.float32)
    table = VectorTable.from_arrays(tmp_path / "t", X, ids=[0, 0, 1, 1, 1, 2])  # sample 1: two near 0, one at 9
    per_sample = cluster(table, KMeans(2, seed=0), per_sample="same")
    column = table.column("cluster")
    assert column[2] == column[3] == column[4] == per_sample[1] == per_sample[0] != per_sample[2]
    assert np.array_equal(column, per_sample[table.column("idx")])


def test_bad_input(table, tmp_path):
    with pytest.raises(TypeError, match="VectorTable"):
        cluster(np.ones((3, 2)), KMeans(2))
    with pytest.raises(ValueError, match="per_sample"):
        cluster(table, KMeans(2), per_sample="first")
    with pytest.raises(ValueError, match="approx_chunk_size"):
        cluster(table, KMeans(2), approx_chunk_size=0)
    with pytest.raises(TypeError, match="clusterer"):
        cluster(table, object())
    unlabeled = VectorTable.from_arrays(tmp_path / "u", np.ones((4, 2)))
    with pytest.raises(ValueError, match="label column"):
        cluster(unlabeled, KMeans(2), stratify_by_label=True)
    assert "cluster" not in unlabeled.columns


def test_from_dataset_reuses_stored_clusters(tmp_path):
    data = np.random.default_rng(0).random((60, 3), dtype=np.float32)
    first = ClusterBatchSampler.from_dataset(data, torch.nn.Identity(), n_clusters=5, batch_size=5, path=tmp_path)
    table = VectorTable.open(tmp_path / "vectors")
    version = table._dataset.version
    second = ClusterBatchSampler.from_dataset(data, torch.nn.Identity(), n_clusters=5, batch_size=5, path=tmp_path)
    assert list(first) == list(second)
    assert VectorTable.open(tmp_path / "vectors")._dataset.version == version
    other = ClusterBatchSampler.from_dataset(data, torch.nn.Identity(), n_clusters=3, batch_size=5, path=tmp_path)
    assert other.n_clusters == 3


def test_a_clusterer_with_a_memory_budget_streams_the_table(table, monkeypatch):
    """cluster() used to read the whole table first, whatever the clusterer's budget."""
    whole_reads = []
    read = VectorTable.vectors

    def counting(self, rows=None, **kwargs):
        if rows is None:
            whole_reads.append(len(self))
        return read(self, rows, **kwargs)

    expected = cluster(table, KMeans(3, seed=0), stratify_by_label=True)
    monkeypatch.setattr(VectorTable, "vectors", counting)
    streamed = cluster(table, KMeans(3, seed=0, memory_budget=1 << 20), stratify_by_label=True)
    assert whole_reads == []
    assert np.array_equal(streamed, expected)
    cluster(table, KMeans(3, seed=0))
    assert whole_reads  # without a budget the table is read whole (the spy sees it)
