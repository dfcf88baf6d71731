"""ClusterBatchSampler inside the real clients: accelerate, Lightning, torchdata, plain torchrun (2 CPU processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from launch import HERE, TEARDOWN_ABORT, free_port, torchrun
from torch.utils.data import DataLoader, TensorDataset

import curata.batching.frameworks as frameworks
from curata import ClusterBatchSampler

sys.path.insert(0, str(HERE))
from accelerate_job import BATCH_SIZE, EPOCHS, N_SAMPLES, clusters, make_sampler  # noqa: E402

torch_distributed = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is missing")


def read_ranks(out: Path, world: int) -> list[list[list[list[int]]]]:
    """Per rank, per epoch, the batches of dataset indices a job recorded."""
    return [json.loads(Path(f"{out}.rank{rank}.json").read_text())["epochs"] for rank in range(world)]


def check_epochs(ranks: list[list[list[list[int]]]], *, padded: int = 0) -> None:
    """Every sample once per epoch over all ranks (up to ``padded`` repeats), equal batch counts, epochs differ."""
    assert len({len(epochs) for epochs in ranks}) == 1 and len(ranks[0]) == EPOCHS
    firsts = []
    for epoch in range(EPOCHS):
        batches = [rank[epoch] for rank in ranks]
        assert len({len(b) for b in batches}) == 1, [len(b) for b in batches]  # equal counts: no hung collective
        drawn = np.concatenate([np.concatenate(b) for b in batches])
        assert set(drawn.tolist()) == set(range(N_SAMPLES))  # coverage
        assert len(drawn) == N_SAMPLES + padded  # disjoint up to the padding
        assert all(len(batch) == BATCH_SIZE for b in batches for batch in b[:-1])
        firsts.append(batches[0][0])
    assert firsts[0] != firsts[1]  # set_epoch reached the sampler


def run_lightning(tmp_path: Path, strategy: str, inject: bool, built: str, phase: str = "plain") -> Path:
    out = tmp_path / f"{strategy}-{int(inject)}-{built}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE), "MASTER_PORT": str(free_port())}
    command = [sys.executable, str(HERE / "lightning_job.py"), strategy, str(int(inject)), built, str(out), phase]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0 or TEARDOWN_ABORT in result.stderr, result.stderr[-3000:]
    return out


@torch_distributed
@pytest.mark.parametrize("built", ["before", "after"])
def test_accelerate_two_processes_see_every_sample_once(tmp_path, built):
    """accelerate deals batches itself: the sampler yields the whole epoch under it (it used to lose 44 %)."""
    pytest.importorskip("accelerate")
    out = tmp_path / "run"
    result = torchrun("accelerate_job.py", f"accelerate-{built}", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    global_batches = -(-N_SAMPLES // BATCH_SIZE)
    padded = -(-global_batches // 2) * 2 * BATCH_SIZE - N_SAMPLES  # accelerate evens the ranks with full batches
    check_epochs(read_ranks(out, 2), padded=padded)


@torch_distributed
def test_accelerate_save_state_resumes_mid_epoch(tmp_path):
    pytest.importorskip("accelerate")
    whole, out = tmp_path / "whole", tmp_path / "run"
    for mode, target in (("accelerate-after", whole), ("accelerate-save", out)):
        result = torchrun("accelerate_job.py", mode, str(target))
        assert result.returncode == 0, result.stderr[-3000:]
    head = read_ranks(out, 2)
    result = torchrun("accelerate_job.py", "accelerate-load", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    for expected, first, rest in zip(read_ranks(whole, 2), head, read_ranks(out, 2)):
        assert len(first[0]) == 5 and first[0] + rest[0] == expected[0]


@torch_distributed
def test_torchrun_loader_built_before_the_process_group(tmp_path):
    """Rank and world size are read at the epoch's start: a module-level loader is dealt like any other."""
    out = tmp_path / "run"
    result = torchrun("accelerate_job.py", "torchrun-late", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    check_epochs(read_ranks(out, 2))


_FURTHER = pytest.mark.full  # each ~15 s: make test runs one per strategy and injection, --full the rest
LIGHTNING_CONFIGS = [
    ("ddp", True, "hook"),
    pytest.param("ddp", True, "module", marks=_FURTHER),
    pytest.param("ddp", False, "hook", marks=_FURTHER),
    ("ddp", False, "module"),
    pytest.param("ddp_spawn", True, "hook", marks=_FURTHER),
    ("ddp_spawn", True, "module"),
    ("ddp_spawn", False, "module"),
]


@torch_distributed
@pytest.mark.parametrize(("strategy", "inject", "built"), LIGHTNING_CONFIGS)
def test_lightning_two_processes_see_every_sample_once(tmp_path, strategy, inject, built):
    """Lightning's defaults used to crash (re-creation with a DistributedSampler), ddp_spawn to duplicate data."""
    pytest.importorskip("lightning")
    check_epochs(read_ranks(run_lightning(tmp_path, strategy, inject, built), 2))


@torch_distributed
def test_lightning_checkpoint_resumes_mid_epoch_with_stateful_loader(tmp_path):
    pytest.importorskip("lightning")
    pytest.importorskip("torchdata")
    out = run_lightning(tmp_path, "ddp", True, "module", "save")
    whole = read_ranks(out, 2)
    run_lightning(tmp_path, "ddp", True, "module", "load")
    resumed = read_ranks(out, 2)
    for expected, rest in zip(whole, resumed):
        assert rest[0] == expected[0][5:]  # the checkpoint was taken after 5 steps of epoch 0
        assert rest[1] == expected[1]


def test_plain_loader_under_lightning_warns_once(monkeypatch):
    pytest.importorskip("lightning")
    stateful = pytest.importorskip("torchdata.stateful_dataloader")
    import lightning  # noqa: F401  (the warning is for Lightning users)

    monkeypatch.setattr(frameworks, "_warned_not_resumable", False)
    dataset = TensorDataset(torch.arange(20))
    with pytest.warns(UserWarning, match="StatefulDataLoader"):
        list(DataLoader(dataset, batch_sampler=ClusterBatchSampler(np.arange(20) % 4, 5)))
    monkeypatch.setattr(frameworks, "_warned_not_resumable", False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings("ignore", message=".*set_vital.*")
        list(stateful.StatefulDataLoader(dataset, batch_sampler=ClusterBatchSampler(np.arange(20) % 4, 5)))


@pytest.mark.parametrize("step", [0, 3, 7, 13, 26])
def test_stateful_dataloader_with_two_workers_resumes_exactly(step):
    stateful = pytest.importorskip("torchdata.stateful_dataloader")
    dataset = TensorDataset(torch.arange(N_SAMPLES))

    def loader():
        return stateful.StatefulDataLoader(dataset, batch_sampler=make_sampler(), num_workers=2)

    reference = loader()
    epoch_0 = [b[0].tolist() for b in reference]
    reference.batch_sampler.set_epoch(1)
    expected = [b[0].tolist() for b in reference]
    assert sorted(np.concatenate(expected).tolist()) == list(range(N_SAMPLES)) and expected != epoch_0
    first = loader()
    first.batch_sampler.set_epoch(1)
    iterator = iter(first)
    head = [next(iterator)[0].tolist() for _ in range(step)]
    state = first.state_dict()
    second = loader()
    second.load_state_dict(state)
    assert head + [b[0].tolist() for b in second] == expected


def test_rank_and_world_are_read_when_the_epoch_starts(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    sampler = make_sampler()  # built before any launcher set the environment
    alone = len(sampler)
    monkeypatch.setenv("WORLD_SIZE", "2")
    halves = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        assert len(sampler) == -(-alone // 2) and sampler.rank == rank and sampler.num_replicas == 2
        halves.append(np.concatenate(list(sampler)))
    assert not set(halves[0].tolist()) & set(halves[1].tolist())
    assert set(np.concatenate(halves).tolist()) == set(range(N_SAMPLES))


def test_lightning_style_recreation_keeps_settings():
    """What Lightning does with use_distributed_sampler=True: cls(**recorded arguments, sampler=DistributedSampler)."""
    from torch.utils.data.distributed import DistributedSampler

    original = ClusterBatchSampler(clusters(), BATCH_SIZE, seed=3, pacing="proportional")
    arguments = dict(vars(original)["__pl_saved_kwargs"])
    per_rank = []
    for rank in (0, 1):
        injected = DistributedSampler(range(N_SAMPLES), num_replicas=2, rank=rank, shuffle=True)
        recreated = ClusterBatchSampler(**{**arguments, "sampler": injected})
        assert (recreated.rank, recreated.num_replicas, recreated.pacing, recreated.seed) == (
            rank,
            2,
            "proportional",
            3,
        )
        per_rank.append(list(recreated))
    reference = [
        list(ClusterBatchSampler(clusters(), BATCH_SIZE, seed=3, pacing="proportional", num_replicas=2, rank=rank))
        for rank in (0, 1)
    ]
    assert per_rank == reference
    with pytest.raises(TypeError, match="use_distributed_sampler=False"):
        ClusterBatchSampler(injected, batch_size=BATCH_SIZE, drop_last=False)  # Lightning's fallback call
    with pytest.raises(ValueError, match="framework's sampler says rank 1 of 2"):
        list(ClusterBatchSampler(clusters(), BATCH_SIZE, rank=0, num_replicas=2, sampler=injected))


def test_explicit_world_under_a_sharding_wrapper_is_refused():
    class Shard:  # the shape of accelerate's BatchSamplerShard
        def __init__(self, batch_sampler, num_processes):
            self.batch_sampler, self.num_processes = batch_sampler, num_processes

        def __iter__(self):
            yield from self.batch_sampler

    sampler = ClusterBatchSampler(clusters(), BATCH_SIZE, num_replicas=3, rank=0)
    with pytest.raises(ValueError, match="leave num_replicas and rank unset"):
        list(Shard(sampler, 2))
    whole = ClusterBatchSampler(clusters(), BATCH_SIZE, num_replicas=2, rank=1)
    assert len(list(Shard(whole, 2))) == -(-N_SAMPLES // BATCH_SIZE)  # the wrapper gets the whole epoch


GOOD_STATE = {"epoch": 1, "seed": 3, "batches_yielded": 2, "world_size": 1}


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"seed": 9, "batches_yielded": "x"}, TypeError, r"state\['batches_yielded'\] must be an int"),
        ({"batches_yielded": -1}, ValueError, r"state\['batches_yielded'\] must be an int >= 0"),
        ({"epoch": -2}, ValueError, r"state\['epoch'\] must be an int >= 0"),
        ({"epoch": 1.5}, TypeError, r"state\['epoch'\] must be an int"),
        ({"batches_yielded": 10_000}, ValueError, "at most the epoch's 26 batches"),
        ({"world_size": 2}, ValueError, "world size 2"),
        ({"fingerprint": "other"}, ValueError, "fingerprint"),
        ({"fingerprint": None}, ValueError, "fingerprint"),
        ({"extra": 1}, ValueError, r"unknown keys \['extra'\]"),
    ],
)
def test_load_state_dict_checks_every_key_before_changing_anything(change, error, match):
    sampler = make_sampler()
    sampler.set_epoch(4)
    before = sampler.state_dict()
    state = {**GOOD_STATE, "fingerprint": before["fingerprint"], **change}
    with pytest.raises(error, match=match):
        sampler.load_state_dict(state)
    assert sampler.state_dict() == before and sampler.seed == 3
    with pytest.raises(TypeError, match="state must be a dict"):
        sampler.load_state_dict([("epoch", 1)])
