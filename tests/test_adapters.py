from __future__ import annotations

import numpy as np
import pytest

from curata import KMeans, cluster, select
from curata.adapters import add_to_hf, table_from_hf

datasets = pytest.importorskip("datasets")


def test_round_trip_through_a_hugging_face_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(1000, 8)).astype(np.float32)
    hf = datasets.Dataset.from_dict({"embedding": vectors.tolist(), "label": (np.arange(1000) % 4).tolist()})
    table = table_from_hf(hf, tmp_path / "t", label_column="label")
    assert len(table) == 1000
    np.testing.assert_array_equal(table.vectors(), vectors)
    clusters = cluster(table, KMeans(6, seed=0))
    picked = select(table, 10, seed=0)
    hf = add_to_hf(hf, "cluster", clusters)
    hf = add_to_hf(hf, "selected", np.ones(10, dtype=np.int64), rows=picked, fill=0)
    assert hf.column_names == ["embedding", "label", "cluster", "selected"]
    assert np.array_equal(np.asarray(hf["cluster"]), clusters)
    assert np.flatnonzero(np.asarray(hf["selected"])).tolist() == sorted(picked.tolist())
    hf = add_to_hf(hf, "cluster", np.zeros(1000, dtype=np.int64))  # replacing a column
    assert set(hf["cluster"]) == {0}


def test_bad_input(tmp_path):
    hf = datasets.Dataset.from_dict({"embedding": [[0.0, 1.0]]})
    with pytest.raises(KeyError, match="vector_column 'vec'"):
        table_from_hf(hf, tmp_path / "t", vector_column="vec")
    with pytest.raises(TypeError, match="Hugging Face"):
        table_from_hf(np.ones((2, 2)), tmp_path / "t")
    with pytest.raises(ValueError, match="one entry per row"):
        add_to_hf(hf, "c", [1, 2])
