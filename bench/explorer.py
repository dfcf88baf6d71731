"""How long does explore() take on a large table, and how fast does its page open in a real browser?

Goal (issue 18): for a 1M-row table, the page opens in under 5 s in headless Chromium and building it takes under
a minute beyond the 2-D projection. Competitor: none in the same run (FiftyOne's App needs a server and MongoDB);
the table says what each part costs.

    python bench/explorer.py [--rows 1000000 --dim 64 --clusters 1000]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from curata import KMeans, VectorTable, explore
from curata.exploring import explorer as explorer_module
from curata.exploring.browser import headless_chromium


def open_seconds(page: Path) -> tuple[float, int, int]:
    """(seconds until the page's script has run, points drawn, console errors) in headless Chromium."""
    driver = headless_chromium()
    try:
        start = time.perf_counter()
        driver.get(page.as_uri())
        drawn = driver.execute_script("return window.curataExplorer.drawn")
        seconds = time.perf_counter() - start
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        return seconds, int(drawn), len(errors)
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--clusters", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(args.clusters, args.dim)).astype(np.float32) * 4
    sizes = rng.zipf(1.6, args.clusters).astype(np.float64)
    owner = rng.choice(args.clusters, args.rows, p=sizes / sizes.sum())
    workdir = Path(tempfile.mkdtemp(prefix="curata-bench-explorer-"))
    try:
        X = centres[owner] + rng.normal(size=(args.rows, args.dim)).astype(np.float32)
        table = VectorTable.from_arrays(workdir / "table", X)
        del X
        start = time.perf_counter()
        labels = KMeans(args.clusters, n_iter=10, max_points_per_centroid=64, seed=0).fit(table).labels_
        kmeans_seconds = time.perf_counter() - start
        projected: list[float] = []
        original = explorer_module.project_2d

        def timed_projection(vectors: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
            begin = time.perf_counter()
            out = original(vectors, seed)
            projected.append(time.perf_counter() - begin)
            return out

        explorer_module.project_2d = timed_projection
        start = time.perf_counter()
        page = explore(table, workdir / "page", tree=labels, curated=rng.choice(args.rows, 5000, replace=False))
        build = time.perf_counter() - start
        explorer_module.project_2d = original
        opened, drawn, errors = open_seconds(page)
        print(
            f"# explore() on {args.rows} x {args.dim} rows, {args.clusters} k-means clusters, no source (no pictures)"
        )
        print(f"# {date.today()} on {platform.machine()} with {torch.get_num_threads()} torch threads")
        print("| step | seconds | goal |")
        print("|---|---:|---|")
        print(f"| k-means labels (not part of explore) | {kmeans_seconds:.1f} | |")
        print(f"| explore(): 2-D projection of the {drawn} rows drawn | {projected[0]:.2f} | |")
        print(f"| explore(): everything else | {build - projected[0]:.2f} | < 60 |")
        print(f"| page size | {page.stat().st_size / 1e6:.1f} MB | |")
        print(f"| open in headless Chromium until drawn ({errors} console errors) | {opened:.2f} | < 5 |")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
