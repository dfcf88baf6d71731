from __future__ import annotations

import numpy as np
import pytest

from curata import VectorTable, describe


def rows(count: int = 40, dim: int = 6) -> np.ndarray:
    return np.random.default_rng(0).normal(3.0, 1.0, (count, dim)).astype(np.float32)


class Fails:
    """Identity embedder that raises after ``calls`` batches."""

    def __init__(self, calls: int) -> None:
        self.calls = calls

    def __call__(self, batch):
        self.calls -= 1
        if self.calls < 0:
            raise RuntimeError("killed")
        return batch.float()

    def fingerprint(self) -> dict[str, str]:
        return {"kind": "identity"}


def test_l2_and_center_l2_round_trip(tmp_path):
    data = rows()
    plain = describe(data, Fails(10**6), tmp_path / "none", batch_size=8, progress=False)
    assert plain.normalization == "none" and np.array_equal(plain.vectors(), data)
    unit = describe(data, Fails(10**6), tmp_path / "l2", batch_size=8, normalize="l2", progress=False)
    assert unit.normalization == "l2"
    assert np.allclose(unit.vectors(), data / np.linalg.norm(data, axis=1, keepdims=True), atol=1e-6)
    assert np.array_equal(unit.vectors(raw=True), data)
    centred = describe(data, Fails(10**6), tmp_path / "c", batch_size=8, normalize="center+l2", progress=False)
    mean = data.astype(np.float64).mean(axis=0)
    assert np.allclose(centred.get_attr("normalize")["mean"], mean)
    expected = (data - mean) / np.linalg.norm(data - mean, axis=1, keepdims=True)
    assert np.allclose(centred.vectors(), expected, atol=1e-5)
    assert np.allclose(np.concatenate(list(centred.iter_vectors(7))), expected, atol=1e-5)
    assert np.allclose(centred.vectors([3, 1]), expected[[3, 1]], atol=1e-5)
    # rows appended later are given back with the recorded mean, not a new one
    extra = rows(3) + 10
    centred.append(np.arange(40, 43), np.zeros(3, np.int32), extra)
    again = VectorTable.open(tmp_path / "c")
    late = (extra - mean) / np.linalg.norm(extra - mean, axis=1, keepdims=True)
    assert np.allclose(again.vectors()[40:], late, atol=1e-5)
    with pytest.raises(ValueError, match="different job.*normalize"):
        describe(data, Fails(10**6), tmp_path / "l2", normalize="center+l2", progress=False)
    with pytest.raises(ValueError, match="normalize must be 'none', 'l2' or 'center\\+l2'"):
        describe(data, Fails(10**6), tmp_path / "x", normalize="l1", progress=False)


def test_a_crashed_centring_job_refuses_reads_then_resumes(tmp_path):
    data = rows()
    with pytest.raises(RuntimeError, match="killed"):
        describe(data, Fails(2), tmp_path / "c", batch_size=8, commit_rows=8, normalize="center+l2", progress=False)
    half = VectorTable.open(tmp_path / "c")
    assert len(half) == 16 and half.normalization == "center+l2"
    with pytest.raises(ValueError, match="mean is not computed yet"):
        half.vectors()
    done = describe(data, Fails(10**6), tmp_path / "c", batch_size=8, normalize="center+l2", progress=False)
    mean = data.astype(np.float64).mean(axis=0)
    assert np.allclose(done.get_attr("normalize")["mean"], mean)


def test_float16_tables_are_normalised_in_their_dtype(tmp_path):
    data = rows()
    table = describe(data, Fails(10**6), tmp_path / "h", dtype="float16", normalize="l2", progress=False)
    vectors = table.vectors()
    assert vectors.dtype == np.float16 and np.allclose(np.linalg.norm(vectors.astype(np.float32), axis=1), 1, atol=1e-3)
