"""The cached epoch plan is reused only when nothing that decides the plan has changed."""

from __future__ import annotations

import numpy as np

from curata import ClusterBatchSampler

CLUSTERS = np.random.default_rng(0).integers(0, 7, 200)


def test_resuming_another_seeds_state_follows_that_seed():
    """A seed-0 sampler that loaded a seed-1 state used to finish the epoch with seed 0's cached plan."""
    seed_one = ClusterBatchSampler(CLUSTERS, 8, seed=1, num_replicas=1, rank=0)
    reference = list(seed_one)
    batches = iter(seed_one)
    for _ in range(5):
        next(batches)
    state = seed_one.state_dict()
    sampler = ClusterBatchSampler(CLUSTERS, 8, seed=0, num_replicas=1, rank=0)
    seed_zero = list(sampler)  # caches seed 0's plan of epoch 0
    assert seed_zero != reference
    sampler.load_state_dict(state)
    assert list(sampler) == reference[5:]


def test_changed_settings_are_not_served_from_the_cache():
    sampler = ClusterBatchSampler(CLUSTERS, 8, seed=0, num_replicas=1, rank=0)
    list(sampler)
    for name, value in [("seed", 3), ("batch_size", 5), ("shuffle", False), ("drop_last", True)]:
        setattr(sampler, name, value)
        expected = ClusterBatchSampler(
            CLUSTERS,
            sampler.batch_size,
            seed=sampler.seed,
            shuffle=sampler.shuffle,
            drop_last=sampler.drop_last,
            num_replicas=1,
            rank=0,
        )
        assert list(sampler) == list(expected), name
