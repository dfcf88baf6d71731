from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from curata import curate
from curata.subsets.label_shares import balance, label_allocation


def long_tailed(seed: int, classes: int = 10, base: int = 600, ratio: float = 0.55) -> tuple[np.ndarray, np.ndarray]:
    """A two-level tree (rows, 2) over long-tailed class labels, with clusters that cut across classes."""
    rng = np.random.default_rng(seed)
    sizes = np.maximum((base * ratio ** np.arange(classes)).astype(int), 1)
    y = np.repeat(np.arange(classes), sizes)
    level1 = np.where(
        rng.random(len(y)) < 0.7, y * 4 + rng.integers(0, 4, len(y)), rng.integers(0, 4 * classes, len(y))
    )
    return np.stack([level1, level1 // 8], axis=1), y


def water_level(sizes: np.ndarray, target: int) -> int:
    return max(t for t in range(int(sizes.max()) + 1) if np.minimum(t, sizes).sum() <= target)


def test_balanced_allocation_matches_the_definition():
    rng = np.random.default_rng(0)
    for _ in range(300):
        sizes = rng.integers(0, 40, int(rng.integers(1, 9)))
        target = int(rng.integers(1, 200))
        out = label_allocation(sizes, target)
        assert out.sum() == min(target, sizes.sum())
        assert np.all((out >= 0) & (out <= sizes))
        if sizes.sum() > target:
            tau = water_level(sizes, target)
            assert np.all(out >= np.minimum(tau, sizes)) and np.all(out <= np.minimum(tau + 1, sizes))


def test_weighted_allocation_is_water_filled_in_the_given_ratios():
    rng = np.random.default_rng(1)
    for _ in range(300):
        sizes = rng.integers(0, 60, int(rng.integers(1, 7)))
        weights = rng.random(len(sizes)) * (rng.random(len(sizes)) < 0.85)
        target = int(rng.integers(1, 150))
        out = label_allocation(sizes, target, weights)
        active = (weights > 0) & (sizes > 0)
        assert out.sum() == min(target, sizes[active].sum()) and np.all(out[~active] == 0)
        assert np.all(out <= sizes)
        if sizes[active].sum() > target:  # the continuous water level t, then each label within 1 of min(size, t w)
            lo, hi = 0.0, float(sizes.max() / weights[active].min()) + 1
            for _ in range(100):
                t = (lo + hi) / 2
                lo, hi = (t, hi) if np.minimum(sizes[active], t * weights[active]).sum() <= target else (lo, t)
            exact = np.minimum(sizes[active], lo * weights[active])
            assert np.all(np.abs(out[active] - exact) < 1 + 1e-6)


def test_proportional_allocation_follows_the_pool():
    assert label_allocation(np.array([600, 300, 100]), 100, "proportional").tolist() == [60, 30, 10]
    out = label_allocation(np.array([5000, 3000, 1800, 1080, 648]), 1000, "proportional")
    assert out.sum() == 1000 and np.all(np.abs(out - 1000 * np.array([5000, 3000, 1800, 1080, 648]) / 11528) < 1)


@pytest.mark.parametrize("within_label", ["concepts", "coarse", "random"])
@pytest.mark.parametrize("target", [37, 200, 800])
def test_class_counts_equal_the_allocation_on_long_tailed_labels(within_label: str, target: int):
    tree, y = long_tailed(0)
    picked = curate(tree, target, labels=y, within_label=within_label, seed=2)
    assert len(picked) == target and len(np.unique(picked)) == target
    counts = np.bincount(y[picked], minlength=10)
    assert counts.tolist() == label_allocation(np.bincount(y), target).tolist()
    tau = water_level(np.bincount(y), target)
    assert np.all(counts >= np.minimum(tau, np.bincount(y))) and np.all(counts <= np.minimum(tau + 1, np.bincount(y)))


def test_proportional_and_given_shares_and_multiplier():
    tree, y = long_tailed(1)
    sizes = np.bincount(y)
    picked = curate(tree, 300, labels=y, label_shares="proportional", seed=0)
    assert np.bincount(y[picked], minlength=10).tolist() == label_allocation(sizes, 300, "proportional").tolist()
    shares = {0: 1.0, 1: 1.0, 9: 2.0}  # labels left out get nothing; class 9 (2 rows) gives all it has
    picked = curate(tree, 100, labels=y, label_shares=shares, seed=0)
    counts = np.bincount(y[picked], minlength=10)
    assert sizes[9] == 2 and counts[[0, 1, 9]].tolist() == [49, 49, 2]
    assert counts.sum() == 100 and counts[2:9].sum() == 0
    picked = curate(tree, 60, labels=y, multiplier=3, within_label="random", seed=0)
    counts = np.bincount(y[picked], minlength=10)
    assert counts.tolist() == label_allocation(3 * sizes, 60).tolist() and counts[-1] == 3 * sizes[-1]


def test_without_labels_the_ids_are_todays_and_one_label_changes_nothing():
    rng = np.random.default_rng(7)
    level1 = rng.integers(0, 12, 200)
    tree = np.stack([level1, level1 % 3], axis=1)
    today = [14, 16, 33, 35, 54, 73, 96, 97, 119, 140, 141, 145, 164, 189, 199]  # before labels= existed
    assert curate(tree, 15, seed=5).tolist() == today
    # one label drawn through its concepts is the unlabelled draw
    assert curate(tree, 15, labels=np.zeros(200, dtype=int), within_label="concepts", seed=5).tolist() == today
    big, y = long_tailed(3)
    for seed in range(3):
        one_label = curate(big, 250, labels=np.full(len(y), 4), within_label="concepts", seed=seed)
        assert np.array_equal(curate(big, 250, seed=seed), one_label)


def test_unlabelled_rows_are_left_out_and_strings_work():
    tree, y = long_tailed(2)
    y = y.copy()
    y[::3] = -1
    picked = curate(tree, 400, labels=y, seed=0)
    assert np.all(y[picked] >= 0)
    _, report = curate(tree, 400, labels=y, report=True, seed=0)
    assert report.unlabelled == int((y < 0).sum()) and report.pool_size == int((y >= 0).sum())
    letters = np.array(list("abcdefghij"))[np.maximum(y, 0)]  # strings: every row labelled
    picked = curate(tree, 200, labels=letters, seed=0)
    sizes = np.bincount(np.searchsorted(np.array(list("abcdefghij")), letters))
    assert np.bincount(np.searchsorted(np.array(list("abcdefghij")), letters[picked])).tolist() == (
        label_allocation(sizes, 200).tolist()
    )


def test_per_sample_labels_and_representative_rows_on_a_table_tree():
    # samples 10..15; sample 12 has two rows (its representative: the row in its majority cluster)
    sample_ids = np.array([10, 11, 12, 12, 12, 13, 14, 15])
    clusters = np.array([0, 0, 1, 1, 0, 1, 2, 2])
    tree = SimpleNamespace(labels_=clusters[:, None], sample_ids_=sample_ids, distances_=None)
    per_sample = np.array([0, 0, 1, 1, 0, -1])  # by ascending sample id: 10..15
    per_row = np.array([0, 0, 1, 1, 1, 1, 0, -1])
    for labels in (per_sample, per_row):
        picked = curate(tree, 4, labels=labels, seed=0)
        assert 15 not in picked and len(picked) == 4 and sorted(set(picked.tolist())) == picked.tolist()
        got = dict(zip(range(10, 16), per_sample))
        assert sorted(got[i] for i in picked) == [0, 0, 1, 1]
    with pytest.raises(ValueError, match=r"one label per row \(8\) or per sample \(6\)"):
        curate(tree, 2, labels=np.zeros(5, dtype=int))


def test_report_tells_what_was_balanced():
    tree, y = long_tailed(4)
    ids, report = curate(tree, 200, labels=y, report=True, seed=0)
    assert report.subset_counts == np.bincount(y[ids], minlength=10).tolist()
    assert report.pool_counts == np.bincount(y).tolist()
    assert report.subset_counts == label_allocation(np.bincount(y), 200).tolist()
    assert report.class_kl[1] < report.class_kl[0] / 2
    assert "classes, then uniformly at random within each class" in str(report) and "class KL (10)" in str(report)
    assert report.to_dict()["class_counts"]["9"] == {"pool": int(np.bincount(y)[9]), "subset": int(np.bincount(y)[9])}
    plain, plain_report = curate(tree, 200, report=True, seed=0)
    assert "clusters of the embedding" in str(plain_report) and plain_report.class_kl is None
    again = balance(tree, plain, labels=y)
    assert again.subset_counts == np.bincount(y[plain], minlength=10).tolist()
    assert again.cluster_kl == plain_report.cluster_kl
    with pytest.raises(ValueError, match="not in the tree's pool"):
        balance(tree, [len(y) + 5])


def test_pool_too_small_for_the_shares_warns():
    y = np.array([0, 0, 1, 1, 1])
    with pytest.warns(UserWarning, match="only 2 of the 4"):
        picked = curate(np.zeros(5, dtype=int), 4, labels=y, label_shares={0: 1.0}, seed=0)
    assert picked.tolist() == [0, 1]


def test_bad_label_arguments():
    tree = np.zeros(4, dtype=int)
    y = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="label_shares must be one of"):
        curate(tree, 2, labels=y, label_shares="equal")
    with pytest.raises(ValueError, match="shares >= 0 with a positive sum"):
        curate(tree, 2, labels=y, label_shares={0: -1.0})
    with pytest.raises(ValueError, match="names label 7"):
        curate(tree, 2, labels=y, label_shares={7: 1.0})
    with pytest.raises(ValueError, match="within_label must be one of"):
        curate(tree, 2, labels=y, within_label="fine")
    with pytest.raises(TypeError, match="labels must hold integers"):
        curate(tree, 2, labels=y.astype(float))
    with pytest.raises(ValueError, match="one label per row of the tree"):
        curate(tree, 2, labels=y[:3])
    with pytest.raises(ValueError, match="unlabelled"):
        curate(tree, 2, labels=np.full(4, -1))


def test_cli_curates_by_the_tables_labels(tmp_path, monkeypatch, capsys):
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from curata.cli.main import main

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), [200, 100, 30, 10])
    X = (rng.normal(size=(340, 6)) + labels[:, None] * 2).astype(np.float32)
    pq.write_table(pa.table({"vector": list(X), "label": labels}), tmp_path / "l.parquet")
    np.save(tmp_path / "x.npy", X)
    main(
        [
            "curate",
            "--vectors",
            "l.parquet",
            "--out",
            "l",
            "--levels",
            "20",
            "4",
            "--target",
            "80",
            "--labels-from-table",
        ]
    )
    picked = np.load(tmp_path / "l" / "curated_ids.npy")
    assert np.bincount(labels[picked]).tolist() == [24, 23, 23, 10]
    summary = json.loads((tmp_path / "l" / "summary.json").read_text())
    assert summary["balance"]["class_counts"]["3"] == {"pool": 10, "subset": 10}
    assert "classes, then uniformly at random within each class" in capsys.readouterr().out
    main(
        [
            "curate",
            "--vectors",
            "l.parquet",
            "--out",
            "p",
            "--levels",
            "20",
            "--target",
            "34",
            "--labels-from-table",
            "--label-shares",
            "proportional",
            "--within-label",
            "random",
        ]
    )
    assert np.bincount(labels[np.load(tmp_path / "p" / "curated_ids.npy")]).tolist() == [20, 10, 3, 1]
    with pytest.raises(ValueError, match="--labels-from-table: --vectors 'x.npy' holds no labels"):
        main(["curate", "--vectors", "x.npy", "--out", "x", "--levels", "4", "--target", "9", "--labels-from-table"])
    assert not (tmp_path / "x").exists()
