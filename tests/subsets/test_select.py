from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

from curata import VectorTable, select


@pytest.fixture
def blobs() -> np.ndarray:
    X, _ = make_blobs(1500, n_features=5, centers=15, cluster_std=[0.5] * 10 + [3.0] * 5, random_state=0)
    return X.astype(np.float32)


def coverage(X: np.ndarray, picked: np.ndarray) -> float:
    """The largest distance from any row to its nearest picked row."""
    d = ((X[:, None, :] - X[picked][None]) ** 2).sum(-1)
    return float(np.sqrt(d.min(1)).max())


def test_kcenter_covers_better_than_random(blobs):
    picked = select(blobs, 30, seed=0)
    assert len(np.unique(picked)) == 30
    random = [coverage(blobs, select(blobs, 30, method="random", seed=s)) for s in range(5)]
    assert coverage(blobs, picked) < min(random)


def test_kcenter_greedy_order_and_exclude(blobs):
    picked = select(blobs, 5, seed=1)
    # each pick is the row farthest from the previous picks
    for t in range(1, 5):
        d = ((blobs[:, None, :] - blobs[picked[:t]][None]) ** 2).sum(-1).min(1)
        assert d[picked[t]] == pytest.approx(d.max(), rel=1e-4)
    labelled = picked[:3]
    more = select(blobs, 4, exclude=labelled, seed=1)
    assert not set(more.tolist()) & set(labelled.tolist())
    d = ((blobs[:, None, :] - blobs[labelled][None]) ** 2).sum(-1).min(1)
    assert d[more[0]] == pytest.approx(d.max(), rel=1e-4)  # the excluded rows count as centres


def test_cluster_balanced_and_typical(blobs):
    clusters = np.repeat(np.arange(3), [1000, 400, 100])
    picked = select(blobs, 90, method="cluster_balanced", clusters=clusters, seed=0)
    assert np.bincount(clusters[picked]).tolist() == [30, 30, 30]
    typical = select(blobs, 3, method="typical", clusters=clusters)
    assert sorted(clusters[typical].tolist()) == [0, 1, 2]
    for c, row in zip(clusters[typical], typical):
        members = blobs[clusters == c]
        centre = members.astype(np.float64).mean(0)
        assert np.allclose(((blobs[row] - centre) ** 2).sum(), ((members - centre) ** 2).sum(1).min(), rtol=1e-5)
    assert len(select(blobs, 20, method="typical", seed=0)) == 20  # k-means with k = n when no clusters


def test_random_is_seeded_and_table_input(tmp_path, blobs):
    assert np.array_equal(select(blobs, 10, method="random", seed=3), select(blobs, 10, method="random", seed=3))
    table = VectorTable.from_arrays(tmp_path / "t", blobs)
    assert np.array_equal(select(table, 7, seed=2), select(blobs, 7, seed=2))


def test_bad_input(blobs):
    with pytest.raises(ValueError, match="larger than the pool"):
        select(blobs, 1501)
    with pytest.raises(ValueError, match="larger than the pool"):
        select(blobs, 1500, exclude=[0])
    with pytest.raises(ValueError, match="method"):
        select(blobs, 3, method="diverse")
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        select(blobs, 0)
    with pytest.raises(ValueError, match="exclude"):
        select(blobs, 3, exclude=[5000])
    with pytest.raises(ValueError, match="one id per row"):
        select(blobs, 3, method="typical", clusters=[0, 1])


def test_ids_and_masks_are_checked_not_reinterpreted(blobs):
    """exclude used to read a boolean mask's values as ids (0 and 1) and to truncate floats."""
    mask = np.zeros(len(blobs), dtype=bool)
    mask[[10, 20, 30]] = True
    for method in ("kcenter", "random", "cluster_balanced"):
        picked = select(blobs, 50, method=method, exclude=mask, seed=0)
        assert not set(picked.tolist()) & {10, 20, 30}
        assert np.array_equal(picked, select(blobs, 50, method=method, exclude=[10, 20, 30], seed=0))
    with pytest.raises(TypeError, match=r"exclude must hold integer row ids, got dtype float64 \(1.7"):
        select(blobs, 3, exclude=[1.7])
    with pytest.raises(ValueError, match=r"one flag per row \(1500\), got 3"):
        select(blobs, 3, exclude=[True, False, True])
    with pytest.raises(ValueError, match=r"outside \[0, 1500\): -1 at position 1"):
        select(blobs, 3, exclude=[4, -1])
    with pytest.raises(TypeError, match="clusters must hold integer ids"):
        select(blobs, 3, method="typical", clusters=np.zeros(len(blobs)) + 0.5)


