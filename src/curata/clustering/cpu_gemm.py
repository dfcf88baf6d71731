"""Which BLAS runs the score GEMMs of the CPU workers in ``curata.clustering.nearest``: torch's, or numpy's OpenBLAS.

torch's x86 wheels carry Intel MKL, whose sgemm ran 15-25 % below numpy's OpenBLAS on an AMD EPYC (Zen 3) here,
single-threaded at the shapes of a score block; on Intel CPUs MKL is the reference. So numpy's GEMM is used when
the CPU is not Intel, torch's BLAS is MKL and numpy's is OpenBLAS; ``CURATA_CPU_GEMM=torch`` or ``=numpy`` forces a
choice. The choice is fixed for a process, so results stay bit-identical from run to run.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator

import numpy as np
import torch
from threadpoolctl import ThreadpoolController

__all__ = ["numpy_gemm_preferred", "single_threaded_blas"]

_ENV = "CURATA_CPU_GEMM"


def _cpu_vendor() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("vendor_id")), "")
    except OSError:
        return ""


def _numpy_blas() -> str:
    try:
        config = np.show_config(mode="dicts")
    except TypeError:  # numpy < 1.26 has no "dicts" mode
        return ""
    return str(config.get("Build Dependencies", {}).get("blas", {}).get("name", "")).lower()


@functools.cache
def numpy_gemm_preferred() -> bool:
    """Whether the CPU workers run their GEMMs through numpy (OpenBLAS) rather than torch (see the module docstring).

    Example:
        >>> isinstance(numpy_gemm_preferred(), bool)
        True
    """
    forced = os.environ.get(_ENV, "").strip().lower()
    if forced in ("torch", "numpy"):
        return forced == "numpy"
    if forced:
        raise ValueError(f"{_ENV} must be 'torch' or 'numpy', got {forced!r}")
    return (
        "openblas" in _numpy_blas() and torch.backends.mkl.is_available() and _cpu_vendor() not in ("", "GenuineIntel")
    )


@functools.cache
def _threadpool_controller() -> ThreadpoolController:
    return ThreadpoolController()


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Within the block the BLAS libraries numpy loaded run one thread per call (the workers share out the cores).

    Example:
        >>> with single_threaded_blas():
        ...     _ = np.ones((2, 2), np.float32) @ np.ones((2, 2), np.float32)
    """
    with _threadpool_controller().limit(limits=1, user_api="blas"):
        yield
