from __future__ import annotations

import numpy as np
import pytest

from curata import dedup


def test_finds_injected_near_duplicates():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3000, 32)).astype(np.float32)
    sources = rng.choice(3000, 300, replace=False)
    copies = base[sources] + rng.normal(scale=0.02, size=(300, 32)).astype(np.float32)
    X = np.concatenate([base, copies])
    kept, groups = dedup(X, threshold=0.95, seed=0)
    pairs_found = {(int(g[0]), int(g[1])) for g in groups if len(g) == 2}
    pairs_true = {(int(s), 3000 + i) for i, s in enumerate(sources)}
    precision = len(pairs_found & pairs_true) / max(1, len(pairs_found))
    recall = len(pairs_found & pairs_true) / len(pairs_true)
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)
    assert len(kept) == len(X) - sum(len(g) - 1 for g in groups)


@pytest.mark.parametrize("keep", ["central", "random", "first"])
def test_one_kept_per_group(keep):
    X = np.array([[1.0, 0, 0], [1, 0.01, 0], [1, 0.02, 0], [0, 1, 0], [0, 0, 1]])
    kept, groups = dedup(X, clusters=np.zeros(5, dtype=int), keep=keep, seed=0)
    assert [g.tolist() for g in groups] == [[0, 1, 2]]
    assert len(kept) == 3 and {3, 4} <= set(kept.tolist())
    if keep == "central":
        assert 1 in kept
    if keep == "first":
        assert 0 in kept


def test_only_within_clusters_and_transitive_groups():
    X = np.array([[1.0, 0], [1, 0.001], [1, 0.002]])
    _, apart = dedup(X, clusters=np.array([0, 1, 1]))
    assert [g.tolist() for g in apart] == [[1, 2]]
    _, chained = dedup(np.array([[1.0, 0.0], [1.0, 0.3], [1.0, 0.6]]), threshold=0.95, clusters=np.zeros(3, int))
    assert [g.tolist() for g in chained] == [[0, 1, 2]]  # 0~1 and 1~2 link 0 and 2


def test_bad_input():
    with pytest.raises(ValueError, match="threshold must be in"):
        dedup(np.ones((3, 2)), threshold=0)
    with pytest.raises(ValueError, match="keep"):
        dedup(np.ones((3, 2)), keep="last")
    with pytest.raises(ValueError, match="one id per row"):
        dedup(np.ones((3, 2)), clusters=[0, 1])


def test_nan_rows_and_float_clusters_are_refused():
    X = np.random.default_rng(0).normal(size=(20, 4))
    X[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"X holds NaN or inf \(row 3\)"):
        dedup(X, clusters=np.zeros(20, int))
    with pytest.raises(TypeError, match="clusters must hold integer ids"):
        dedup(np.ones((4, 2)), clusters=np.zeros(4))
