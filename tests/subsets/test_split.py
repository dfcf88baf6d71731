from __future__ import annotations

import numpy as np
import pytest

from curata import VectorTable, leakage, split


def test_stratified_puts_every_cluster_everywhere_in_proportion():
    rng = np.random.default_rng(0)
    clusters = rng.permutation(np.repeat(np.arange(6), [500, 300, 100, 50, 40, 10]))
    parts = split(clusters, {"train": 0.7, "val": 0.2, "test": 0.1}, seed=0)
    assert [len(parts[n]) for n in ("train", "val", "test")] == [700, 200, 100]
    everything = np.concatenate(list(parts.values()))
    assert len(np.unique(everything)) == 1000
    for name, fraction in (("train", 0.7), ("val", 0.2), ("test", 0.1)):
        counts = np.bincount(clusters[parts[name]], minlength=6)
        expected = fraction * np.bincount(clusters)
        assert np.all(np.abs(counts - expected) <= 1.5), (name, counts, expected)


def test_disjoint_keeps_clusters_whole_and_counts_work():
    clusters = np.repeat(np.arange(20), 10)
    parts = split(clusters, {"train": 150, "val": 50}, mode="disjoint", seed=1)
    train, val = set(clusters[parts["train"]].tolist()), set(clusters[parts["val"]].tolist())
    assert not train & val
    assert len(parts["train"]) == 150 and len(parts["val"]) == 50


def test_vectors_are_clustered_first_and_seeded():
    X = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    a = split(X, {"train": 0.5, "val": 0.5}, mode="disjoint", seed=0)
    b = split(X, {"train": 0.5, "val": 0.5}, mode="disjoint", seed=0)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert len(a["train"]) + len(a["val"]) == 300


def test_leakage_finds_cross_split_near_duplicates():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 16))
    X[150] = X[10] + 1e-4  # a near-copy of row 10
    found = leakage({"train": np.arange(100), "val": np.arange(100, 200)}, X, threshold=0.999, space="raw")
    pairs = list(zip(found["split_a"].tolist(), found["id_a"].tolist(), found["split_b"].tolist(), found["id_b"]))
    assert pairs == [("train", 10, "val", 150)]
    assert found["cosine"][0] > 0.999
    found = leakage({"train": np.arange(100), "val": np.arange(100, 150)}, X, threshold=0.999, space="raw")
    assert all(len(column) == 0 for column in found.values())


def test_leakage_in_the_space_dedup_uses_streams_chunks_and_names_samples(tmp_path):
    """Uncentred rows (as pooled CNN features): raw cosines at 0.95 flag everything; a centred space does not."""
    rng = np.random.default_rng(0)
    X = (rng.random((120, 32)) + 3).astype(np.float32)
    X[100] = X[7] * 1.0001
    table = VectorTable.from_arrays(tmp_path / "t", np.repeat(X, 2, axis=0), ids=np.repeat(np.arange(120) * 5, 2))
    splits = {"train": np.arange(100) * 5, "val": np.arange(100, 120) * 5}
    assert len(leakage(splits, table, space="raw")["cosine"]) > 1000
    found = leakage(splits, table, space="centred", chunk_rows=7)
    assert found["id_a"].tolist() == [35] and found["id_b"].tolist() == [500]


@pytest.mark.parametrize(
    ("sizes", "match"),
    [
        ({"train": 0.8, "val": 0.3}, "sum to <= 1"),
        ({"train": -0.1}, "in \\[0, 1\\]"),
        ({"train": 90, "val": 20}, "sum to <= the 100 rows"),
        ({}, "non-empty dict"),
    ],
)
def test_bad_sizes(sizes, match):
    with pytest.raises(ValueError, match=match):
        split(np.arange(100) % 5, sizes)


