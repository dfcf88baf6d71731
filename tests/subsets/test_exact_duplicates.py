from __future__ import annotations

import numpy as np
import pytest
import torch

from curata import VectorTable, exact_duplicates


def test_equal_rows_in_their_stored_dtype(tmp_path):
    X = np.random.default_rng(0).normal(size=(50, 4))
    X[[10, 30, 40]] = X[3]
    X[20] = X[7] + 1e-12  # distinct in float64, equal once rounded to float32
    kept, groups = exact_duplicates(X)
    assert [g.tolist() for g in groups] == [[3, 10, 30, 40]]
    assert kept.tolist() == sorted(set(range(50)) - {10, 30, 40})
    assert [g.tolist() for g in exact_duplicates(torch.from_numpy(X))[1]] == [[3, 10, 30, 40]]
    table = VectorTable.from_arrays(tmp_path / "t", X.astype(np.float32))
    assert [g.tolist() for g in exact_duplicates(table)[1]] == [[3, 10, 30, 40], [7, 20]]


def test_files_by_content(tmp_path):
    for name, content in {"a": b"x" * 5000, "b": b"y", "c": b"x" * 5000, "d": b""}.items():
        (tmp_path / name).write_bytes(content)
    kept, groups = exact_duplicates([tmp_path / n for n in "abcd"])
    assert kept.tolist() == [0, 1, 3] and [g.tolist() for g in groups] == [[0, 2]]
    with pytest.raises(FileNotFoundError, match="'.*missing' is not a file"):
        exact_duplicates([tmp_path / "a", tmp_path / "missing"])
    with pytest.raises(TypeError, match="got one path"):
        exact_duplicates(str(tmp_path / "a"))


def test_nan_is_refused():
    X = np.ones((3, 2))
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"X holds NaN or inf \(row 2\)"):
        exact_duplicates(X)


def test_exact_copies_among_real_features(digit_copies):
    """Of the 60 near-copies of real digits, every third is an exact copy: only those are exact duplicates."""
    X, sources, _ = digit_copies
    _, groups = exact_duplicates(X)
    exact = {(int(sources[k]), 600 + k) for k in range(2, len(sources), 3)}
    assert {tuple(g.tolist()) for g in groups} == exact
