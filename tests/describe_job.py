"""Run under torchrun by tests/embedding/test_describe_shards.py: describe a dataset on every rank.

Usage: describe_job.py TABLE [CRASH_RANK CRASH_AT_IDX]: that rank dies (no cleanup) when it reaches that sample.
describe_job.py TABLE skew: rank 1's dataset scales its samples (a transform the other ranks lack).
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from curata import Vectorizer, describe


class Samples(Dataset):
    """Seeded feature maps with labels; optionally kills this process at one sample."""

    def __init__(self, crash_at: int | None = None, scale: float = 1.0) -> None:
        generator = torch.Generator().manual_seed(0)
        self.data = torch.randn(150, 4, 3, 3, generator=generator) * scale
        self.labels = torch.arange(150) % 7
        self.crash_at = crash_at

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if i == self.crash_at:
            os._exit(3)
        return {"data": self.data[i], "label": self.labels[i]}


def run(path: str, crash_at: int | None = None, scale: float = 1.0) -> None:
    embedder = torch.nn.Conv2d(4, 5, 1)
    with torch.no_grad():
        embedder.weight.copy_(torch.linspace(-1, 1, 20).reshape(5, 4, 1, 1))
        embedder.bias.zero_()
    describe(
        Samples(crash_at, scale),
        embedder,
        path,
        vectorizer=Vectorizer(pool=None, max_vectors=4),
        label_key="label",
        batch_size=8,
        commit_rows=24,
        progress=False,
    )


if __name__ == "__main__":
    dist.init_process_group("gloo")
    crash = None
    if len(sys.argv) > 3 and dist.get_rank() == int(sys.argv[2]):
        crash = int(sys.argv[3])
    skewed = sys.argv[2:] == ["skew"] and dist.get_rank() == 1
    run(sys.argv[1], crash, 1000.0 if skewed else 1.0)
    dist.destroy_process_group()