def test_bad_mode_and_threshold():
    with pytest.raises(ValueError, match="mode"):
        split(np.arange(10) % 2, {"a": 0.5}, mode="grouped")
    for threshold in (0, 1.5):
        with pytest.raises(ValueError, match="threshold must be in"):
            leakage({"a": [0], "b": [1]}, np.ones((2, 2)), threshold=threshold)


def test_leakage_checks_ids_before_any_work():
    """Negative ids used to wrap around, out-of-range ones to fail inside torch."""
    X = np.array([[1.0, 0], [1.0, 0.01], [0, 1]])
    with pytest.raises(ValueError, match=r"splits\['val'\] holds row ids outside \[0, 3\): -1 at position 0"):
        leakage({"train": [0, 2], "val": [-1]}, X, space="raw")
    with pytest.raises(ValueError, match=r"splits\['val'\] holds row ids outside \[0, 3\): 3"):
        leakage({"train": [0], "val": [3]}, X)
    with pytest.raises(TypeError, match=r"splits\['train'\] must hold integer row ids"):
        leakage({"train": [0.0], "val": [1]}, X)
    X[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"X holds NaN or inf \(row 2\)"):
        leakage({"train": [0], "val": [1]}, X)


def test_coreset_split_takes_each_class_share_and_covers_the_pool():
    from sklearn.datasets import make_blobs

    from curata import select

    X, _ = make_blobs(1000, n_features=6, centers=20, random_state=3)
    labels = np.repeat([0, 1, 2], [600, 300, 100])
    parts = split(X, {"train": 0.7, "val": 0.3}, mode="coreset", labels=labels, seed=0)
    assert np.array_equal(np.sort(np.r_[parts["train"], parts["val"]]), np.arange(1000))
    assert np.bincount(labels[parts["train"]]).tolist() == [420, 210, 70]
    assert np.array_equal(parts["train"], np.sort(select(X, 700, labels=labels, seed=0)))  # Goldener's recipe

    def worst_gap(rows: np.ndarray) -> float:
        d = ((X[:, None, :] - X[rows][None]) ** 2).sum(-1)
        return float(np.sqrt(d.min(1)).max())

    random = [worst_gap(split(X, {"train": 0.7, "val": 0.3}, seed=s)["train"]) for s in range(5)]
    assert worst_gap(parts["train"]) < min(random)


def test_coreset_split_n_way_and_other_methods():
    X = np.random.default_rng(0).normal(size=(500, 8)).astype(np.float32)
    parts = split(X, {"train": 0.6, "val": 0.2, "test": 0.2}, mode="coreset", method="kernel_points", seed=1)
    assert [len(p) for p in parts.values()] == [300, 100, 100]
    assert len(np.unique(np.concatenate(list(parts.values())))) == 500
    partial = split(X, {"train": 0.5, "val": 0.1}, mode="coreset", metric="cosine", seed=1)
    assert [len(p) for p in partial.values()] == [250, 50]
    assert not set(partial["train"].tolist()) & set(partial["val"].tolist())


def test_coreset_split_bad_input():
    X = np.random.default_rng(0).normal(size=(50, 4))
    with pytest.raises(ValueError, match="pass the vectors, not cluster ids"):
        split(np.zeros(50, dtype=int), {"train": 0.5}, mode="coreset")
    with pytest.raises(ValueError, match="labels is used by mode='coreset'"):
        split(X, {"train": 0.5}, labels=np.zeros(50, dtype=int))
    with pytest.raises(ValueError, match="method must be one of"):
        split(X, {"train": 0.5}, mode="coreset", method="best")
    with pytest.raises(TypeError, match="labels must hold integer ids"):
        split(X, {"train": 0.5}, mode="coreset", labels=np.zeros(50) + 0.5)
    bad = X.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"X holds NaN or inf \(row 3\)"):
        split(bad, {"train": 0.5, "val": 0.5}, mode="coreset")
    with pytest.raises(ValueError, match=r"X holds NaN or inf \(row 3\)"):
        split(bad, {"train": 0, "val": 1.0}, mode="coreset")
