import numpy as np
import pytest
import threadpoolctl
import torch

import curata.clustering.nearest
from curata.clustering import cpu_gemm
from curata.clustering.cpu_gemm import numpy_gemm_preferred, single_threaded_blas
from curata.clustering.nearest import nearest_centroids
from curata.store.rows import MemoryShard


@pytest.fixture
def fresh_choice():
    numpy_gemm_preferred.cache_clear()
    yield
    numpy_gemm_preferred.cache_clear()


@pytest.mark.parametrize(("value", "expected"), [("torch", False), ("numpy", True), (" NumPy ", True)])
def test_environment_forces_the_choice(monkeypatch, fresh_choice, value, expected):
    monkeypatch.setenv("CURATA_CPU_GEMM", value)
    assert numpy_gemm_preferred() is expected


def test_bad_environment_value_is_named(monkeypatch, fresh_choice):
    monkeypatch.setenv("CURATA_CPU_GEMM", "blis")
    with pytest.raises(ValueError, match="CURATA_CPU_GEMM must be 'torch' or 'numpy', got 'blis'"):
        numpy_gemm_preferred()


def test_intel_cpus_keep_torch(monkeypatch, fresh_choice):
    monkeypatch.delenv("CURATA_CPU_GEMM", raising=False)
    monkeypatch.setattr(cpu_gemm, "_cpu_vendor", lambda: "GenuineIntel")
    assert numpy_gemm_preferred() is False


def _blas_threads() -> list[int]:
    return [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]


def test_single_threaded_blas_restores_the_thread_count():
    before = _blas_threads()
    with single_threaded_blas():
        assert all(n == 1 for n in _blas_threads())
    assert _blas_threads() == before


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_both_gemms_find_the_true_nearest_centroid_and_sums(monkeypatch, metric):
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((3000, 48), dtype=np.float32) + 3.0)
    centers = torch.from_numpy(rng.standard_normal((700, 48), dtype=np.float32) + 3.0)  # 2 tiles
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
        centers = torch.nn.functional.normalize(centers, dim=1)
    exact = torch.cdist(x.double(), centers.double()) ** 2
    want_d2, want_labels = exact.min(dim=1)
    results = []
    for numpy_gemm in (False, True):
        monkeypatch.setattr(curata.clustering.nearest, "numpy_gemm_preferred", lambda numpy_gemm=numpy_gemm: numpy_gemm)
        shard = MemoryShard(x, metric, 0, len(x))
        labels, d2, sums = nearest_centroids(shard, centers, metric, 256, True)
        assert torch.equal(labels, want_labels)
        assert torch.allclose(d2.double(), want_d2, rtol=1e-4, atol=1e-4)
        want_sums = torch.zeros(len(centers), 48, dtype=torch.float64).index_add_(0, want_labels, x.double())
        assert sums is not None
        assert torch.allclose(sums[:, :-1], want_sums, rtol=1e-5, atol=1e-4)
        assert torch.equal(sums[:, -1], torch.bincount(want_labels, minlength=len(centers)).double())
        results.append(labels)
    assert torch.equal(results[0], results[1])
