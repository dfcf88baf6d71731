from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from launch import torchrun

from curata import VectorTable
from curata.embedding.shards import commit_uncommitted_shards

HERE = Path(__file__).parents[1]
pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")


def rows(table: VectorTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.stack([table.column("idx"), table.column("idx_vector")], axis=1), table.column("label"), table.vectors()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[np.ndarray, ...]:
    from describe_job import run

    path = tmp_path_factory.mktemp("one") / "table"
    run(str(path))
    return rows(VectorTable.open(path))


def test_two_ranks_give_the_one_process_table(tmp_path, reference):
    result = torchrun("describe_job.py", str(tmp_path / "table"))
    assert result.returncode == 0, result.stderr[-3000:]
    table = VectorTable.open(tmp_path / "table")
    keys, labels, vectors = rows(table)
    assert np.array_equal(keys, reference[0]) and np.array_equal(labels, reference[1])  # same rows, same order
    # the same vectors up to float rounding: batches are cut at other samples, and ranks run one thread
    np.testing.assert_allclose(vectors, reference[2], rtol=1e-5, atol=1e-6)
    assert not (tmp_path / "table" / "_curata_shards").exists()
    # created (data, then metadata: versions 1 and 2), then one commit of all fragments (3); older versions are
    # deleted after each write, so only the last ones are left
    versions = table._latest().versions()
    assert versions[-1]["version"] == 3 and versions[-1]["metadata"]["total_data_file_rows"] == "600"


def test_a_killed_rank_resumes_without_duplicates(tmp_path, reference):
    crashed = torchrun("describe_job.py", str(tmp_path / "table"), "1", "130")
    assert crashed.returncode != 0
    table = VectorTable.open(tmp_path / "table")
    assert len(table) == 0  # nothing committed: the rows of finished batches wait in fragments
    assert len(list((tmp_path / "table" / "_curata_shards").glob("*.json"))) > 0
    result = torchrun("describe_job.py", str(tmp_path / "table"))
    assert result.returncode == 0, result.stderr[-3000:]
    keys, labels, vectors = rows(VectorTable.open(tmp_path / "table"))
    assert len(np.unique(keys, axis=0)) == len(keys) == len(reference[0])
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    assert np.array_equal(keys[order], reference[0])
    assert np.array_equal(labels[order], reference[1])
    np.testing.assert_allclose(vectors[order], reference[2], rtol=1e-5, atol=1e-6)


def test_one_process_adopts_the_fragments_of_a_crashed_run(tmp_path, reference):
    from describe_job import run

    assert torchrun("describe_job.py", str(tmp_path / "table"), "0", "40").returncode != 0
    run(str(tmp_path / "table"))
    keys, _, vectors = rows(VectorTable.open(tmp_path / "table"))
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    assert np.array_equal(keys[order], reference[0])
    np.testing.assert_allclose(vectors[order], reference[2], rtol=1e-5, atol=1e-6)
    assert commit_uncommitted_shards(VectorTable.open(tmp_path / "table")) == 0


def test_ranks_that_see_other_data_all_refuse_before_writing(tmp_path):
    result = torchrun("describe_job.py", str(tmp_path / "table"), "skew")
    assert result.returncode != 0
    assert result.stderr.count("ranks disagree on the data's content") == 2, result.stderr[-3000:]
    assert not (tmp_path / "table").exists()
