"""Helpers for tests that start other processes: torchrun on CPU (gloo), free ports, a known teardown abort."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


# A process that used gloo can abort while Python finalises, after its work is done: a gloo worker thread that takes
# the GIL then is ended by pthread_exit, which unwinds through a noexcept C++ frame (gdb: "pt_gloo_runloop", SIGABRT
# in __do_cancel while the main thread is in Py_FinalizeEx). Measured with torch 2.13 on this CPU: 2 of 16 plain
# torchrun DDP runs with backward passes, 0 of 16 without, about 1 Lightning ddp_spawn run in 7. Tests of what such
# a process produced accept this exit and check the outputs, which every rank wrote before tearing down.
TEARDOWN_ABORT = "terminate called without an active exception"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(script: str, *args: str, processes: int = 2) -> subprocess.CompletedProcess:
    """Run tests/SCRIPT under torchrun on CPU (gloo), one thread per process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={processes}",
        f"--master_port={free_port()}",
        str(HERE / script),
        *args,
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
