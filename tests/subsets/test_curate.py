from __future__ import annotations

import numpy as np
import pytest

from curata import HierarchicalKMeans, curate
from curata.subsets.curate import water_fill


def brute_force_tau(capacity: np.ndarray, budget: int) -> int:
    return max(t for t in range(int(capacity.max()) + 1) if np.minimum(t, capacity).sum() <= budget)


def test_water_fill_matches_definition_on_random_groups():
    rng = np.random.default_rng(0)
    for _ in range(500):
        groups_count, members = int(rng.integers(1, 5)), int(rng.integers(1, 12))
        groups = rng.integers(0, groups_count, members)
        capacity = rng.integers(0, 15, members)
        budget = rng.integers(0, 60, groups_count)
        out = water_fill(groups, capacity, budget, rng)
        for g in range(groups_count):
            c, o = capacity[groups == g], out[groups == g]
            if len(c) == 0:
                continue
            assert np.all((0 <= o) & (o <= c))
            assert o.sum() == min(budget[g], c.sum())
            if c.sum() > budget[g]:
                tau = brute_force_tau(c, budget[g])
                assert np.all(o >= np.minimum(tau, c)) and np.all(o <= np.minimum(tau + 1, c))


def test_hand_checked_two_level_tree():
    # level 2: A = {0, 1}, B = {2}; level-1 sizes 50, 2, 30
    level1 = np.array([0] * 50 + [1] * 2 + [2] * 30)
    level2 = np.array([0] * 52 + [1] * 30)
    labels = np.stack([level1, level2], axis=1)
    picked = curate(labels, 20, seed=0)
    # root: A (52) and B (30) share 20 -> 10 each; A: cluster 1 gives its 2, cluster 0 takes 8
    assert np.bincount(level1[picked], minlength=3).tolist() == [8, 2, 10]
    assert len(np.unique(picked)) == 20


def test_hits_target_exactly_and_is_seeded():
    rng = np.random.default_rng(1)
    labels = np.stack([rng.integers(0, 40, 3000), np.zeros(3000, dtype=int)], axis=1)
    labels[:, 1] = labels[:, 0] % 7
    for target in (1, 7, 333, 2999, 3000):
        picked = curate(labels, target, seed=3)
        assert len(picked) == target and len(np.unique(picked)) == target
    assert np.array_equal(curate(labels, 100, seed=3), curate(labels, 100, seed=3))
    assert not np.array_equal(curate(labels, 100, seed=3), curate(labels, 100, seed=4))


def test_multiplier_lets_rows_repeat():
    labels = np.array([0] * 3 + [1] * 10)
    picked = curate(labels, 12, multiplier=2, seed=0)
    assert len(picked) == 12
    assert np.bincount(labels[picked]).tolist() == [6, 6]
    assert np.bincount(picked).max() == 2


def test_pool_too_small_warns_and_returns_all():
    labels = np.array([0, 0, 1])
    with pytest.warns(UserWarning, match="only 3 of the 5"):
        picked = curate(labels, 5)
    assert picked.tolist() == [0, 1, 2]


def test_closest_takes_rows_nearest_their_centroid():
    X = np.r_[np.linspace(0, 1, 20)[:, None], 10 + np.linspace(0, 1, 20)[:, None]].astype(np.float32)
    tree = HierarchicalKMeans([2], n_resampling_steps=0).fit(X)
    picked = curate(tree, 4, strategy="closest")
    for cluster in range(2):
        members = np.flatnonzero(tree.labels_[:, 0] == cluster)
        nearest = members[np.argsort(tree.distances_[members])[:2]]
        assert set(nearest) <= set(picked)


def test_bad_input():
    labels = np.array([0, 1, 1])
    with pytest.raises(ValueError, match="target_size must be an int >= 1"):
        curate(labels, 0)
    with pytest.raises(ValueError, match="multiplier"):
        curate(labels, 2, multiplier=0)
    with pytest.raises(ValueError, match="strategy"):
        curate(labels, 2, strategy="farthest")
    with pytest.raises(ValueError, match="needs distances"):
        curate(labels, 2, strategy="closest")
    with pytest.raises(ValueError, match="integer labels"):
        curate(np.array([0.5, 1.0]), 1)
    with pytest.raises(ValueError, match="-1 for a sample with no cluster"):
        curate(np.array([0, -2]), 1)
