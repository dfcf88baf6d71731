from __future__ import annotations

import numpy as np
import pytest

from curata import VectorTable, contamination
from curata.subsets.contamination import contamination_space


def test_finds_test_rows_copied_into_train_in_bounded_chunks(tmp_path):
    rng = np.random.default_rng(0)
    test = rng.normal(size=(300, 16)).astype(np.float32)
    train = rng.normal(size=(1000, 16)).astype(np.float32)
    train[[5, 500, 999]] = test[[7, 8, 299]] + 0.01 * rng.normal(size=(3, 16)).astype(np.float32)
    rows, nearest, similarity = contamination(train, test, threshold=0.95)  # 16 dims: chance cosines are wide
    assert rows.tolist() == [5, 500, 999] and nearest.tolist() == [7, 8, 299] and (similarity > 0.99).all()
    table = VectorTable.from_arrays(tmp_path / "train", train)
    for chunk_rows in (7, 64, 5000):  # 7: chunks that do not divide either set
        got = contamination(table, test, threshold=0.95, chunk_rows=chunk_rows)
        assert got[0].tolist() == [5, 500, 999] and got[1].tolist() == [7, 8, 299]


def test_near_copies_of_real_digits(digit_copies):
    """The 600 digits against their 60 near-copies (JPEG, brightness, exact) as a 'test set', EfficientNet-Lite0
    features: whitened, at its default threshold, no other digit is flagged and at least 95 % of the sources are.
    The default space ("auto") is centred on these 660 rows of 1280 dims, which flags other digits too."""
    X, sources, _ = digit_copies
    rows, nearest, _ = contamination(X[:600], X[600:], space="whitened")
    assert set(rows.tolist()) <= set(sources.tolist()) and len(rows) >= 0.95 * len(sources)
    assert all(sources[n] == r for r, n in zip(rows, nearest))
    low = contamination(X[:600], X[600:], threshold=0.5, space="whitened")[0]
    assert set(sources.tolist()) <= set(low.tolist())
    assert contamination_space(X[:600], X[600:]) == "centred"
    others = set(contamination(X[:600], X[600:])[0].tolist()) - set(sources.tolist())
    assert len(others) > 5, others


def test_bad_input():
    with pytest.raises(ValueError, match="reference has dim 3, X has dim 2"):
        contamination(np.ones((2, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="threshold must be in"):
        contamination(np.ones((2, 2)), np.ones((2, 2)), threshold=0)
    bad = np.ones((4, 2))
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"reference holds NaN or inf \(row 3\)"):
        contamination(np.ones((2, 2)), bad, chunk_rows=2)
    with pytest.raises(ValueError, match="space must be one of"):
        contamination(np.ones((2, 2)), np.ones((2, 2)), space="white")


def test_reference_clusters_find_the_copies_with_a_fraction_of_the_comparisons(tmp_path):
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(40, 32)) * 3
    test = (centres[rng.integers(0, 40, 4000)] + rng.normal(size=(4000, 32))).astype(np.float32)
    train = (centres[rng.integers(0, 40, 20000)] + rng.normal(size=(20000, 32))).astype(np.float32)
    copied = rng.choice(20000, 200, replace=False)
    sources = rng.choice(4000, 200, replace=False)
    train[copied] = test[sources] + 0.01 * rng.normal(size=(200, 32)).astype(np.float32)
    exact = contamination(train, test, threshold=0.95, space="centred")
    assert set(copied.tolist()) <= set(exact[0].tolist())
    table = VectorTable.from_arrays(tmp_path / "train", train)
    for X in (train, table):
        rows, nearest, similarity = contamination(
            X, test, threshold=0.95, space="centred", reference_clusters=40, probes=2, chunk_rows=700
        )
        # every pair found is a pair the exact search finds, with the same similarity; the copies are all found
        assert set(rows.tolist()) <= set(exact[0].tolist()) and set(copied.tolist()) <= set(rows.tolist())
        found = dict(zip(exact[0].tolist(), exact[2].tolist()))
        assert np.allclose(similarity, [found[r] for r in rows.tolist()], atol=1e-5)
        assert all(nearest[rows.tolist().index(c)] == s for c, s in zip(copied.tolist(), sources.tolist()))
    one = contamination(train, test, threshold=0.95, space="centred", reference_clusters=1)
    assert np.array_equal(one[0], exact[0]) and np.array_equal(one[1], exact[1])  # one cluster: every pair


def test_reference_clusters_bad_input():
    with pytest.raises(ValueError, match=r"reference_clusters \(5\) must be <= the reference's rows \(3\)"):
        contamination(np.ones((2, 2)), np.eye(3, 2), reference_clusters=5)
    with pytest.raises(ValueError, match="probes"):
        contamination(np.ones((2, 2)), np.eye(3, 2), reference_clusters=2, probes=0)
    with pytest.raises(TypeError, match="reference_clusters"):
        contamination(np.ones((2, 2)), np.eye(3, 2), reference_clusters=1.5)
