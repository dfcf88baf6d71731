"""The kernels of CPUs without AVX-512 run here too: capped at AVX2 (the 8-lane scan, BLAS score GEMMs) or at plain
C (``CURATA_SIMD=none``), the compiled scan gives what the numpy/torch fallback gives, bit for bit, and the counts
of kernel calls show that the capped kernels, and only they, ran."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from curata import KMeans
from curata.clustering import score_scan
from curata.clustering.cpu_gemm import panel_gemm_preferred
from curata.clustering.kmeans import assign
from curata.clustering.score_scan import (
    best_two,
    kernel_uses,
    limited_simd,
    native_scan,
    row_distances,
    scan_path,
)

pytestmark = pytest.mark.skipif(score_scan._score_scan is None, reason="the C extension is not built")

AVX512_ONLY = ("scan_avx512", "distance_avx512", "panel_gemm", "scan_pass")


def _cpu_has(level: str) -> bool:
    with limited_simd(level) as got:
        return got == level


def _level(level: str):
    """The parameter for a capped level, skipped where the CPU lacks it (capping cannot add what is not there)."""
    return pytest.param(level, marks=pytest.mark.skipif(not _cpu_has(level), reason=f"the CPU has no {level}"))


LEVELS = [_level("avx2"), "none"]


def _calls(before: dict[str, int]) -> dict[str, int]:
    return {name: count - before[name] for name, count in kernel_uses().items()}


def _native_and_fallback(monkeypatch: pytest.MonkeyPatch, fn):
    """fn() through the compiled scan, then through numpy/torch; the compiled run's kernel calls."""
    monkeypatch.setenv("CURATA_NATIVE_SCAN", "1")
    before = kernel_uses()
    native = fn()
    calls = _calls(before)
    monkeypatch.setenv("CURATA_NATIVE_SCAN", "0")
    assert not native_scan() and scan_path() == "plain"
    fallback = fn()
    monkeypatch.delenv("CURATA_NATIVE_SCAN")
    return native, fallback, calls


def _equal(a, b) -> None:
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("cols", [1, 7, 15, 16, 17, 31, 100, 2048])
def test_best_two_under_a_cap_matches_numpy(monkeypatch, level, cols):
    rng = np.random.default_rng(cols)
    scores = np.round(rng.standard_normal((200, cols)), 1).astype(np.float32)  # many ties
    scores[rng.random(scores.shape) < 0.1] = np.inf
    scores[:4] = np.inf  # rows of inf only
    scores[4:8] = 3.0  # rows of one value
    bias = torch.from_numpy(np.round(rng.standard_normal(cols), 1).astype(np.float32))
    with limited_simd(level):
        assert scan_path() == ("avx2" if level == "avx2" else "scalar")
        for b in (None, bias):

            def run(b=b):
                out = [torch.empty(200), torch.empty(200, dtype=torch.long), torch.empty(200)]
                out.append(torch.empty(200, dtype=torch.long))
                best_two(torch.from_numpy(scores.copy()), b, *out)
                return out

            native, fallback, calls = _native_and_fallback(monkeypatch, run)
            _equal(native, fallback)
            # the AVX2 scan takes rows of 16 columns and more; shorter ones, and every row under "none", the scalar
            wanted = "scan_avx2" if level == "avx2" and cols >= 16 else "scan_scalar"
            assert calls[wanted] == 1 and sum(calls.values()) == 1, calls
    assert torch.equal(native[1], torch.from_numpy(np.argmin(scores + bias.numpy(), axis=1)))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dim", [1, 17, 64])
def test_row_distances_under_a_cap_match_numpy(monkeypatch, level, dim):
    g = torch.Generator().manual_seed(dim)
    x, centers = torch.randn(500, dim, generator=g) * 10, torch.randn(9, dim, generator=g)
    labels = torch.randint(0, 9, (500,), generator=g)

    def run():
        out = torch.empty(500)
        row_distances(x, centers, labels, out)
        return [out]

    with limited_simd(level):
        native, fallback, calls = _native_and_fallback(monkeypatch, run)
    _equal(native, fallback)
    assert calls["distance_portable"] == 1 and sum(calls.values()) == 1, calls


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(
    ("k", "metric", "bounds"), [(10, "l2", False), (100, "cosine", False), (300, "l2", True), (2500, "l2", "auto")]
)
def test_fit_under_a_cap_matches_the_fallback(monkeypatch, level, k, metric, bounds):
    """A whole fit and assignment as a CPU without AVX-512 runs them: BLAS score GEMMs, the capped scan."""
    rng = np.random.default_rng(k)
    X = (rng.standard_normal((6000, 24)) + rng.integers(0, 5, (6000, 1))).astype(np.float32)

    def run():
        km = KMeans(k, n_iter=6, metric=metric, bounds=bounds, init="random", seed=1).fit(X)
        labels, d2 = assign(X, km.cluster_centers_, metric=metric)
        return [torch.from_numpy(a) for a in (km.labels_, km.cluster_centers_, km.distances_, labels, d2)]

    with limited_simd(level):
        assert not panel_gemm_preferred()  # no panel kernel, no whole pass in C below AVX-512
        native, fallback, calls = _native_and_fallback(monkeypatch, run)
    _equal(native, fallback)
    assert all(calls[name] == 0 for name in AVX512_ONLY), calls
    scanned = "scan_avx2" if level == "avx2" and k >= 16 else "scan_scalar"
    assert calls[scanned] > 0, calls
    assert calls["distance_portable"] > 0, calls  # the exact distances of the final model
    assert panel_gemm_preferred() == _cpu_has("avx512")  # the cap is lifted on the way out


def test_a_fit_at_full_width_takes_the_avx512_kernels():
    """The counterpart, so that the counts above mean something: here nothing is capped."""
    if not _cpu_has("avx512"):
        pytest.skip("the CPU has no AVX-512")
    X = np.random.default_rng(0).standard_normal((6000, 24)).astype(np.float32)
    before = kernel_uses()
    KMeans(100, n_iter=3, init="random", seed=1).fit(X)
    calls = _calls(before)
    assert scan_path() == "avx512" and calls["scan_pass"] > 0 and calls["scan_avx2"] == 0, calls


def test_the_cap_is_read_from_the_environment():
    """``CURATA_SIMD`` when the extension loads: what a CI job or a user sets to run the AVX2 path on an AVX-512
    machine. The extension alone is loaded in a fresh interpreter (curata's own import takes seconds here)."""
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('curata.clustering._score_scan', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "print(module.simd(), module.avx512())\n"
    )
    path = score_scan._score_scan.__file__
    for level in ("avx2", "none"):
        if level == "avx2" and not _cpu_has("avx2"):
            continue
        env = {**os.environ, "CURATA_SIMD": level}
        ran = subprocess.run([sys.executable, "-c", code, path], env=env, capture_output=True, text=True, check=True)
        assert ran.stdout.split() == [level, "False"]
    env = {**os.environ, "CURATA_SIMD": "sse"}
    ran = subprocess.run([sys.executable, "-c", code, path], env=env, capture_output=True, text=True)
    assert ran.returncode != 0 and "CURATA_SIMD must be avx512, avx2 or none, got 'sse'" in ran.stderr


def test_a_bad_level_is_refused():
    with pytest.raises(ValueError, match="avx512, avx2 or none"):
        with limited_simd("avx1024"):
            pass
