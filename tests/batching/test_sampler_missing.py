"""Samples with no vector (unreadable items, empty masks) travel as "no cluster" (-1): never drawn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from curata import ClusterBatchSampler, Unreadable


class _SomeUnreadable(Dataset):
    def __init__(self, n: int, unreadable: set[int]) -> None:
        self.data = np.random.default_rng(0).random((n, 4), dtype=np.float32)
        self.unreadable = unreadable

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> np.ndarray | Unreadable:
        return Unreadable(f"item {i}", "corrupt") if i in self.unreadable else self.data[i]


def test_no_cluster_is_never_drawn():
    clusters = np.array([0, -1, 1, 0, -1, 1, 2])
    sampler = ClusterBatchSampler(clusters, 2, seed=0)
    drawn = [s for batch in sampler for s in batch]
    assert sorted(drawn) == [0, 2, 3, 5, 6]
    assert sampler.num_samples == 5
    with pytest.raises(ValueError, match="-1 for a sample with no cluster"):
        ClusterBatchSampler(np.array([0, -2]), 2)
    with pytest.raises(ValueError, match="all are -1"):
        ClusterBatchSampler(np.array([-1, -1]), 2)


def test_from_dataset_skips_unreadable_samples_on_the_fresh_and_the_cached_path(tmp_path):
    data = _SomeUnreadable(40, {7, 19})
    for _ in range(2):  # the second call reads the stored clusters
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sampler = ClusterBatchSampler.from_dataset(
                data, torch.nn.Identity(), n_clusters=4, batch_size=5, path=tmp_path, seed=0
            )
        drawn = sorted(s for batch in sampler for s in batch)
        assert drawn == sorted(set(range(40)) - {7, 19})
