"""curata leaves glibc's allocator settings as they were: select and in-memory fits must not tune them for the
whole process (a training loop that runs after them keeps glibc's adaptive mmap threshold). Only a table
streamed under a memory budget still sets the threshold (see rows.keep_streamed_memory_in_budget)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

_PROBE = textwrap.dedent(
    """
    import ctypes, pathlib, sys
    import numpy as np
    import curata

    libc = ctypes.CDLL("libc.so.6")
    fields = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")


    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in fields]


    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]


    def second_block_is_mapped(size):
        # glibc's adaptive threshold: freeing a block it had mapped raises the mmap threshold to that block's
        # size, so the next block of that size comes from the heap. A threshold fixed with mallopt keeps
        # mapping every block above it.
        libc.free(libc.malloc(size))
        before = libc.mallinfo2().hblks
        block = libc.malloc(size)
        mapped = libc.mallinfo2().hblks > before
        libc.free(block)
        return mapped


    rng = np.random.default_rng(0)
    x = rng.standard_normal((30_000, 16), dtype=np.float32)
    curata.select(x, 20)
    table = curata.VectorTable.from_arrays(pathlib.Path(sys.argv[1]) / "t", x)
    curata.select(table, 20, method="kcenter")
    curata.KMeans(8, seed=0, n_iter=3).fit(table)
    print("mapped" if second_block_is_mapped(16 << 20) else "heap")
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_select_and_in_memory_fits_leave_the_mmap_threshold_adaptive(tmp_path):
    """select used to call mallopt(M_MMAP_THRESHOLD, 1 MiB) for good: every later 16 MiB block of the process was
    then mapped and unmapped again, each time."""
    done = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path)], capture_output=True, text=True, timeout=600)
    if "undefined symbol: mallinfo2" in done.stderr or "OSError: libc.so.6" in done.stderr:
        pytest.skip("not glibc >= 2.33")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "heap"
