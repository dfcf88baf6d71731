"""Samples and rows: every subset of a VectorTable comes back in sample ids, a sample's vectors together."""

from __future__ import annotations

import numpy as np
import pytest

from curata import HierarchicalKMeans, KMeans, VectorTable, curate, dedup, exact_duplicates, select, split
from curata.store.samples import as_samples, per_sample_majority, pool_rows


def _multi_vector_table(tmp_path, samples=300, per_sample=4, gaps=False, seed=0):
    """``samples`` samples of ``per_sample`` vectors each, around one centre per sample; with ``gaps`` the ids
    skip every 7th sample (as describe leaves unreadable items out)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(samples) * (2 if gaps else 1)
    if gaps:
        ids = ids[ids % 7 != 3]
    centres = rng.standard_normal((len(ids), 16)).astype(np.float32) * 3
    rows = np.repeat(np.arange(len(ids)), per_sample)
    vectors = centres[rows] + 0.05 * rng.standard_normal((len(rows), 16)).astype(np.float32)
    order = rng.permutation(len(rows))  # storage order is not sample order
    labels = (ids % 3)[rows][order]
    table = VectorTable.from_arrays(tmp_path / "t", vectors[order], ids=ids[rows][order], labels=labels)
    return table, ids, centres


def test_split_keeps_every_sample_on_one_side(tmp_path):
    table, ids, _ = _multi_vector_table(tmp_path)
    for mode in ("stratified", "disjoint", "coreset"):
        parts = split(table, {"train": 0.8, "val": 0.2}, mode=mode, seed=0)
        train, val = parts["train"], parts["val"]
        assert len(np.intersect1d(train, val)) == 0, mode
        assert set(train) | set(val) <= set(ids.tolist()), mode
        assert len(np.unique(train)) == len(train), mode
    parts = split(table, {"train": 0.8, "val": 0.2}, seed=0)
    assert len(parts["train"]) + len(parts["val"]) == 300


def test_select_and_dedup_answer_in_sample_ids(tmp_path):
    table, ids, _ = _multi_vector_table(tmp_path, gaps=True)
    picked = select(table, 10, seed=0)
    assert len(np.unique(picked)) == 10 and set(picked.tolist()) <= set(ids.tolist())
    kept, groups = dedup(table, space="centred", seed=0)
    assert set(kept.tolist()) == set(ids.tolist())  # distinct samples, each kept once
    assert groups == []
    within = ids[::3]
    picked = select(table, 5, within=within, seed=0)
    assert set(picked.tolist()) <= set(within.tolist())
    again = select(table, 5, exclude=picked, within=within, seed=0)
    assert not set(again.tolist()) & set(picked.tolist())
    with pytest.raises(ValueError, match="within holds sample ids that are not in the table: 3"):
        select(table, 5, within=[3])


def test_dedup_removes_a_sample_whose_vectors_repeat_another(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((40, 8)).astype(np.float32)
    vectors = np.r_[base, base[:2] + 1e-4]  # sample 20 repeats sample 0 (both vectors)
    ids = np.r_[np.repeat(np.arange(20), 2), [20, 20]]
    table = VectorTable.from_arrays(tmp_path / "t", vectors, ids=ids)
    kept, groups = dedup(table, space="raw", threshold=0.9999, clusters=np.zeros(len(ids), int), keep="first")
    assert kept.tolist() == list(range(20))
    assert [g.tolist() for g in groups] == [[0, 20]]
    _, exact_groups = exact_duplicates(VectorTable.from_arrays(tmp_path / "u", np.r_[base, base[:2]], ids=ids))
    assert [g.tolist() for g in exact_groups] == [[0, 20]]


def test_curate_on_a_tree_of_a_table_answers_once_per_sample(tmp_path):
    table, ids, _ = _multi_vector_table(tmp_path, gaps=True)
    tree = HierarchicalKMeans([30, 5], seed=0).fit(table)
    assert tree.sample_ids_.tolist() == table.column("idx").tolist()
    picked = curate(tree, 50, seed=0)
    assert len(picked) == 50 and len(np.unique(picked)) == 50
    assert set(picked.tolist()) <= set(ids.tolist())
    flat = curate(KMeans(10, seed=0).fit(table), 20, seed=0)
    assert len(np.unique(flat)) == 20 and set(flat.tolist()) <= set(ids.tolist())
    inside = curate(tree, 10, within=ids[:40], seed=0)
    assert set(inside.tolist()) <= set(ids[:40].tolist())


def test_curate_never_picks_a_sample_without_cluster():
    labels = np.array([0, 0, -1, 1, 1, -1])
    picked = curate(labels, 6, seed=0)
    assert set(picked.tolist()) == {0, 1, 3, 4}


def test_pooling_and_per_sample_values(tmp_path):
    table = VectorTable.from_arrays(tmp_path / "t", np.eye(4), ids=[2, 2, 0, 2], labels=[5, 5, 7, 5])
    ids, mean = pool_rows(table)
    assert ids.tolist() == [0, 2]
    assert np.allclose(mean[1], [1 / 3, 1 / 3, 0, 1 / 3])
    _, first = pool_rows(table, "first")
    assert first.tolist() == [[0, 0, 1, 0], [1, 0, 0, 0]]
    view = as_samples(table)
    assert view.per_sample(table.column("label"), "labels").tolist() == [7, 5]
    assert view.per_sample(np.array([1, 3, 2, 3]), "clusters", vote=True).tolist() == [2, 3]
    with pytest.raises(ValueError, match="pooling must be one of"):
        as_samples(table, pooling="max")


def test_per_sample_majority_never_reads_uninitialised_memory():
    out = per_sample_majority(np.array([0, 0, 3]), np.array([4, 4, -1]), 5)
    assert out.tolist() == [4, -1, -1, -1, -1]
