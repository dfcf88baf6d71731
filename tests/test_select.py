from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from curata import VectorTable, select


@pytest.fixture
def blobs() -> np.ndarray:
    X, _ = make_blobs(1500, n_features=5, centers=15, cluster_std=[0.5] * 10 + [3.0] * 5, random_state=0)
    return X.astype(np.float32)


def coverage(X: np.ndarray, picked: np.ndarray) -> float:
    """The largest distance from any row to its nearest picked row."""
    d = ((X[:, None, :] - X[picked][None]) ** 2).sum(-1)
    return float(np.sqrt(d.min(1)).max())


def test_kcenter_covers_better_than_random(blobs):
    picked = select(blobs, 30, seed=0)
    assert len(np.unique(picked)) == 30
    random = [coverage(blobs, select(blobs, 30, method="random", seed=s)) for s in range(5)]
    assert coverage(blobs, picked) < min(random)


def test_kcenter_greedy_order_and_exclude(blobs):
    picked = select(blobs, 5, seed=1)
    # each pick is the row farthest from the previous picks
    for t in range(1, 5):
        d = ((blobs[:, None, :] - blobs[picked[:t]][None]) ** 2).sum(-1).min(1)
        assert d[picked[t]] == pytest.approx(d.max(), rel=1e-4)
    labelled = picked[:3]
    more = select(blobs, 4, exclude=labelled, seed=1)
    assert not set(more.tolist()) & set(labelled.tolist())
    d = ((blobs[:, None, :] - blobs[labelled][None]) ** 2).sum(-1).min(1)
    assert d[more[0]] == pytest.approx(d.max(), rel=1e-4)  # the excluded rows count as centres


def test_cluster_balanced_and_typical(blobs):
    clusters = np.repeat(np.arange(3), [1000, 400, 100])
    picked = select(blobs, 90, method="cluster_balanced", clusters=clusters, seed=0)
    assert np.bincount(clusters[picked]).tolist() == [30, 30, 30]
    typical = select(blobs, 3, method="typical", clusters=clusters)
    assert sorted(clusters[typical].tolist()) == [0, 1, 2]
    for c, row in zip(clusters[typical], typical):
        members = blobs[clusters == c]
        centre = members.astype(np.float64).mean(0)
        assert np.allclose(((blobs[row] - centre) ** 2).sum(), ((members - centre) ** 2).sum(1).min(), rtol=1e-5)
    assert len(select(blobs, 20, method="typical", seed=0)) == 20  # k-means with k = n when no clusters


def test_random_is_seeded_and_table_input(tmp_path, blobs):
    assert np.array_equal(select(blobs, 10, method="random", seed=3), select(blobs, 10, method="random", seed=3))
    table = VectorTable.from_arrays(tmp_path / "t", blobs)
    assert np.array_equal(select(table, 7, seed=2), select(blobs, 7, seed=2))


def test_bad_input(blobs):
    with pytest.raises(ValueError, match="larger than the pool"):
        select(blobs, 1501)
    with pytest.raises(ValueError, match="larger than the pool"):
        select(blobs, 1500, exclude=[0])
    with pytest.raises(ValueError, match="method"):
        select(blobs, 3, method="diverse")
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        select(blobs, 0)
    with pytest.raises(ValueError, match="exclude"):
        select(blobs, 3, exclude=[5000])
    with pytest.raises(ValueError, match="one id per row"):
        select(blobs, 3, method="typical", clusters=[0, 1])


def test_ids_and_masks_are_checked_not_reinterpreted(blobs):
    """exclude used to read a boolean mask's values as ids (0 and 1) and to truncate floats."""
    mask = np.zeros(len(blobs), dtype=bool)
    mask[[10, 20, 30]] = True
    for method in ("kcenter", "random", "cluster_balanced"):
        picked = select(blobs, 50, method=method, exclude=mask, seed=0)
        assert not set(picked.tolist()) & {10, 20, 30}
        assert np.array_equal(picked, select(blobs, 50, method=method, exclude=[10, 20, 30], seed=0))
    with pytest.raises(TypeError, match=r"exclude must hold integer row ids, got dtype float64 \(1.7"):
        select(blobs, 3, exclude=[1.7])
    with pytest.raises(ValueError, match=r"one flag per row \(1500\), got 3"):
        select(blobs, 3, exclude=[True, False, True])
    with pytest.raises(ValueError, match=r"outside \[0, 1500\): -1 at position 1"):
        select(blobs, 3, exclude=[4, -1])
    with pytest.raises(TypeError, match="clusters must hold integer ids"):
        select(blobs, 3, method="typical", clusters=np.zeros(len(blobs)) + 0.5)


@pytest.mark.parametrize("method", ["kcenter", "typical", "cluster_balanced"])
def test_nan_rows_are_refused(blobs, method):
    bad = blobs.copy()
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"X holds NaN or inf \(row 7\)"):
        select(bad, 3, method=method, clusters=np.arange(len(bad)) % 3)
