from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from curata import HierarchicalKMeans, KMeans, VectorTable, curate
from curata.clustering.hierarchical import _derived_seed, per_group_first
from curata.clustering.kmeans import assign


def long_tailed(seed: int = 0, concepts: int = 30) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = np.round(1000 * np.arange(1, concepts + 1) ** -1.2).astype(int)
    centres = rng.normal(0.0, 3.0, size=(concepts, 6))
    X = np.concatenate([centres[c] + rng.normal(size=(s, 6)) for c, s in enumerate(sizes)]).astype(np.float32)
    return X, np.repeat(np.arange(concepts), sizes)


def kl_to_uniform(values: np.ndarray, classes: int) -> float:
    p = np.bincount(values, minlength=classes) / len(values)
    return float(np.sum(p[p > 0] * np.log(p[p > 0] * classes)))


def test_levels_shapes_and_consistent_labels():
    X, _ = long_tailed()
    tree = HierarchicalKMeans([60, 12, 3], n_resampling_steps=2, n_iter=10).fit(X)
    assert tree.labels_.shape == (len(X), 3)
    assert [c.shape for c in tree.centroids_] == [(60, 6), (12, 6), (3, 6)]
    assert [int(s.sum()) for s in tree.sizes_] == [len(X)] * 3
    # a row's level-2 cluster is the level-2 cluster of its level-1 centroid
    parents, _ = assign(tree.centroids_[0], tree.centroids_[1])
    assert np.array_equal(tree.labels_[:, 1], parents[tree.labels_[:, 0]])
    labels, distances = assign(X, tree.centroids_[0])
    assert np.array_equal(tree.labels_[:, 0], labels)
    np.testing.assert_allclose(tree.distances_, distances, rtol=1e-5, atol=1e-5)


def test_resampling_step_output_is_the_subset_kmeans():
    X, _ = long_tailed()
    tree = HierarchicalKMeans([40], n_resampling_steps=1, n_iter=8).fit(X)
    first = KMeans(40, seed=_derived_seed(0, 1, 0), n_iter=8).fit(X)
    labels, distances = assign(X, first.cluster_centers_)
    r = math.ceil(len(X) / (2 * 40))
    subset = per_group_first(labels, distances, r)
    assert np.all(np.bincount(labels[subset]) <= r)
    again = KMeans(40, seed=_derived_seed(0, 1, 1), n_iter=8).fit(X[subset])
    np.testing.assert_allclose(tree.centroids_[0], again.cluster_centers_, rtol=1e-5, atol=1e-5)


def test_resampling_balances_more_than_plain_tree_and_flat():
    X, concept = long_tailed(1)
    flat = KMeans(10, seed=0).fit(X)
    plain = HierarchicalKMeans([120, 10], n_resampling_steps=0, seed=0).fit(X)
    resampled = HierarchicalKMeans([120, 10], n_resampling_steps=8, seed=0).fit(X)
    kls = [kl_to_uniform(concept[curate(t, 300, seed=0)], 30) for t in (flat, plain, resampled)]
    assert kls[0] > kls[1] > kls[2], kls


def test_random_resample_sample_sizes_and_same_seed():
    X, _ = long_tailed()
    a = HierarchicalKMeans([30, 5], resample="random", sample_size=[10, 3], n_resampling_steps=2, n_iter=5).fit(X)
    b = HierarchicalKMeans([30, 5], resample="random", sample_size=[10, 3], n_resampling_steps=2, n_iter=5).fit(X)
    assert np.array_equal(a.labels_, b.labels_)
    c = HierarchicalKMeans([30, 5], resample="random", sample_size=[10, 3], n_resampling_steps=2, n_iter=5, seed=1).fit(
        X
    )
    assert not np.array_equal(a.centroids_[0], c.centroids_[0])


def test_two_step_levels_with_n_splits():
    X, _ = long_tailed()
    tree = HierarchicalKMeans([50, 6], n_splits=10, n_resampling_steps=1, n_iter=5).fit(X)
    assert [len(c) for c in tree.centroids_] == [50, 6]
    assert len(np.unique(tree.labels_[:, 0])) > 40


def test_table_input_and_save_load(tmp_path):
    X, _ = long_tailed()
    table = VectorTable.from_arrays(tmp_path / "t", X)
    tree = HierarchicalKMeans([20, 4], n_resampling_steps=1, n_iter=5).fit(table)
    same = HierarchicalKMeans([20, 4], n_resampling_steps=1, n_iter=5).fit(X)
    assert np.array_equal(tree.labels_, same.labels_)
    tree.save(tmp_path / "tree")
    loaded = HierarchicalKMeans.load(tmp_path / "tree")
    assert np.array_equal(loaded.labels_, tree.labels_)
    assert all(np.array_equal(a, b) for a, b in zip(loaded.centroids_, tree.centroids_, strict=True))
    assert loaded.n_resampling_steps == 1 and loaded.kmeans_kwargs == {"n_iter": 5}
    assert np.array_equal(curate(loaded, 50, strategy="closest"), curate(tree, 50, strategy="closest"))


def test_checkpoint_resume_skips_finished_levels(tmp_path, monkeypatch):
    X, _ = long_tailed()
    path = tmp_path / "ckpt"
    full = HierarchicalKMeans([20, 5, 2], n_resampling_steps=1, n_iter=5).fit(X, checkpoint=path)
    # pretend the run died after level 2
    meta = json.loads((path / "tree.json").read_text())
    meta["levels_done"] = 2
    (path / "tree.json").write_text(json.dumps(meta))
    calls = []
    original = HierarchicalKMeans._fit_level

    def counting(self, inputs, k, level, sample_size):
        calls.append(level)
        return original(self, inputs, k, level, sample_size)

    monkeypatch.setattr(HierarchicalKMeans, "_fit_level", counting)
    resumed = HierarchicalKMeans([20, 5, 2], n_resampling_steps=1, n_iter=5).fit(X, checkpoint=path)
    assert calls == [3]
    assert np.array_equal(resumed.labels_, full.labels_)
    with pytest.raises(ValueError, match="other params"):
        HierarchicalKMeans([20, 5, 2], n_resampling_steps=2, n_iter=5).fit(X, checkpoint=path)
    with pytest.raises(ValueError, match="other data"):
        HierarchicalKMeans([20, 5, 2], n_resampling_steps=1, n_iter=5).fit(X * 2, checkpoint=path)


