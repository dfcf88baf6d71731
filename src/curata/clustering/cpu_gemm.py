"""Which GEMM computes the score blocks of the CPU workers in ``curata.clustering.nearest``: our AVX-512 panel
kernel, torch's BLAS, or numpy's OpenBLAS.

On CPUs with AVX-512 (and the compiled ``_score_scan`` extension), blocks of at least 32 centroids go through our
own kernel (8 rows x 32 centroids of accumulators in registers, the centroids packed in panels): single-threaded on
this machine's AMD EPYC (family 26) it ran at 1.5-2x the speed of numpy's OpenBLAS, whose kernels there are its
AVX2 ones (e.g. 1,024 x 128 rows at k = 1,000: 248 against 131 GFLOP/s). Otherwise, torch's x86 wheels carry
Intel MKL, whose sgemm ran 15-25 % below numpy's OpenBLAS on AMD CPUs single-threaded at the shapes of a score
block; on Intel CPUs MKL is the reference. So numpy's GEMM is used when the CPU is not Intel, torch's BLAS is MKL
and numpy's is OpenBLAS. ``CURATA_CPU_GEMM=panel``, ``=numpy`` or ``=torch`` forces a choice. The choice is fixed
for a process, so results stay bit-identical from run to run; labels do not depend on it (near-ties are settled by
exact sums of squares).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator

import numpy as np
import torch
from threadpoolctl import ThreadpoolController

__all__ = ["numpy_gemm_preferred", "panel_gemm_preferred", "single_threaded_blas"]

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


_CHOICES = ("panel", "numpy", "torch")


def _forced() -> str:
    forced = os.environ.get(_ENV, "").strip().lower()
    if forced and forced not in _CHOICES:
        raise ValueError(f"{_ENV} must be 'panel', 'numpy' or 'torch', got {forced!r}")
    return forced


def _panel_kernel_runs() -> bool:
    try:
        from curata.clustering import _score_scan
    except ImportError:
        return False
    return bool(_score_scan.avx512())


@functools.cache
def panel_gemm_preferred() -> bool:
    """Whether the CPU workers score blocks of at least 32 centroids with our AVX-512 panel kernel (see the module
    docstring): by default where it runs; ``CURATA_CPU_GEMM=numpy`` or ``=torch`` turns it off.

    Example:
        >>> isinstance(panel_gemm_preferred(), bool)
        True
    """
    forced = _forced()
    runs = _panel_kernel_runs()
    if forced == "panel" and not runs:
        raise ValueError(f"{_ENV}=panel needs the compiled curata.clustering._score_scan and a CPU with AVX-512")
    return runs and forced in ("", "panel")


@functools.cache
def numpy_gemm_preferred() -> bool:
    """Whether the CPU workers run their BLAS GEMMs (blocks the panel kernel does not take) through numpy's OpenBLAS
    rather than torch (see the module docstring).

    Example:
        >>> isinstance(numpy_gemm_preferred(), bool)
        True
    """
    forced = _forced()
    if forced in ("torch", "numpy"):
        return forced == "numpy"
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
