"""Fits a clusterer (or dedups) on a VectorTable in a fresh process and reports how much its peak RSS grew.

Usage: python memory_job.py TABLE OUT.npz BUDGET_BYTES|none kmeans|hierarchical|dedup|select-METHOD
"""

from __future__ import annotations

import json
import sys

import numpy as np

from curata import HierarchicalKMeans, KMeans, VectorTable, dedup, select


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(f.read().split(f"{field}:")[1].split()[0]) * 1024


def main() -> None:
    path, out, budget_arg, kind = sys.argv[1:5]
    budget = None if budget_arg == "none" else int(budget_arg)
    table = VectorTable.open(path)
    table.vectors(slice(0, 100))
    KMeans(4, n_iter=2).fit(np.random.default_rng(0).standard_normal((4096, table.dim), dtype=np.float32))
    before = _status("VmRSS")
    if kind == "kmeans":
        fitted = KMeans(16, n_iter=4, memory_budget=budget, seed=3).fit(table)
        labels, centers = fitted.labels_, fitted.cluster_centers_
    elif kind.startswith("select-"):
        labels = select(table, 200, method=kind.removeprefix("select-"), memory_budget=budget, seed=3)
        centers = np.zeros(0)
    elif kind == "dedup":
        labels, _ = dedup(table, threshold=0.9, memory_budget=budget, max_removed=1.0)
        centers = np.zeros(0)
    else:
        tree = HierarchicalKMeans([32, 4], n_resampling_steps=1, n_iter=3, memory_budget=budget, seed=3).fit(table)
        labels, centers = tree.labels_, tree.centroids_[0]
    grown = _status("VmHWM") - before
    np.savez(out, labels=labels, centers=centers)
    print(json.dumps({"grown": grown}))


if __name__ == "__main__":
    main()