@pytest.mark.parametrize("method", ["kcenter", "typical", "cluster_balanced"])
def test_nan_rows_are_refused(blobs, method):
    bad = blobs.copy()
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"X holds NaN or inf \(row 7\)"):
        select(bad, 3, method=method, clusters=np.arange(len(bad)) % 3)


def nearest_unpicked_distances(X: np.ndarray, unpicked: np.ndarray) -> np.ndarray:
    """Brute force, as Goldener's reference does each step: every unpicked row's distance to its nearest other
    unpicked row."""
    rows = np.flatnonzero(unpicked)
    d = np.sqrt(((X[rows, None, :] - X[rows][None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    out = np.full(len(X), np.nan)
    out[rows] = d.min(1)
    return out


@pytest.mark.parametrize("method", ["densest", "farthest"])
def test_densest_and_farthest_match_the_brute_force_definition(blobs, method):
    X = blobs[:300].astype(np.float64)
    picked = select(X, 120, method=method)
    assert len(np.unique(picked)) == 120
    unpicked = np.ones(len(X), dtype=bool)
    for row in picked:  # pick order: each is the best unpicked row at its step
        nearest = nearest_unpicked_distances(X, unpicked)
        best = np.nanmin(nearest) if method == "densest" else np.nanmax(nearest)
        assert nearest[row] == pytest.approx(best, rel=1e-4, abs=1e-5)
        unpicked[row] = False


def test_densest_takes_dense_regions_and_farthest_takes_outliers(blobs):
    spread = np.array([0.5] * 10 + [3.0] * 5)
    from sklearn.datasets import make_blobs

    _, centre = make_blobs(1500, n_features=5, centers=15, cluster_std=spread.tolist(), random_state=0)
    tight = spread[centre] == 0.5
    assert tight[select(blobs, 100, method="densest")].mean() >= 0.95
    assert tight[select(blobs, 100, method="farthest")].mean() < 0.1


def test_kernel_points_minimises_mmd_greedily(blobs):
    from curata.subsets.kernel_points import squared_mmd

    X = blobs[:400]
    picked = select(X, 30, method="kernel_points")
    ours = squared_mmd(X, picked)
    randoms = [squared_mmd(X, select(X, 30, method="random", seed=s)) for s in range(10)]
    assert ours < 0.5 * min(randoms)
    # each pick is the row that gives the lowest MMD to the pool at its step
    for t in range(1, 4):
        candidates = np.setdiff1d(np.arange(len(X)), picked[:t])
        scores = [squared_mmd(X, np.r_[picked[:t], c]) for c in candidates[::7]]
        assert squared_mmd(X, picked[: t + 1]) <= min(scores) + 1e-9
    # the linear kernel (Goldener's default) matches the mean
    linear = select(X, 30, method="kernel_points", kernel="linear")
    gap = np.linalg.norm(X[linear].mean(0) - X.mean(0))
    assert gap < 0.2 * min(
        np.linalg.norm(X[select(X, 30, method="random", seed=s)].mean(0) - X.mean(0)) for s in range(5)
    )


def test_kernel_points_anchors_count_as_picked(blobs):
    X = blobs[:400]
    first = select(X, 10, method="kernel_points")
    more = select(X, 10, method="kernel_points", exclude=first)
    assert not set(more.tolist()) & set(first.tolist())
    assert np.array_equal(more, select(X, 20, method="kernel_points")[10:])  # herding continues where it stopped


def test_zcore_is_seeded_and_skips_redundant_copies(blobs):
    X = np.concatenate([blobs[:300], np.repeat(blobs[:1], 100, axis=0)])
    picked = select(X, 50, method="zcore", samples=20_000, seed=0)
    assert np.array_equal(picked, select(X, 50, method="zcore", samples=20_000, seed=0))
    assert not np.array_equal(picked, select(X, 50, method="zcore", samples=20_000, seed=1))
    copies = np.isin(picked, np.r_[0, np.arange(300, 400)]).sum()
    assert copies <= 1  # random picks about 12 of the 101 identical rows


def test_label_quotas_follow_goldener():
    from curata.subsets.quotas import proportional_quotas

    X, _ = make_blobs(1000, n_features=4, centers=6, random_state=1)
    labels = np.repeat([0, 1, 2, 3], [500, 300, 150, 50])
    for method in ("kcenter", "kernel_points", "zcore", "densest", "farthest", "typical", "cluster_balanced", "random"):
        picked = select(X, 37, method=method, labels=labels, seed=0)
        assert len(np.unique(picked)) == 37
        # floor(37 * share) = 18, 11, 5, 1 (sum 35), then one each to the two largest labels
        assert np.bincount(labels[picked], minlength=4).tolist() == [19, 12, 5, 1], method
    assert proportional_quotas(np.array([3, 1]), 4).tolist() == [3, 1]
    assert proportional_quotas(np.array([2, 2, 2]), 5).tolist() == [2, 2, 1]
    # excluded rows do not count in a label's share
    picked = select(X, 10, labels=labels, exclude=np.flatnonzero(labels == 0)[:400], seed=0)
    assert np.bincount(labels[picked], minlength=4).tolist() == [1, 6, 3, 0]  # shares of 100, 300, 150, 50


def test_chunks_bound_the_work_and_keep_quotas(blobs):
    picked = select(blobs, 60, method="farthest", approx_chunk_rows=400, seed=0)
    assert len(np.unique(picked)) == 60
    assert np.array_equal(picked, select(blobs, 60, method="farthest", approx_chunk_rows=400, seed=0))
    chunked = select(blobs, 60, method="kcenter", approx_chunk_rows=500, seed=0)
    random = [coverage(blobs, select(blobs, 60, method="random", seed=s)) for s in range(5)]
    assert coverage(blobs, chunked) < min(random)


def test_cosine_metric_ignores_norms(blobs):
    X = blobs + 20.0  # away from the origin, so directions differ
    scaled = X * np.random.default_rng(0).uniform(0.1, 10, (len(X), 1))
    for method in ("kcenter", "farthest", "kernel_points"):
        assert np.array_equal(
            select(scaled, 20, method=method, metric="cosine"), select(X, 20, method=method, metric="cosine")
        )
    zero = X.copy()
    zero[4] = 0
    with pytest.raises(ValueError, match=r"zero row \(row 4\).*cosine"):
        select(zero, 3, metric="cosine")


def test_selection_on_real_model_features(digit_copies):
    """EfficientNet-Lite0 features of real digits with 60 near-copies: coverage-style methods avoid taking an
    image and its copy together, and every method respects label quotas."""
    X, sources, labels = digit_copies
    copy_rows = 600 + np.arange(len(sources))

    def pairs_taken(picked: np.ndarray) -> int:
        chosen = set(picked.tolist())
        return sum(1 for s, c in zip(sources.tolist(), copy_rows.tolist()) if s in chosen and c in chosen)

    random_pairs = np.mean([pairs_taken(select(X, 200, method="random", seed=s)) for s in range(10)])
    assert random_pairs > 2
    for method in ("kcenter", "farthest"):
        assert pairs_taken(select(X, 200, method=method, metric="cosine", seed=0)) == 0, method
    assert pairs_taken(select(X, 200, method="zcore", metric="cosine", seed=0)) < random_pairs / 2  # a score
    # near-copies are the densest rows: densest starts with one row of each pair (then its twin is no longer dense)
    first = select(X, 30, method="densest")
    assert np.isin(first, np.r_[sources, copy_rows]).mean() >= 0.9 and pairs_taken(first) == 0
    picked = select(X, 100, method="kcenter", labels=labels, metric="cosine")
    assert np.abs(np.bincount(labels[picked], minlength=10) - 10).max() <= 2


def test_bad_options_and_inputs(blobs):
    with pytest.raises(TypeError, match=r"option\(s\) kernel that method='kcenter' does not take"):
        select(blobs, 3, kernel="rbf")
    with pytest.raises(TypeError, match="takes samples, sample_dims, neighbors, exponent"):
        select(blobs, 3, method="zcore", bandwidth=1.0)
    with pytest.raises(ValueError, match="kernel must be one of"):
        select(blobs, 3, method="kernel_points", kernel="poly")
    with pytest.raises(ValueError, match="bandwidth must be a number > 0"):
        select(blobs, 3, method="kernel_points", bandwidth=-1.0)
    with pytest.raises(ValueError, match=r"sample_dims must be <= the vectors' dimension \(5\)"):
        select(blobs, 3, method="zcore", sample_dims=6)
    with pytest.raises(ValueError, match="metric must be one of"):
        select(blobs, 3, metric="manhattan")
    with pytest.raises(ValueError, match="chunk_rows must be an int >= 2"):
        select(blobs, 3, approx_chunk_rows=1)
    with pytest.raises(TypeError, match="labels must hold integer ids"):
        select(blobs, 3, labels=np.zeros(len(blobs)) + 0.5)
    with pytest.raises(ValueError, match=r"labels must hold one id per row \(1500\)"):
        select(blobs, 3, labels=[0, 1])


@pytest.mark.parametrize("method", ["kernel_points", "zcore", "densest", "farthest"])
def test_nan_rows_are_refused_by_the_new_methods(blobs, method):
    bad = blobs.copy()
    bad[9, 0] = np.inf
    with pytest.raises(ValueError, match=r"X holds NaN or inf \(row 9\)"):
        select(bad, 3, method=method)


@pytest.mark.parametrize("method", ["kcenter", "kernel_points", "zcore", "densest", "typical", "cluster_balanced"])
def test_memory_budget_reads_parts_and_gives_the_chunked_answer(tmp_path, blobs, method):
    wide = (blobs @ np.random.default_rng(0).standard_normal((5, 1024))).astype(np.float32)  # 4 KB per row
    labels = np.arange(len(wide)) % 3
    table = VectorTable.from_arrays(tmp_path / "t", wide, labels=labels)
    working = {"kcenter": 32, "kernel_points": 64, "zcore": 48, "densest": 512}.get(method, 128)
    per_row = 1024 * 4 * (1 + 2 + (method == "zcore")) + working  # the rows, reading them from disk, zcore's copy
    budget = 1 << 20
    fitting = budget // per_row
    assert fitting < len(wide) // 3  # the budget splits every label
    options = {"samples": 200, "neighbors": 50} if method == "zcore" else {}
    for metric in ("l2", "cosine"):
        budgeted = select(table, 60, method=method, metric=metric, memory_budget=budget, seed=4, **options)
        chunked = select(wide, 60, method=method, metric=metric, approx_chunk_rows=fitting, seed=4, **options)
        assert np.array_equal(budgeted, chunked)
        in_memory = select(wide, 60, method=method, metric=metric, memory_budget=budget, seed=4, **options)
        fitting_in_memory = budget // (per_row - 1024 * 4 * 2)
        chunked = select(wide, 60, method=method, metric=metric, approx_chunk_rows=fitting_in_memory, seed=4, **options)
        assert np.array_equal(in_memory, chunked)
        with_labels = select(table, 60, method=method, labels=labels, memory_budget=budget, seed=4, **options)
        assert np.array_equal(
            with_labels, select(wide, 60, method=method, labels=labels, approx_chunk_rows=fitting, seed=4, **options)
        )
        assert np.bincount(labels[with_labels]).tolist() == [20, 20, 20]
    roomy = select(table, 60, method=method, memory_budget=1 << 30, seed=4, **options)
    assert np.array_equal(roomy, select(wide, 60, method=method, seed=4, **options))


def test_memory_budget_errors_and_untouched_input(tmp_path, blobs):
    with pytest.raises(ValueError, match="memory_budget"):
        select(blobs, 5, memory_budget=1000)
    with pytest.raises(ValueError, match=r"memory_budget=1048576 bytes cannot hold 2 rows of dim 200000"):
        select(np.ones((3, 200_000), dtype=np.float32), 1, memory_budget=1 << 20)
    bad = blobs.copy()
    bad[1400, 2] = np.nan
    with pytest.raises(ValueError, match=r"X holds NaN or inf \(row 1400\)"):
        select(bad, 5, approx_chunk_rows=100, memory_budget=1 << 20)
    with pytest.raises(ValueError, match=r"X holds NaN or inf \(row 1400\)"):
        select(bad, 5, labels=np.arange(len(bad)) % 2)
    zero = blobs.copy()
    zero[77] = 0
    with pytest.raises(ValueError, match=r"zero row \(row 77\)"):
        select(zero, 5, metric="cosine", memory_budget=1 << 20)
    before = blobs.copy()
    select(blobs, 5, metric="cosine")
    select(torch.from_numpy(blobs), 5, metric="cosine", memory_budget=1 << 20)
    assert np.array_equal(blobs, before)  # rows are normalised in a copy, never in the caller's array


def test_memory_budget_bounds_peak_memory(tmp_path, full_run):
    rows, dim = 300_000, 128
    X = np.random.default_rng(0).standard_normal((rows, dim), dtype=np.float32)
    VectorTable.from_arrays(tmp_path / "big", X)
    budget = 24 << 20

    def run(budget_arg: str, method: str) -> tuple[int, np.ndarray]:
        out = tmp_path / f"{budget_arg}-{method}.npz"
        job = [sys.executable, str(Path(__file__).parents[1] / "memory_job.py"), str(tmp_path / "big"), str(out)]
        result = subprocess.run([*job, budget_arg, f"select-{method}"], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])["grown"], np.load(out)["labels"]

    # the in-memory baseline (it loads the whole table) is for --full; make test compares with the table's size
    grown_in_memory, _ = run("none", "kcenter") if full_run else (rows * dim * 4 + 1, None)
    for method in ("kcenter", "kernel_points"):
        grown, picked = run(str(budget), method)
        # a 154 MB table; under 24 MB: a chunk's rows and their reading, plus what is not counted in the budget,
        # the methods' fixed blocks (kernel_points: the bandwidth sample's 8 MB distance matrix, 8 MB kernel
        # blocks) and the table reader's buffers (about 20 MB). Measured 50 MB (kcenter), 80 MB (kernel_points).
        assert grown < 0.6 * rows * dim * 4 < rows * dim * 4 < grown_in_memory, (method, grown, grown_in_memory)
        assert len(np.unique(picked)) == 200
