"""The plain path, as installed where no C compiler built the extension: a fit runs on numpy and torch alone, says
so, and gives what ``CURATA_NATIVE_SCAN=0`` with the kernels capped at ``none`` gives in this process (no compiled
code either way), bit for bit."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from curata import KMeans
from curata.clustering import score_scan
from curata.clustering.cpu_gemm import panel_gemm_preferred
from curata.clustering.kmeans import assign

# In the child the extension's import fails as in an install without it (an entry of None in sys.modules makes
# `import` raise ImportError), before curata is first imported; then the same fits as here, saved to argv[1].
_CHILD = """
import sys
sys.modules["curata.clustering._score_scan"] = None
sys.path.insert(0, sys.argv[2])
import numpy as np
from test_plain_path import run_fits
from curata.clustering.cpu_gemm import panel_gemm_preferred
from curata.clustering.score_scan import kernel_uses, scan_path

np.savez(sys.argv[1], **run_fits())
print(scan_path(), panel_gemm_preferred(), kernel_uses())
"""


def run_fits() -> dict[str, np.ndarray]:
    """An l2 fit with bounds and a cosine fit, each with an assignment after it."""
    X = (np.random.default_rng(0).standard_normal((4000, 24)) + np.arange(4000)[:, None] % 5).astype(np.float32)
    results = {}
    for metric, k, bounds in (("l2", 40, "auto"), ("cosine", 12, False)):
        km = KMeans(k, n_iter=5, metric=metric, bounds=bounds, init="random", seed=3).fit(X)
        labels, d2 = assign(X, km.cluster_centers_, metric=metric)
        found = {"labels": km.labels_, "centers": km.cluster_centers_, "distances": km.distances_}
        found.update({"assigned": labels, "assigned_d2": d2})
        results.update({f"{metric}_{key}": value for key, value in found.items()})
    return results


def test_a_fit_without_the_extension_runs_and_matches_the_fallback(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "plain.npz"
    ran = subprocess.run(
        [sys.executable, "-c", _CHILD, str(out), str(Path(__file__).parent)],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        check=True,
    )
    # no compiled scan, no panel GEMM, and no kernel counts: kernel_uses() is empty only where nothing compiled loaded
    assert ran.stdout.strip().splitlines()[-1] == "plain False {}"
    with np.load(out) as saved:
        plain = dict(saved)
    monkeypatch.setenv("CURATA_NATIVE_SCAN", "0")
    capped = score_scan.limited_simd("none") if score_scan._score_scan is not None else contextlib.nullcontext()
    with capped:
        assert score_scan.scan_path() == "plain" and not panel_gemm_preferred()
        here = run_fits()
    assert sorted(here) == sorted(plain)
    for key, value in plain.items():
        assert np.array_equal(value, here[key]), key
    assert len(np.unique(plain["l2_labels"])) > 1