@pytest.mark.parametrize(
    ("levels", "X", "match"),
    [
        ([10, 10], np.ones((50, 2)), "must decrease"),
        ([10, 20], np.ones((50, 2)), "must decrease"),
        ([], np.ones((50, 2)), "non-empty list"),
        ([60, 5], np.ones((50, 2)), r"n_clusters\[0\] \(60\) must be <= the number of rows"),
        ([5, 2], np.ones(50), "2-D"),
        ([5, 2], np.ones((0, 2)), "empty"),
        ([5, 2], np.r_[np.ones((49, 2)), [[np.inf, 0]]], "NaN or inf"),
    ],
)
def test_bad_input(levels, X, match):
    with pytest.raises(ValueError, match=match):
        HierarchicalKMeans(levels, n_resampling_steps=1).fit(X)


def test_bad_settings():
    X = np.random.default_rng(0).normal(size=(40, 2))
    with pytest.raises(ValueError, match="resample"):
        HierarchicalKMeans([4], resample="far").fit(X)
    with pytest.raises(ValueError, match="sample_size"):
        HierarchicalKMeans([4, 2], sample_size=[3]).fit(X)
    with pytest.raises(ValueError, match="starts afresh"):
        HierarchicalKMeans([4, 2], init=X[:4]).fit(X)


@pytest.fixture(scope="module")
def uninterrupted_labels(tmp_path_factory) -> np.ndarray:
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from checkpoint_job import fit

    return fit(str(tmp_path_factory.mktemp("whole")))


# renames: level 1 = centroids, labels, distances, tree.json (1-4); level 2 = 5-7; level 3 = 8-10
@pytest.mark.parametrize(  # one kill per level in make test, the others with --full
    "kill_at", [1, pytest.param(3, marks=pytest.mark.full), pytest.param(4, marks=pytest.mark.full), 5, 8]
)
def test_checkpoint_resumes_after_a_kill_at_any_rename(tmp_path, kill_at, uninterrupted_labels):
    """A kill while the first level was being saved used to leave a checkpoint the next run refused."""
    job = [sys.executable, str(Path(__file__).parents[1] / "checkpoint_job.py")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    path, out = str(tmp_path / "ckpt"), str(tmp_path / "resumed.npy")
    killed = subprocess.run([*job, path, out, str(kill_at)], env=env, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    resumed = subprocess.run([*job, path, out], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert np.array_equal(np.load(out), uninterrupted_labels)
    assert ("first level whose save was interrupted" in resumed.stderr) == (kill_at < 4)


def test_checkpoint_with_foreign_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds files that are not a tree's \(\['notes.txt'\]\)"):
        HierarchicalKMeans([4, 2], n_resampling_steps=0, n_iter=3).fit(
            np.ones((20, 2)) * np.arange(20)[:, None], checkpoint=tmp_path
        )
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_checkpoint_resume_on_changed_data_is_refused(tmp_path):
    X = np.random.default_rng(3).normal(size=(5000, 6)).astype(np.float32)
    path = tmp_path / "ckpt"
    tree = HierarchicalKMeans([20, 4], n_resampling_steps=0, n_iter=3)
    full = tree.fit(X, checkpoint=path).labels_.copy()
    checked = set(np.linspace(0, len(X) - 1, num=64).astype(np.int64).tolist())  # the rows an old check hashed
    sampled = set(np.random.default_rng(0).choice(len(X), size=1024, replace=False).tolist()) | {0, len(X) - 1}
    edited = X.copy()
    row = next(i for i in range(len(X)) if i not in checked and i not in sampled)
    edited[row, 2] += 0.5  # one value of one row that no sample reads: the column sums see it
    with pytest.raises(ValueError, match=r"other data \(sampled rows or column sums differ\)"):
        tree.fit(edited, checkpoint=path)
    swapped = X.copy()
    a, b = sorted(i for i in sampled if i not in checked)[:2]
    swapped[[a, b]] = swapped[[b, a]]  # the same rows in another order: equal sums, other sampled rows
    with pytest.raises(ValueError, match="other data"):
        tree.fit(swapped, checkpoint=path)
    # the same data as a float64 array and as a tensor resumes: the values the fit reads are the same
    import torch

    assert np.array_equal(tree.fit(X.astype(np.float64), checkpoint=path).labels_, full)
    assert np.array_equal(tree.fit(torch.from_numpy(X), checkpoint=path).labels_, full)


def test_checkpoint_of_an_older_curata_resumes_with_a_warning(tmp_path):
    X, _ = long_tailed()
    full = HierarchicalKMeans([20, 5], n_resampling_steps=0, n_iter=3).fit(X, checkpoint=tmp_path)
    meta = json.loads((tmp_path / "tree.json").read_text())
    del meta["data_check"]  # what checkpoints held before the data check
    (tmp_path / "tree.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="older curata: its data is checked on 64 rows only"):
        resumed = HierarchicalKMeans([20, 5], n_resampling_steps=0, n_iter=3).fit(X, checkpoint=tmp_path)
    assert np.array_equal(resumed.labels_, full.labels_)
