from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from curata import ClusterBatchSampler, HierarchicalKMeans, KMeans, VectorTable, cluster, curate, report
from curata.exploring.report import project_2d


@pytest.fixture
def fitted(tmp_path):
    X, y = make_blobs(800, n_features=8, centers=6, random_state=0)
    table = VectorTable.from_arrays(tmp_path / "t", X.astype(np.float32), labels=y)
    tree = HierarchicalKMeans([30, 5], n_resampling_steps=1, n_iter=5).fit(table)
    sampler = ClusterBatchSampler(cluster(table, KMeans(6, seed=0)), 16, seed=0)
    return table, tree, curate(tree, 200), sampler


def test_report_writes_every_figure_into_one_page(tmp_path, fitted):
    table, tree, curated, sampler = fitted
    index = report(table, tmp_path / "report", tree=tree, curated=curated, sampler=sampler)
    names = {"cluster_sizes.png", "map.png", "labels.png", "batches.png"}
    assert names <= {p.name for p in (tmp_path / "report").iterdir()}
    page = index.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 4 and all(len(i) > 1000 for i in images)


def test_report_without_labels_or_clusters(tmp_path):
    table = VectorTable.from_arrays(tmp_path / "t", np.random.default_rng(0).random((30, 3)))
    index = report(table, tmp_path / "r")
    assert index.read_text().count("data:image/png") == 1
    with pytest.raises(TypeError, match="VectorTable"):
        report(np.ones((3, 3)), tmp_path / "x")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium is not installed")
def test_report_opens_in_headless_chromium(tmp_path, fitted):
    table, tree, curated, sampler = fitted
    index = report(table, tmp_path / "report", tree=tree, curated=curated, sampler=sampler)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            f"--screenshot={shot}",
            "--window-size=1100,3000",
            index.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 10_000


def test_bad_curated_or_foreign_tree_fails_before_writing(tmp_path, fitted):
    table, tree, curated, _ = fitted
    other = HierarchicalKMeans([10, 3], n_iter=3).fit(np.random.default_rng(0).random((300, 8), dtype=np.float32))
    bad = [
        ({"curated": np.r_[curated, len(table)]}, ValueError, "curated holds row ids outside"),
        ({"curated": curated.astype(np.float64)}, TypeError, "curated must hold integer row ids"),
        ({"tree": other}, ValueError, "tree was fitted on other rows"),
        ({"tree": KMeans(3)}, TypeError, "tree must be a fitted"),
    ]
    for kwargs, error, match in bad:
        with pytest.raises(error, match=match):
            report(table, tmp_path / "report", **kwargs)
        assert not (tmp_path / "report").exists()
    table.add_column("cluster", np.full(len(table), -1), overwrite=True)
    with pytest.raises(ValueError, match="cluster ids must be >= 0"):
        report(table, tmp_path / "report")
    assert not (tmp_path / "report").exists()


def test_few_rows_are_projected_by_pca_with_or_without_umap(tmp_path):
    # UMAP (installed with the demo extras) raises on 3 rows: so few go to PCA, whatever is installed
    xy, method = project_2d(np.random.default_rng(0).random((3, 5), dtype=np.float32), seed=0)
    assert method == "PCA" and xy.shape == (3, 2) and np.isfinite(xy).all()
    table = VectorTable.from_arrays(tmp_path / "t", np.random.default_rng(1).random((3, 5)), labels=[0, 1, 1])
    assert report(table, tmp_path / "r").is_file()
