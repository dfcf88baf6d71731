"""Without ``fcntl`` (Windows has none), curata imports and its tables are still locked, one writer at a time."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

_WITHOUT_FCNTL = 'import sys\nsys.modules["fcntl"] = None  # as on Windows: "import fcntl" raises ImportError\n'

_HOLDER = _WITHOUT_FCNTL + textwrap.dedent(
    """
    import pathlib, time
    import numpy as np
    import curata
    from curata.store import locking

    assert locking.fcntl is None
    path = pathlib.Path(sys.argv[1])
    table = curata.VectorTable.from_arrays(path, np.ones((5, 3)))
    table.add_column("c", np.arange(5))
    with locking.write_lock(path):
        (path.parent / "holding").touch()
        time.sleep(120)
    """
)

_SECOND = _WITHOUT_FCNTL + textwrap.dedent(
    """
    import numpy as np
    import curata
    from curata.store import locking

    try:
        with locking.write_lock(sys.argv[1], wait=0):
            curata.VectorTable.open(sys.argv[1]).add_column("d", np.arange(5))
    except curata.TableLockedError as error:
        print("refused:", error)
        sys.exit(3)
    print("written")
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="simulates a platform without fcntl on a POSIX system")
def test_without_fcntl_tables_are_written_and_a_second_writer_is_refused(tmp_path):
    """``import curata`` used to fail at once: locking.py imported fcntl at module level."""
    path = str(tmp_path / "t")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, path], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "holding").exists():
            if holder.poll() is not None:
                pytest.fail(f"the holder ended with {holder.returncode}: {holder.stderr.read()[-2000:]}")
            assert time.monotonic() < deadline, "the holder never took the lock"
            time.sleep(0.05)
        second = subprocess.run([sys.executable, "-c", _SECOND, path], capture_output=True, text=True, timeout=300)
        assert second.returncode == 3, second.stderr[-2000:]
        assert f"being written by process {holder.pid}" in second.stdout
    finally:
        holder.send_signal(signal.SIGKILL)  # the operating system releases a dead holder's lock
        holder.wait()
    third = subprocess.run([sys.executable, "-c", _SECOND, path], capture_output=True, text=True, timeout=300)
    assert third.returncode == 0 and "written" in third.stdout, third.stderr[-2000:]
