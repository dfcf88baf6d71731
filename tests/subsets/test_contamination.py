from __future__ import annotations

import numpy as np
import pytest

from curata import VectorTable, contamination


def test_finds_test_rows_copied_into_train_in_bounded_chunks(tmp_path):
    rng = np.random.default_rng(0)
    test = rng.normal(size=(300, 16)).astype(np.float32)
    train = rng.normal(size=(1000, 16)).astype(np.float32)
    train[[5, 500, 999]] = test[[7, 8, 299]] + 0.01 * rng.normal(size=(3, 16)).astype(np.float32)
    rows, nearest, similarity = contamination(train, test, threshold=0.95)  # 16 dims: chance cosines are wide
    assert rows.tolist() == [5, 500, 999] and nearest.tolist() == [7, 8, 299] and (similarity > 0.99).all()
    table = VectorTable.from_arrays(tmp_path / "train", train)
    for chunk_rows in (1, 64, 5000):
        got = contamination(table, test, threshold=0.95, chunk_rows=chunk_rows)
        assert got[0].tolist() == [5, 500, 999] and got[1].tolist() == [7, 8, 299]


def test_near_copies_of_real_digits(digit_copies):
    """The 600 digits against their 60 near-copies (JPEG, brightness, exact) as a 'test set', EfficientNet-Lite0
    features: at the default threshold, no other digit is flagged and at least 95 % of the sources are."""
    X, sources, _ = digit_copies
    rows, nearest, _ = contamination(X[:600], X[600:])
    assert set(rows.tolist()) <= set(sources.tolist()) and len(rows) >= 0.95 * len(sources)
    assert all(sources[n] == r for r, n in zip(rows, nearest))
    assert set(sources.tolist()) <= set(contamination(X[:600], X[600:], threshold=0.5)[0].tolist())


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
