"""One writer at a time: the lock itself, then two real writers at once on every writing path."""

from __future__ import annotations

import os
import signal
import time

import fault_jobs
import numpy as np
import pytest
from fault_injection import run, start

from curata import TableLockedError, VectorTable
from curata.store.locking import holds_lock, lock_file, write_lock


def _wait_for(file, seconds=60):
    deadline = time.monotonic() + seconds
    while not file.exists():
        assert time.monotonic() < deadline, f"{file} never appeared"
        time.sleep(0.01)


def _finish(*processes, timeout=120):
    for process in processes:
        process.join(timeout)
        assert process.exitcode == 0, f"a writer ended with {process.exitcode}"


def test_lock_is_reentrant_names_its_holder_and_dies_with_it(tmp_path):
    table = tmp_path / "t"
    with write_lock(table), write_lock(table):
        assert holds_lock(table)
    assert not holds_lock(table)
    holder = start(fault_jobs.hold_lock_job, str(tmp_path), str(table), 60)
    _wait_for(tmp_path / "holding")
    began = time.monotonic()
    with pytest.raises(TableLockedError, match=rf"being written by process {holder.pid} on .*hold_lock_job|process"):
        with write_lock(table, wait=0.3):
            pass
    assert 0.3 <= time.monotonic() - began < 10
    os.kill(holder.pid, signal.SIGKILL)  # the operating system releases a dead holder's lock
    holder.join()
    with write_lock(table, wait=5):  # the killed holder's lock file is reused, then deleted
        assert lock_file(table).exists()
    assert not lock_file(table).exists()


def test_two_describe_jobs_on_one_path_never_duplicate_rows(tmp_path):
    """Both used to exit 0 with 960 duplicate (idx, idx_vector) rows out of 2,560; now the second is refused."""
    first = start(fault_jobs.slow_describe_job, str(tmp_path), "first")
    _wait_for(tmp_path / ".vectors.lock")
    time.sleep(0.2)
    second = start(fault_jobs.slow_describe_job, str(tmp_path), "second")
    _finish(first, second)
    assert not (tmp_path / "first.refused").exists()
    assert "is being written by process" in (tmp_path / "second.refused").read_text()
    table = VectorTable.open(tmp_path / "vectors")
    assert table.column("idx").tolist() == list(range(fault_jobs.ROWS))
    reference = tmp_path / "reference"
    reference.mkdir()
    assert run(fault_jobs.describe_job, str(reference))[0] == 0
    assert np.array_equal(table.vectors(), VectorTable.open(reference / "vectors").vectors())


def test_distributed_describe_refused_on_every_rank_while_another_job_writes(tmp_path):
    holder = start(fault_jobs.hold_lock_job, str(tmp_path), str(tmp_path / "vectors"), 60)
    _wait_for(tmp_path / "holding")
    code, _ = run(fault_jobs.distributed_describe_job, str(tmp_path), timeout=90)  # no rank waits at a barrier
    assert code == 1 and not (tmp_path / "vectors").exists()
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()


def test_two_appenders_keep_every_row_once(tmp_path):
    VectorTable.from_arrays(tmp_path / "t", np.zeros((1, 8)), ids=[-1], labels=[0])
    writers = [start(fault_jobs.appender_job, str(tmp_path), first) for first in (0, 1000)]
    _finish(*writers)
    ids = VectorTable.open(tmp_path / "t").column("idx")
    assert sorted(ids.tolist()) == [-1, *range(100), *range(1000, 1100)]


def test_column_writer_beside_an_appender_never_leaves_a_short_column(tmp_path):
    VectorTable.from_arrays(tmp_path / "t", np.zeros((5, 8)), labels=np.zeros(5, dtype=int))
    writers = [start(fault_jobs.appender_job, str(tmp_path), 0), start(fault_jobs.column_writer_job, str(tmp_path))]
    _finish(*writers)
    table = VectorTable.open(tmp_path / "t")
    assert len(table) == 105 and "row" in table.columns
    rows = table.column("row")
    assert len(rows) == 105  # rows appended after the last column write read as null, never misaligned
    written = np.flatnonzero(~np.isnan(rows.astype(float)))
    assert np.array_equal(rows[written].astype(int), written)


def test_two_overwrites_leave_one_whole_table(tmp_path):
    VectorTable.from_arrays(tmp_path / "t", np.zeros((3, 4)))
    writers = [start(fault_jobs.overwriter_job, str(tmp_path), value) for value in (1.0, 2.0)]
    _finish(*writers)
    vectors = VectorTable.open(tmp_path / "t").vectors()
    assert vectors.shape == (50, 4) and len(np.unique(vectors)) == 1 and vectors[0, 0] in (1.0, 2.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


def test_two_cli_runs_into_one_directory(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((20000, 8), dtype=np.float32))
    first = start(fault_jobs.cli_cluster_job, str(tmp_path), "first")
    _wait_for(tmp_path / "r" / ".curata.lock")
    second = start(fault_jobs.cli_cluster_job, str(tmp_path), "second")
    _finish(first, second)
    refused = sorted(p.name for p in tmp_path.glob("*.refused"))
    assert refused in (["second.refused"], ["first.refused"]), refused
    assert len(np.load(tmp_path / "r" / "curated_ids.npy")) == 9


def test_two_fits_into_one_checkpoint(tmp_path):
    first = start(fault_jobs.checkpoint_fit_job, str(tmp_path), "first")
    _wait_for(tmp_path / ".checkpoint.lock")
    second = start(fault_jobs.checkpoint_fit_job, str(tmp_path), "second")
    _finish(first, second)
    assert [p.name for p in tmp_path.glob("*.refused")] in (["second.refused"], ["first.refused"])
