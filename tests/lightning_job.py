"""Run by tests/batching/test_sampler_frameworks.py: ClusterBatchSampler inside a real Lightning Trainer on CPU.

Usage: lightning_job.py STRATEGY INJECT BUILT OUT [PHASE]
  STRATEGY  ddp | ddp_spawn (2 processes) | single (1 process)
  INJECT    1 | 0: Trainer(use_distributed_sampler=...)
  BUILT     hook (the loader is built in train_dataloader) | module (at import, before any process group)
  PHASE     plain (default: 2 epochs, a plain DataLoader) | save (2 epochs, a checkpoint saved mid-epoch 0
            after 5 steps as OUT.ckpt) | load (resume from OUT.ckpt); save and load use a StatefulDataLoader.
Every rank writes OUT.rankR.json:
{"epochs": [[batch, ...], ...]} with the dataset indices of each batch, by the epoch Lightning reports.
"""

from __future__ import annotations

import json
import sys
import warnings

import lightning as L
import torch
from accelerate_job import EPOCHS, Indices, make_sampler
from torch.utils.data import DataLoader

SAVE_AT_STEP = 5


def make_loader() -> DataLoader:
    if PHASE == "plain":
        return DataLoader(Indices(), batch_sampler=make_sampler())
    from torchdata.stateful_dataloader import StatefulDataLoader

    return StatefulDataLoader(Indices(), batch_sampler=make_sampler())


if __name__ in ("__main__", "__mp_main__"):  # run as a script (ddp_spawn's children too), not when pytest imports it
    STRATEGY, INJECT, BUILT, OUT = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4]
    PHASE = sys.argv[5] if len(sys.argv) > 5 else "plain"
    MODULE_LOADER = make_loader() if BUILT == "module" else None


class Recorder(L.LightningModule):
    """A one-weight model that records the sample indices of every batch it is given.

    It takes no optimiser step (the sampler, not the gradients, is under test), and every rank has written its
    record before any rank tears down (see TEARDOWN_ABORT in test_distributed.py).
    """

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: dict[int, list[list[int]]] = {}

    def train_dataloader(self) -> DataLoader:
        return MODULE_LOADER if MODULE_LOADER is not None else make_loader()

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self.seen.setdefault(self.current_epoch, []).append(batch.view(-1).tolist())

    def on_train_batch_end(self, outputs: object, batch: torch.Tensor, batch_idx: int) -> None:
        if PHASE == "save" and self.current_epoch == 0 and batch_idx + 1 == SAVE_AT_STEP:
            self.trainer.save_checkpoint(f"{OUT}.ckpt")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def on_train_end(self) -> None:
        epochs = [self.seen[e] for e in sorted(self.seen)]
        with open(f"{OUT}.rank{self.global_rank}.json", "w") as file:
            json.dump({"epochs": epochs, "world_size": self.trainer.world_size}, file)
        self.trainer.strategy.barrier("records written")


def main() -> None:
    warnings.simplefilter("ignore")  # Lightning's advice on CPU workers and logging is noise here
    devices = 1 if STRATEGY == "single" else 2
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="auto" if STRATEGY == "single" else STRATEGY,
        use_distributed_sampler=INJECT,
        max_epochs=EPOCHS,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = Recorder()
    trainer.fit(model, ckpt_path=f"{OUT}.ckpt" if PHASE == "load" else None)


if __name__ == "__main__":
    main()
