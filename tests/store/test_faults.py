"""Kill every writing path at every point it reaches, rerun it, and compare with an uninterrupted run, bit for bit.

The kill points are not guessed: an uninterrupted run is traced (every rename, directory exchange, removal and
Lance write, commit, column change and config update it makes), and each of those calls is killed before, after
and, for Lance's native calls, during. See docs/reliability.md.
"""

from __future__ import annotations

import fault_jobs
import numpy as np
import pytest
from fault_injection import KILLED, kill_points, run

JOBS = {
    "describe": (fault_jobs.describe_job, None, None),
    "distributed describe": (fault_jobs.distributed_describe_job, None, None),
    "append": (fault_jobs.append_job, None, None),
    "add_column": (fault_jobs.add_column_job, None, None),
    "from_arrays(overwrite=True)": (fault_jobs.overwrite_job, fault_jobs.overwrite_setup, fault_jobs.overwrite_state),
    "HierarchicalKMeans checkpoint": (fault_jobs.checkpoint_job, None, None),
    "CLI commands": (fault_jobs.cli_job, None, None),
}


def _result(directory):
    with np.load(directory / "result.npz") as arrays:
        return {name: arrays[name] for name in arrays.files}


def _fresh(tmp_path, name, setup):
    directory = tmp_path / name
    directory.mkdir()
    if setup is not None:
        assert run(setup, str(directory))[0] == 0
    return directory


@pytest.mark.parametrize("name", list(JOBS))
def test_killed_at_every_point_then_rerun_equals_uninterrupted(tmp_path, name, full_run):
    job, setup, state_after_kill = JOBS[name]
    reference_dir = _fresh(tmp_path, "reference", setup)
    code, trace = run(job, str(reference_dir))
    assert code == 0 and trace, f"the uninterrupted {name} run failed"
    reference = _result(reference_dir)
    points = kill_points(trace)
    if name == "CLI commands" and not full_run:
        # ~60 points of ~1 s each: make test kills every call once (before odd calls, after even ones) and
        # during every call into Lance; --full at every point
        points = [(call, when) for call, when in points if when == "during" or (when == "before") == (call % 2 == 1)]
    killed = 0
    for number, (call, when) in enumerate(points):
        directory = _fresh(tmp_path, f"kill{number}", setup)
        code, _ = run(job, str(directory), kill=(call, when))
        point = f"{name}: kill {when} call {call} ({trace[call - 1]})"
        assert code in ((KILLED, 0) if when == "during" else (KILLED,)), f"{point} ended with {code}"
        killed += code == KILLED
        if state_after_kill is not None:
            assert run(state_after_kill, str(directory))[0] == 0, f"{point}: bad state after the kill"
        assert run(job, str(directory))[0] == 0, f"{point}: the rerun failed"
        got = _result(directory)
        assert got.keys() == reference.keys(), point
        for key, expected in reference.items():
            assert got[key].dtype == expected.dtype and got[key].tobytes() == expected.tobytes(), f"{point}: {key}"
    assert killed >= len(points) * 2 // 3
