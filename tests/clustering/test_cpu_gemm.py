import numpy as np
import pytest
import threadpoolctl
import torch

import curata.clustering.nearest
from curata.clustering import cpu_gemm
from curata.clustering.cpu_gemm import numpy_gemm_preferred, panel_gemm_preferred, single_threaded_blas
from curata.clustering.fixed_point import from_fixed
from curata.clustering.nearest import nearest_centroids
from curata.store.rows import MemoryShard


@pytest.fixture
def fresh_choice():
    numpy_gemm_preferred.cache_clear()
    panel_gemm_preferred.cache_clear()
    yield
    numpy_gemm_preferred.cache_clear()
    panel_gemm_preferred.cache_clear()


@pytest.mark.parametrize(("value", "expected"), [("torch", False), ("numpy", True), (" NumPy ", True)])
def test_environment_forces_the_choice(monkeypatch, fresh_choice, value, expected):
    monkeypatch.setenv("CURATA_CPU_GEMM", value)
    assert numpy_gemm_preferred() is expected
    assert panel_gemm_preferred() is False


def test_panel_kernel_is_the_default_where_it_runs(monkeypatch, fresh_choice):
    monkeypatch.delenv("CURATA_CPU_GEMM", raising=False)
    runs = cpu_gemm._panel_kernel_runs()
    assert panel_gemm_preferred() is runs
    panel_gemm_preferred.cache_clear()
    monkeypatch.setenv("CURATA_CPU_GEMM", "panel")
    if runs:
        assert panel_gemm_preferred() is True
    else:
        with pytest.raises(ValueError, match="AVX-512"):
            panel_gemm_preferred()


def test_bad_environment_value_is_named(monkeypatch, fresh_choice):
    monkeypatch.setenv("CURATA_CPU_GEMM", "blis")
    with pytest.raises(ValueError, match="CURATA_CPU_GEMM must be 'panel', 'numpy' or 'torch', got 'blis'"):
        numpy_gemm_preferred()
    with pytest.raises(ValueError, match="got 'blis'"):
        panel_gemm_preferred()


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
def test_every_gemm_finds_the_true_nearest_centroid_and_sums(monkeypatch, metric):
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((3000, 48), dtype=np.float32) + 3.0)
    centers = torch.from_numpy(rng.standard_normal((700, 48), dtype=np.float32) + 3.0)  # 2 tiles
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
        centers = torch.nn.functional.normalize(centers, dim=1)
    exact = torch.cdist(x.double(), centers.double()) ** 2
    want_d2, want_labels = exact.min(dim=1)
    results = []
    choices = [(False, False), (True, False)] + ([(True, True)] if cpu_gemm._panel_kernel_runs() else [])
    for numpy_gemm, panel in choices:
        monkeypatch.setattr(curata.clustering.nearest, "numpy_gemm_preferred", lambda numpy_gemm=numpy_gemm: numpy_gemm)
        monkeypatch.setattr(curata.clustering.nearest, "panel_gemm_preferred", lambda panel=panel: panel)
        shard = MemoryShard(x, metric, 0, len(x))
        labels, d2, sums = nearest_centroids(shard, centers, metric, 256, True, sum_bits=40)
        assert torch.equal(labels, want_labels)
        assert torch.allclose(d2.double(), want_d2, rtol=1e-4, atol=1e-4)
        want_sums = torch.zeros(len(centers), 48, dtype=torch.float64).index_add_(0, want_labels, x.double())
        assert sums is not None
        assert torch.allclose(from_fixed(sums[:, :-1], 40), want_sums, rtol=1e-5, atol=1e-4)
        assert torch.equal(sums[:, -1], torch.bincount(want_labels, minlength=len(centers)))
        results.append(labels)
    assert all(torch.equal(results[0], other) for other in results[1:])


@pytest.mark.skipif(not cpu_gemm._panel_kernel_runs(), reason="the panel kernel needs AVX-512 and the C extension")
@pytest.mark.parametrize(("k", "metric", "bounds"), [(40, "l2", False), (300, "cosine", True), (2100, "l2", True)])
def test_panel_kernel_fits_what_the_blas_fits(monkeypatch, k, metric, bounds):
    """Its scores round differently, but the labels of every pass, hence the centroids, are the same."""
    from curata import KMeans

    rng = np.random.default_rng(k)
    X = (rng.standard_normal((5000, 40)) + rng.integers(0, 6, (5000, 1))).astype(np.float32)
    fits = []
    for panel in (True, False):
        monkeypatch.setattr(curata.clustering.nearest, "panel_gemm_preferred", lambda panel=panel: panel)
        fits.append(KMeans(k, n_iter=5, metric=metric, bounds=bounds, init="random", seed=2).fit(X))
    assert np.array_equal(fits[0].labels_, fits[1].labels_)
    assert np.array_equal(fits[0].cluster_centers_, fits[1].cluster_centers_)
    assert np.array_equal(fits[0].distances_, fits[1].distances_)  # the final distances are exact sums of squares
