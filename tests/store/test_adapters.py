from __future__ import annotations

import numpy as np
import pytest

from curata import KMeans, cluster, select
from curata.store.adapters import add_to_hf, table_from_hf

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


def test_pixeltable_round_trip_stops_its_server(tmp_path):
    pytest.importorskip("pixeltable")
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "PIXELTABLE_HOME": str(tmp_path / "pxt"), "PYTHONPATH": str(Path(__file__).parents[1])}
    result = subprocess.run(
        [sys.executable, str(Path(__file__).parents[1] / "pixeltable_job.py"), str(tmp_path / "t")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["rows"] == 1000 and out["vectors_equal"] and out["table_vectors_equal"] and out["clusters_equal"]
    assert out["selected"] == out["chosen"] and len(out["chosen"]) == 10
    running = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    assert str(tmp_path / "pxt") not in running  # the embedded Postgres was stopped
