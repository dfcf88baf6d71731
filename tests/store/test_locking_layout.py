"""Lock files lie only where the user pointed, and none is left after a clean run."""

from __future__ import annotations

import os
import time

import fault_jobs
import numpy as np
import pytest
from fault_injection import start

from curata import TableLockedError, VectorTable
from curata.cli.main import main
from curata.store.locking import lock_file, write_lock


def _lock_files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.lock"))


def test_library_writes_leave_no_lock_file(tmp_path):
    """``.t.lock`` used to stay beside every table written once."""
    table = VectorTable.from_arrays(tmp_path / "t", np.ones((4, 2)), labels=[0, 1, 0, 1])
    table.append([9], [0], np.zeros((1, 2)), labels=[1])
    table.add_column("c", np.arange(5))
    table.set_attr("k", 1)
    VectorTable.from_arrays(tmp_path / "t", np.ones((2, 2)), overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


def test_cli_run_locks_inside_out_and_leaves_nothing(tmp_path, monkeypatch):
    """A CLI run used to leave ``.r.lock`` beside ``--out r`` and ``r/.vectors.lock`` inside it."""
    import curata.clustering.clusterize

    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((300, 4), dtype=np.float32))
    seen = []
    real_cluster = curata.clustering.clusterize.cluster

    def spying_cluster(*args, **kwargs):
        seen.append(_lock_files(tmp_path))
        return real_cluster(*args, **kwargs)

    monkeypatch.setattr(curata.clustering.clusterize, "cluster", spying_cluster)
    main(["cluster", "--vectors", "x.npy", "--out", "r", "--levels", "5"])
    assert seen == [["r/.curata.lock"]]  # while the command runs: its lock, inside --out
    assert _lock_files(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["r", "x.npy"]


def test_a_waiter_on_a_deleted_lock_file_never_shares_the_lock(tmp_path):
    table = tmp_path / "t"
    with write_lock(table):
        waiter = start(fault_jobs.hold_lock_job, str(tmp_path), str(table), 3)
        time.sleep(1.0)  # the waiter has opened the lock file and is waiting on it
    deadline = time.monotonic() + 60
    while not (tmp_path / "holding").exists():
        assert time.monotonic() < deadline and waiter.exitcode is None
        time.sleep(0.01)
    with pytest.raises(TableLockedError, match=f"process {waiter.pid}"):
        with write_lock(table, wait=0):
            pass
    waiter.join(60)
    assert waiter.exitcode == 0 and not lock_file(table).exists()


def test_inside_lock_of_a_missing_directory_is_removed_with_it(tmp_path):
    run = tmp_path / "run"
    with write_lock(run, wait=0, inside=True):
        assert os.listdir(run) == [".curata.lock"]
    assert not run.exists()
    run.mkdir()
    (run / "kept").touch()
    with write_lock(run, wait=0, inside=True):
        pass
    assert os.listdir(run) == ["kept"]
