"""The chain, not the stage: generated datasets (1-4 vectors per sample, unreadable items, labels) through
describe -> cluster -> tree -> curate/select/split/dedup -> sampler -> an epoch, on one rank and on two.

Every id that comes back names a readable sample; splits are disjoint by sample; each readable sample is drawn
once per epoch; the same seed gives the same answers.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import TinyCNN
from torch.utils.data import Dataset

from curata import (
    ClusterBatchSampler,
    HierarchicalKMeans,
    KMeans,
    TorchEmbedder,
    Unreadable,
    Vectorizer,
    cluster,
    curate,
    dedup,
    describe,
    exact_duplicates,
    select,
    split,
)


class _Generated(Dataset):
    """Seeded images in a few shapes (so that the clusters mean something), labels, some unreadable items."""

    def __init__(self, n: int, unreadable: np.ndarray, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 3, (n,), generator=g)
        base = torch.rand(3, 1, 8, 8, generator=g)
        self.images = base[self.labels] + 0.3 * torch.rand(n, 1, 8, 8, generator=g)
        self.unreadable = set(unreadable.tolist())

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor] | Unreadable:
        if i in self.unreadable:
            return Unreadable(f"item {i}", "corrupt")
        return {"data": self.images[i], "label": self.labels[i]}


def _chain(tmp_path, case: int, seed: int) -> dict[str, object]:
    rng = np.random.default_rng(case)
    n = int(rng.integers(60, 120))
    per_sample = int(rng.integers(1, 5))
    unreadable = np.sort(rng.choice(n, int(rng.integers(1, 6)), replace=False))
    data = _Generated(n, unreadable, seed=case)
    torch.manual_seed(case)  # the seeded construction of a test model
    model = TinyCNN()
    vectorizer = Vectorizer("mean") if per_sample == 1 else Vectorizer(max_vectors=per_sample, seed=case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unreadable items are announced; that is not under test here
        table = describe(
            data,
            TorchEmbedder(model, ["stage"]),
            tmp_path / f"case{case}-{seed}",
            vectorizer=vectorizer,
            label_key="label",
            progress=False,
        )
        readable = np.setdiff1d(np.arange(n), unreadable)
        assert np.array_equal(np.unique(table.column("idx")), readable)
        per_sample_cluster = cluster(table, KMeans(5, seed=seed), seed=seed)
        tree = HierarchicalKMeans([8, 3], n_resampling_steps=1, seed=seed).fit(table)
        curated = curate(tree, 20, seed=seed)
        selected = select(table, 10, seed=seed)
        parts = split(table, {"train": 0.7, "val": 0.3}, seed=seed)
        sizes = {"train": 0.7, "val": 0.3}
        disjoint = split(table, sizes, mode="disjoint", clusters=table.column("cluster"), seed=seed)
        kept, groups = dedup(table, space="centred", max_removed=1.0, seed=seed)
        exact_kept, _ = exact_duplicates(table)
        curated_within = curate(tree, 10, within=kept, seed=seed)
    sampler = ClusterBatchSampler(per_sample_cluster, batch_size=7, seed=seed)
    epoch = [sample for batch in sampler for sample in batch]
    ranks = [  # drop_last: no batch repeated to even the ranks' counts
        [
            s
            for batch in ClusterBatchSampler(per_sample_cluster, 4, seed=seed, num_replicas=2, rank=r, drop_last=True)
            for s in batch
        ]
        for r in range(2)
    ]
    return {
        "n": n,
        "readable": readable,
        "clusters": per_sample_cluster,
        "curated": curated,
        "curated_within": curated_within,
        "selected": selected,
        "parts": parts,
        "disjoint": disjoint,
        "kept": kept,
        "groups": groups,
        "exact_kept": exact_kept,
        "epoch": np.array(epoch),
        "ranks": ranks,
        "per_sample": per_sample,
    }


@pytest.mark.parametrize("case", range(4))
def test_every_id_names_a_readable_sample(tmp_path, case):
    out = _chain(tmp_path, case, seed=0)
    readable, n = out["readable"], out["n"]
    clusters = out["clusters"]
    assert len(clusters) == n  # every sample counted, the unreadable ones as "no cluster"
    assert np.array_equal(np.flatnonzero(clusters >= 0), readable)
    for name in ("curated", "curated_within", "selected", "kept", "exact_kept"):
        ids = out[name]
        assert np.isin(ids, readable).all(), name
        assert len(np.unique(ids)) == len(ids), name  # a sample counted once
    assert len(out["curated"]) == 20 and len(out["selected"]) == 10
    assert np.isin(out["curated_within"], out["kept"]).all()
    assert len(out["exact_kept"]) == len(readable)
    for group in out["groups"]:
        assert np.isin(group, readable).all()
    for parts in (out["parts"], out["disjoint"]):
        train, val = parts["train"], parts["val"]
        assert len(np.intersect1d(train, val)) == 0  # disjoint by sample, whatever the vectors per sample
        assert np.isin(np.r_[train, val], readable).all()
    assert len(out["parts"]["train"]) + len(out["parts"]["val"]) == len(readable)
    # one epoch draws every readable sample once, never an unreadable one
    assert sorted(out["epoch"].tolist()) == readable.tolist()
    # two ranks: disjoint readable samples, as many on each
    rank0, rank1 = (set(r) for r in out["ranks"])
    assert rank0 <= set(readable.tolist()) and rank1 <= set(readable.tolist())
    assert not (rank0 & rank1) and len(out["ranks"][0]) == len(out["ranks"][1])


def test_same_seed_same_answers(tmp_path):
    (tmp_path / "again").mkdir()
    first, again = _chain(tmp_path, 1, seed=3), _chain(tmp_path / "again", 1, seed=3)
    for name in ("clusters", "curated", "curated_within", "selected", "kept", "epoch"):
        assert np.array_equal(first[name], again[name]), name
    for name in ("train", "val"):
        assert np.array_equal(first["parts"][name], again["parts"][name])
