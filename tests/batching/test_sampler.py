from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from curata import ClusterBatchSampler, VectorTable
from curata.clustering.clusterize import per_sample_majority


def random_clusters(rng: np.random.Generator) -> np.ndarray:
    k = int(rng.integers(1, 30))
    sizes = np.maximum(1, (rng.pareto(1.0, k) * rng.integers(1, 20)).astype(int))[:k]
    ids = rng.permutation(k * 3)[:k]  # non-contiguous ids
    return rng.permutation(np.repeat(ids, sizes))


CONFIGS = [(seed, strategy) for seed in range(40) for strategy in ("exclude", "restart", "stop")]


@pytest.mark.parametrize(("seed", "strategy"), CONFIGS)
def test_properties(seed, strategy):
    rng = np.random.default_rng(seed)
    clusters = random_clusters(rng)
    b = int(rng.integers(1, 12))
    sampler = ClusterBatchSampler(clusters, b, strategy=strategy, seed=seed, shuffle=bool(seed % 4))
    batches = list(sampler)
    assert len(batches) == len(sampler)
    drawn = np.concatenate(batches)
    sizes = np.bincount(np.unique(clusters, return_inverse=True)[1])
    k = len(sizes)
    per_cluster = np.bincount(np.unique(clusters, return_inverse=True)[1][drawn], minlength=k)
    if strategy == "exclude":
        assert np.array_equal(np.sort(drawn), np.arange(len(clusters)))
    elif strategy == "restart":
        assert set(drawn.tolist()) == set(range(len(clusters)))
        assert np.all(per_cluster == sizes.max())
    else:
        assert np.all(per_cluster == sizes.min())
        assert np.all(np.bincount(drawn, minlength=len(clusters)) <= 1)
    assert all(len(batch) == b for batch in batches[:-1]) and 1 <= len(batches[-1]) <= b
    # composition while every cluster is still active: the first min_size rounds
    all_active = (sizes.min() * k) // b
    for batch in batches[:all_active]:
        ids = clusters[batch]
        if k >= b:
            assert len(set(ids.tolist())) == b
        else:
            counts = np.bincount(np.unique(ids, return_inverse=True)[1])
            assert len(counts) == k and counts.min() >= b // k and counts.max() <= -(-b // k)
    window = math.ceil(k / b)
    for start in range(0, all_active - window + 1):
        seen = np.concatenate(batches[start : start + window])
        assert len(set(clusters[seen].tolist())) == k


