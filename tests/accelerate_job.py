"""Run under torchrun by tests/batching/test_sampler_frameworks.py: ClusterBatchSampler inside accelerate and
plain torchrun.

Usage: accelerate_job.py MODE OUT, MODE one of
  torchrun-late        the loader is built at module level, before the process group exists
  accelerate-before    the sampler is built before Accelerator(), the loader prepared
  accelerate-after     the sampler is built after Accelerator()
  accelerate-save      stateful loader: 5 batches, then accelerator.save_state(OUT.state)
  accelerate-load      stateful loader: accelerator.load_state(OUT.state), then the rest of the epoch
Every rank writes OUT.rankR.json: {"epochs": [[batch, ...], ...]} with the dataset indices of each batch.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from curata import ClusterBatchSampler

N_SAMPLES, BATCH_SIZE, EPOCHS = 203, 8, 2


class Indices(Dataset):
    """Sample i is the tensor [i]: a batch tells which samples it holds."""

    def __len__(self) -> int:
        return N_SAMPLES

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([i])


def clusters() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 9, N_SAMPLES)


def make_sampler() -> ClusterBatchSampler:
    return ClusterBatchSampler(clusters(), BATCH_SIZE, pacing="proportional", seed=3)


def run_epochs(loader, epochs: int = EPOCHS) -> list[list[list[int]]]:
    seen = []
    for epoch in range(epochs):
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        else:
            loader.batch_sampler.set_epoch(epoch)
        seen.append([batch.view(-1).tolist() for batch in loader])
    return seen


def main(mode: str, out: str) -> None:
    import torch.distributed as dist

    module_level = DataLoader(Indices(), batch_sampler=make_sampler()) if mode == "torchrun-late" else None
    if mode == "torchrun-late":
        dist.init_process_group("gloo")
        rank, epochs = dist.get_rank(), run_epochs(module_level)
    else:
        from accelerate import Accelerator
        from accelerate.utils import DataLoaderConfiguration

        stateful = mode in ("accelerate-save", "accelerate-load")
        early = make_sampler() if mode == "accelerate-before" else None
        accelerator = Accelerator(cpu=True, dataloader_config=DataLoaderConfiguration(use_stateful_dataloader=stateful))
        sampler = early if early is not None else make_sampler()
        loader = accelerator.prepare(DataLoader(Indices(), batch_sampler=sampler))
        rank = accelerator.process_index
        if mode == "accelerate-save":
            iterator = iter(loader)
            epochs = [[next(iterator).view(-1).tolist() for _ in range(5)]]
            accelerator.save_state(f"{out}.state")
        elif mode == "accelerate-load":
            accelerator.load_state(f"{out}.state")
            epochs = [[batch.view(-1).tolist() for batch in loader]]
        else:
            epochs = run_epochs(loader)
    with open(f"{out}.rank{rank}.json", "w") as file:
        json.dump({"epochs": epochs, "world_size": int(os.environ["WORLD_SIZE"])}, file)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
