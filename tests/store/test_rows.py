from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from curata import HierarchicalKMeans, KMeans, VectorTable
from curata.clustering.kmeans import assign
from curata.store.rows import MemoryShard, StreamedShard, TableRows, as_matrix, load_shard

HERE = Path(__file__).parents[1]


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=4, size=(12, 64))
    x = (centers[rng.integers(0, 12, 40000)] + rng.normal(size=(40000, 64))).astype(np.float16)
    return VectorTable.from_arrays(tmp_path / "t", x)


def test_table_rows_reads_dense_and_sparse_subsets(table):
    full = table.vectors()
    for positions in (np.arange(5, 39000, 3), np.array([0, 7, 15000, 39999]), np.arange(100, 200)):
        rows = TableRows(table, positions)
        assert np.array_equal(rows.read(0, len(rows)), full[positions])
        assert np.array_equal(rows.subset([1, 2]).read(0, 2), full[positions[[1, 2]]])
    window = TableRows(table, start=50, stop=80)
    assert len(window) == 30 and np.array_equal(window.take([0, 29]), full[[50, 79]])
    with pytest.raises(ValueError, match="sorted, distinct"):
        TableRows(table, [3, 1])


def test_streamed_blocks_equal_memory_blocks(table):
    streamed = load_shard(table, 1000, 39000, "cosine", "cpu", memory_budget=6 << 20, chunk=512)
    memory = load_shard(table, 1000, 39000, "cosine", "cpu")
    assert isinstance(streamed, StreamedShard) and isinstance(memory, MemoryShard)
    for (s1, b1, q1), (s2, b2, q2) in zip(streamed.blocks(512), memory.blocks(512), strict=True):
        assert s1 == s2 and q1 is None and q2 is None
        assert torch.equal(b1, b2)
    assert torch.equal(streamed.materialize().x, memory.x)
    local = torch.tensor([0, 10, 37999])
    assert torch.equal(streamed.take(local), memory.take(local))
    assert isinstance(streamed.subset(local, 0, 3, 6 << 20), MemoryShard)
    assert torch.equal(as_matrix(table, 2, 4), torch.from_numpy(table.vectors(slice(2, 4))).float())


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_kmeans_under_a_budget_matches_in_memory(table, metric):
    budget = 6 << 20  # 3.8 MB for per-row arrays, the rest for windows; the float32 rows take 10.4 MB
    a = KMeans(12, n_iter=6, metric=metric, seed=1).fit(table)
    b = KMeans(12, n_iter=6, metric=metric, seed=1, memory_budget=budget).fit(table)
    assert np.array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, atol=1e-5)
    assert b.inertia_ == pytest.approx(a.inertia_, rel=1e-6)
    assert np.array_equal(b.predict(table), a.labels_)
    labels, _ = assign(table, a.cluster_centers_, metric=metric, memory_budget=budget)
    assert np.array_equal(labels, a.labels_)


def test_hierarchical_under_a_budget_matches_in_memory(table):
    # windows hold whole chunks of 1,024 rows, so every float sum is the in-memory one: the same tree exactly
    params = dict(n_resampling_steps=2, n_iter=4, seed=5, chunk_size=1024)
    a = HierarchicalKMeans([40, 6], **params).fit(table)
    b = HierarchicalKMeans([40, 6], memory_budget=6 << 20, **params).fit(table)
    assert np.array_equal(a.labels_, b.labels_)
    for ca, cb in zip(a.centroids_, b.centroids_, strict=True):
        np.testing.assert_allclose(ca, cb, atol=1e-5)


def test_budget_is_checked_before_work(table):
    with pytest.raises(ValueError, match="memory_budget must be an int >= 1048576"):
        KMeans(3, memory_budget=1000).fit(table)
    with pytest.raises(TypeError, match="memory_budget"):
        KMeans(3, memory_budget=2.5e6).fit(table)
    big = VectorTable.from_arrays(table.path.parent / "big", np.zeros((20000, 64), dtype=np.float32))
    with pytest.raises(ValueError, match="memory_budget .* is too small for a table of 20000 rows"):
        KMeans(3, memory_budget=1 << 20).fit(big)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("kind", ["kmeans", "hierarchical"])
def test_peak_memory_stays_under_the_budget(tmp_path, kind):
    rng = np.random.default_rng(1)
    rows, dim = 300_000, 128  # 154 MB of float32 rows
    VectorTable.from_arrays(tmp_path / "big", rng.standard_normal((rows, dim), dtype=np.float32))
    budget = 48 << 20  # 29 MB of per-row arrays, the rest for windows

    def run(budget_arg: str) -> tuple[int, np.lib.npyio.NpzFile]:
        out = tmp_path / f"{budget_arg}.npz"
        command = [sys.executable, str(HERE / "memory_job.py"), str(tmp_path / "big"), str(out), budget_arg, kind]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])["grown"], np.load(out)

    grown, streamed = run(str(budget))
    grown_in_memory, in_memory = run("none")
    table_bytes = rows * dim * 4
    # the budget, plus slack for the table reader's buffers and the (k, dim) centroids
    assert grown < budget + (8 << 20) < table_bytes / 2, (grown, grown_in_memory)
    assert grown_in_memory > table_bytes
    assert np.array_equal(streamed["labels"], in_memory["labels"])
    np.testing.assert_allclose(streamed["centers"], in_memory["centers"], atol=1e-5)