def test_same_seed_same_batches_other_epoch_other_batches():
    clusters = np.random.default_rng(0).integers(0, 20, 500)
    a, b = ClusterBatchSampler(clusters, 16, seed=3), ClusterBatchSampler(clusters, 16, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    a.set_epoch(0)
    assert list(a) == first
    assert list(ClusterBatchSampler(clusters, 16, seed=4)) != first


def test_shuffle_inside_clusters_is_uniform_and_independent():
    # clusters 0 and 1 have the same size, so one vectorised call shuffles both: their orders must still be
    # uniform and independent of each other; cluster 2 (size 3) is shuffled in another call
    clusters = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
    sampler = ClusterBatchSampler(clusters, 3, seed=0)
    pairs, orders = np.zeros((4, 4)), {}
    epochs = 3200
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        draws = np.concatenate(list(sampler))
        firsts = [int(draws[clusters[draws] == c][0]) for c in range(3)]
        pairs[firsts[0], firsts[1] - 4] += 1
        order = tuple(draws[clusters[draws] == 2].tolist())
        orders[order] = orders.get(order, 0) + 1
    expected = epochs / 16
    assert np.abs(pairs - expected).max() < 5 * np.sqrt(expected)
    assert len(orders) == 6
    assert max(abs(n - epochs / 6) for n in orders.values()) < 5 * np.sqrt(epochs / 6)


def test_unshuffled_is_in_id_order():
    sampler = ClusterBatchSampler(np.array([1, 0, 1, 0, 2]), 2, shuffle=False)
    assert list(sampler) == [[1, 0], [4, 3], [2]]


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_ddp_ranks_equal_lengths_and_disjoint(world, drop_last):
    clusters = np.random.default_rng(world).integers(0, 13, 421)
    samplers = [
        ClusterBatchSampler(clusters, 8, seed=1, num_replicas=world, rank=r, drop_last=drop_last) for r in range(world)
    ]
    per_rank = [list(s) for s in samplers]
    assert len({len(p) for p in per_rank}) == 1 and all(len(p) == len(s) for p, s in zip(per_rank, samplers))
    flat = [np.concatenate(p) for p in per_rank]
    total = ClusterBatchSampler(clusters, 8, seed=1, drop_last=drop_last)
    global_batches = list(total)
    real = len(global_batches)
    # every global batch goes to exactly one rank; padding repeats at most world - 1 early batches
    seen = np.concatenate(flat)
    if drop_last:
        assert len(np.unique(seen)) == len(seen)
    else:
        assert set(seen.tolist()) == set(range(len(clusters)))
        assert len(seen) - len(np.unique(seen)) <= (world - 1) * 8
    assert len(per_rank[0]) == (real // world if drop_last else -(-real // world))


def test_force_same_size_and_drop_last():
    clusters = np.arange(10) % 3
    forced = list(ClusterBatchSampler(clusters, 4, force_same_size=True, seed=0))
    assert [len(b) for b in forced] == [4, 4, 4]
    assert set(np.concatenate(forced).tolist()) == set(range(10))
    dropped = ClusterBatchSampler(clusters, 4, drop_last=True, seed=0)
    assert [len(b) for b in dropped] == [4, 4] and len(dropped) == 2


def test_state_dict_resumes_at_every_step():
    clusters = np.random.default_rng(5).integers(0, 7, 200)
    reference = ClusterBatchSampler(clusters, 9, seed=2)
    reference.set_epoch(3)
    expected = list(reference)
    for step in range(len(expected) + 1):
        sampler = ClusterBatchSampler(clusters, 9, seed=2)
        sampler.set_epoch(3)
        iterator = iter(sampler)
        head = [next(iterator) for _ in range(step)]
        state = sampler.state_dict()
        fresh = ClusterBatchSampler(clusters, 9, seed=2)
        fresh.load_state_dict(state)
        assert head + list(fresh) == expected
        assert list(fresh) == expected  # the next pass is a whole epoch again


def test_state_from_other_world_or_clusters_is_refused():
    clusters = np.arange(50) % 5
    state = ClusterBatchSampler(clusters, 4, num_replicas=2, rank=0).state_dict()
    with pytest.raises(ValueError, match="world size 2"):
        ClusterBatchSampler(clusters, 4, num_replicas=1, rank=0).load_state_dict(state)
    with pytest.raises(ValueError, match="fingerprint"):
        ClusterBatchSampler(np.arange(50) % 6, 4, num_replicas=2, rank=0).load_state_dict(state)
    with pytest.raises(ValueError, match="missing"):
        ClusterBatchSampler(clusters, 4).load_state_dict({"epoch": 1})


def test_dataloader_workers_and_epoch_forwarding():
    clusters = np.arange(64) % 8
    dataset = TensorDataset(torch.arange(64))
    sampler = ClusterBatchSampler(clusters, 8, seed=0)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=2)
    assert len(loader) == 8
    first = [b[0].tolist() for b in loader]
    assert sorted(np.concatenate(first).tolist()) == list(range(64))
    assert all(len(set((np.array(b) % 8).tolist())) == 8 for b in first)
    sampler.sampler.set_epoch(1)  # what Lightning and accelerate call
    assert sampler.epoch == 1
    assert [b[0].tolist() for b in loader] != first


def test_stateful_dataloader_resumes_mid_epoch():
    stateful = pytest.importorskip("torchdata.stateful_dataloader")
    clusters = np.arange(100) % 10
    dataset = TensorDataset(torch.arange(100))

    def loader():
        return stateful.StatefulDataLoader(dataset, batch_sampler=ClusterBatchSampler(clusters, 10, seed=1))

    expected = [b[0].tolist() for b in loader()]
    first = loader()
    iterator = iter(first)
    head = [next(iterator)[0].tolist() for _ in range(4)]
    state = first.state_dict()
    second = loader()
    second.load_state_dict(state)
    assert head + [b[0].tolist() for b in second] == expected


def test_table_column_majority(tmp_path):
    table = VectorTable.from_arrays(tmp_path / "t", np.ones((5, 2)), ids=[0, 0, 0, 1, 1])
    table.add_column("cluster", np.array([3, 3, 1, 2, 0]))
    sampler = ClusterBatchSampler("cluster", 2, table=table)
    assert sampler.n_clusters == 2 and sampler.num_samples == 2
    assert per_sample_majority(np.array([0, 0, 1, 1]), np.array([4, 2, 7, 7])).tolist() == [2, 7]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((np.arange(5), 0), {}, ValueError, "batch_size must be an int >= 1"),
        ((np.array([0, -2, 2]), 2), {}, ValueError, "clusters must be >= 0, or -1 .* got -2 at sample 1"),
        ((np.array([0.5, 1.0]), 2), {}, TypeError, "integer ids"),
        ((np.zeros((2, 3), dtype=int), 2), {}, ValueError, "1-D"),
        ((np.arange(5), 2), {"strategy": "drop"}, ValueError, "strategy"),
        ((np.arange(5), 2), {"num_replicas": 2, "rank": 2}, ValueError, "rank must be in"),
        (("cluster", 2), {}, ValueError, "pass the VectorTable"),
    ],
)
def test_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        ClusterBatchSampler(*args, **kwargs)


def test_proportional_pacing_stratifies_every_batch():
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(4), [400, 200, 100, 100])[rng.permutation(800)]
    sampler = ClusterBatchSampler(clusters, 16, pacing="proportional", seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 50
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(800))
    for batch in batches:
        counts = np.bincount(clusters[batch], minlength=4)
        assert np.all(np.abs(counts - np.array([8, 4, 2, 2])) <= 1), counts
    balanced = list(ClusterBatchSampler(clusters, 16, seed=0))
    assert np.bincount(clusters[balanced[-1]], minlength=4)[0] == 16  # the round-robin's tail: one cluster left
    with pytest.raises(ValueError, match="strategy='exclude'"):
        ClusterBatchSampler(clusters, 16, pacing="proportional", strategy="stop")
    with pytest.raises(ValueError, match="pacing"):
        ClusterBatchSampler(clusters, 16, pacing="fast")
