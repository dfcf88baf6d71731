from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curata import VectorTable, table_from_embeddings


@pytest.fixture
def shards(tmp_path):
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=(rows, 8)).astype(np.float32) for rows in (70, 0, 45, 100)]
    paths = []
    for i, part in enumerate(parts):
        np.save(tmp_path / f"part{i}.npy", part)
        paths.append(tmp_path / f"part{i}.npy")
    return paths, np.concatenate(parts)


def test_npy_shards_become_one_table_in_order(tmp_path, shards):
    paths, expected = shards
    table = table_from_embeddings(paths, tmp_path / "t", chunk_rows=32)
    assert np.array_equal(table.vectors(), expected) and np.array_equal(table.column("idx"), np.arange(215))
    again = table_from_embeddings(paths, tmp_path / "t", chunk_rows=32)  # complete: nothing appended
    assert len(again) == 215
    half = table_from_embeddings(paths, tmp_path / "h", dtype="float16")
    assert half.dtype == "float16" and np.allclose(half.vectors(), expected, atol=1e-2)


def test_parquet_shards_with_labels(tmp_path):
    rng = np.random.default_rng(1)
    paths, vectors, labels = [], [], []
    for i, rows in enumerate((30, 50)):
        part = rng.normal(size=(rows, 5)).astype(np.float32)
        y = rng.integers(0, 3, rows)
        pq.write_table(pa.table({"embedding": list(part), "label": y}), tmp_path / f"p{i}.parquet")
        paths.append(tmp_path / f"p{i}.parquet")
        vectors.append(part)
        labels.append(y)
    table = table_from_embeddings(paths, tmp_path / "t", chunk_rows=16)
    assert np.allclose(table.vectors(), np.concatenate(vectors)) and table.has_labels
    assert np.array_equal(table.column("label"), np.concatenate(labels))


def test_a_crash_between_commits_resumes_without_losing_or_repeating_rows(tmp_path, shards, monkeypatch):
    paths, expected = shards
    appended = []
    real_append = VectorTable.append

    def crash_on_the_fourth(self, *args, **kwargs):
        if len(appended) == 3:
            raise KeyboardInterrupt("killed")
        appended.append(1)
        return real_append(self, *args, **kwargs)

    monkeypatch.setattr(VectorTable, "append", crash_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        table_from_embeddings(paths, tmp_path / "t", chunk_rows=32)
    monkeypatch.setattr(VectorTable, "append", real_append)
    assert len(VectorTable.open(tmp_path / "t")) == 32 + 32 + 6  # part0 in 3 commits
    table = table_from_embeddings(paths, tmp_path / "t", chunk_rows=20)  # other chunks: still no row twice
    assert np.array_equal(table.column("idx"), np.arange(215)) and np.array_equal(table.vectors(), expected)


def test_bad_files_stop_the_job_before_any_write(tmp_path, shards):
    paths, _ = shards
    np.save(tmp_path / "wide.npy", np.zeros((3, 9), np.float32))
    with pytest.raises(ValueError, match="different dimensions"):
        table_from_embeddings([paths[0], tmp_path / "wide.npy"], tmp_path / "t")
    bad = np.ones((50, 8), np.float32)
    bad[41, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match=r"nan.npy' holds NaN or inf \(row 41\)"):
        table_from_embeddings([paths[0], tmp_path / "nan.npy"], tmp_path / "t", chunk_rows=16)
    with pytest.raises(FileNotFoundError, match="missing.npy' does not exist"):
        table_from_embeddings([tmp_path / "missing.npy"], tmp_path / "t")
    np.save(tmp_path / "ints.npy", np.ones((3, 8), np.int64))
    with pytest.raises(ValueError, match="2-D float array"):
        table_from_embeddings([tmp_path / "ints.npy"], tmp_path / "t")
    with pytest.raises(ValueError, match="non-empty list"):
        table_from_embeddings(str(paths[0]), tmp_path / "t")
    assert not (tmp_path / "t").exists()
    table_from_embeddings(paths[:1], tmp_path / "t")
    with pytest.raises(ValueError, match="built from other files"):
        table_from_embeddings(paths, tmp_path / "t")
