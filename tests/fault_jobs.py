"""Jobs for tests/store/test_faults.py: every writing path of curata, each written as a user would rerun it after
a crash.

Every job takes the work directory first and, when it finishes, saves what it produced to ``WORKDIR/result.npz``
so a resumed run can be compared bit for bit with an uninterrupted one.
"""

from __future__ import annotations

import datetime
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

import curata
import curata.store.locking
from curata import HierarchicalKMeans, VectorTable, describe
from curata.cli.main import main as cli
from curata.exploring.report import _pyplot

_pyplot()  # imported once in the forkserver, not in every child

warnings.filterwarnings("ignore", message="lance is not fork-safe")  # children come from a forkserver

ROWS = 240
COMMIT_ROWS = 40


def samples() -> np.ndarray:
    return np.random.default_rng(0).random((ROWS, 8), dtype=np.float32)


def embedder() -> torch.nn.Module:
    model = torch.nn.Linear(8, 4)
    with torch.no_grad():
        model.weight.copy_(torch.linspace(-1, 1, 32).reshape(4, 8))
        model.bias.zero_()
    return model


def save_table(workdir: str, path: Path) -> None:
    table = VectorTable.open(path)
    arrays = {name: table.column(name) for name in table.columns}
    arrays["attrs"] = np.array(json.dumps({"note": table.get_attr("note"), "fingerprint": table.fingerprint}))
    np.savez(Path(workdir) / "result.npz", **arrays)


# ---------------------------------------------------------------------------------------------------- the jobs
def describe_job(workdir: str) -> None:
    """describe() in one process: one creation, then an append every COMMIT_ROWS rows."""
    path = Path(workdir) / "vectors"
    describe(samples(), embedder(), path, commit_rows=COMMIT_ROWS, batch_size=20, progress=False)
    save_table(workdir, path)


def _rank(workdir: str, rank: int) -> None:
    os.environ["FAULT_RANK"] = str(rank)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{Path(workdir) / '.store'}",
        rank=rank,
        world_size=2,
        timeout=datetime.timedelta(seconds=60),
    )
    path = Path(workdir) / "vectors"
    describe(samples(), embedder(), path, commit_rows=COMMIT_ROWS, batch_size=20, progress=False)
    dist.barrier()
    dist.destroy_process_group()


def distributed_describe_job(workdir: str) -> None:
    """describe() on two gloo ranks (this process and a fork of it): fragments per rank, one commit by rank 0."""
    store = Path(workdir) / ".store"
    store.unlink(missing_ok=True)
    os.setpgrp()  # a kill takes the whole group, as torchrun ends every rank when one dies
    os.environ["FAULT_KILL_GROUP"] = "1"
    child = os.fork()
    if child == 0:
        try:
            _rank(workdir, 1)
        finally:
            os._exit(0)
    _rank(workdir, 0)
    _, status = os.waitpid(child, 0)
    assert status == 0, f"rank 1 ended with status {status}"
    save_table(workdir, Path(workdir) / "vectors")


def append_job(workdir: str) -> None:
    """A table built from arrays, then four appends, each skipped when its samples are already there."""
    path = Path(workdir) / "t"
    data = samples()
    if not path.exists():
        VectorTable.from_arrays(path, data[:40], labels=np.arange(40) % 3)
    table = VectorTable.open(path)
    for start in range(40, ROWS, 50):
        ids = np.arange(start, min(ROWS, start + 50))
        if not np.isin(ids, table.sample_ids()).any():
            table.append(ids, np.zeros(len(ids)), data[ids], labels=ids % 3)
    save_table(workdir, path)


def add_column_job(workdir: str) -> None:
    """New columns, overwritten columns and an attribute on a table built from arrays."""
    path = Path(workdir) / "t"
    if not path.exists():
        VectorTable.from_arrays(path, samples())
    table = VectorTable.open(path)
    table.add_column("cluster", np.arange(ROWS) % 5, overwrite=True)
    table.add_column("score", np.linspace(0, 1, ROWS), overwrite=True)
    table.add_column("cluster", np.arange(ROWS) % 7, overwrite=True)
    table.add_column("embedding_2d", samples()[:, :2], overwrite=True)
    table.set_attr("note", {"made_by": "add_column_job"})
    save_table(workdir, path)


OLD_ROWS = 30


def overwrite_setup(workdir: str) -> None:
    VectorTable.from_arrays(Path(workdir) / "t", np.ones((OLD_ROWS, 3)), labels=np.zeros(OLD_ROWS, dtype=int))


def overwrite_job(workdir: str) -> None:
    """from_arrays(overwrite=True) over an existing table of another shape."""
    path = Path(workdir) / "t"
    VectorTable.from_arrays(path, samples(), ids=np.arange(ROWS) // 2, overwrite=True)
    save_table(workdir, path)


def overwrite_state(workdir: str) -> None:
    """After a kill: the table at its path must be the old one or the new one, whole."""
    table = VectorTable.open(Path(workdir) / "t")
    old = len(table) == OLD_ROWS and table.dim == 3 and table.vectors().sum() == OLD_ROWS * 3
    new = len(table) == ROWS and table.dim == 8 and np.array_equal(table.vectors(), samples())
    assert old or new, f"neither old nor new: {table}"
    assert not [p for p in Path(workdir).iterdir() if ".staging-" in p.name or ".retired-" in p.name]


def checkpoint_job(workdir: str) -> None:
    """HierarchicalKMeans.fit with a checkpoint directory (every level and step saved as it finishes)."""
    X = np.random.default_rng(0).normal(size=(1500, 6)).astype(np.float32)
    tree = HierarchicalKMeans([20, 6, 3], n_resampling_steps=1, n_iter=4, seed=0)
    tree.fit(X, checkpoint=Path(workdir) / "checkpoint")
    np.savez(Path(workdir) / "result.npz", labels=tree.labels_, centroids=tree.centroids_[0])


def cli_job(workdir: str) -> None:
    """`curata describe` into one run directory, then every vectors-reading command into another."""
    os.chdir(workdir)
    if not Path("x.npy").exists():
        np.save("x.npy", samples())
        Path("cli_data.py").write_text(
            "import fault_jobs\ndef make():\n    return fault_jobs.samples()[:60], fault_jobs.embedder()\n"
        )
    cli(["describe", "--data", "cli_data:make", "--out", "d", "--batch-size", "20"])
    os.replace("d/summary.json", "r-describe-summary.json")
    for command in (
        ["cluster", "--levels", "6"],
        ["curate", "--levels", "12", "4", "--resampling", "1", "--target", "60", "--n-iter", "5"],
        ["select", "--n", "9"],
        ["split", "--sizes", "train=0.75", "val=0.25"],
        ["dedup", "--threshold", "0.999"],
        ["report", "--curated", "r/curated_ids.npy"],
    ):
        cli([command[0], "--vectors", "x.npy", "--out", "r", *command[1:]])
        summary = json.loads(Path("r/summary.json").read_text())
        os.replace("r/summary.json", f"r/summary-{command[0]}.json")
        assert summary["command"] == command[0]
    outputs = {}
    for file in sorted(Path("r").rglob("*")):
        if file.is_file() and file.relative_to("r").parts[0] != "vectors":
            text = file.read_bytes()
            if file.suffix == ".json":
                text = json.dumps({k: v for k, v in json.loads(text).items() if k != "seconds"}).encode()
            outputs[str(file.relative_to("r")).replace("/", "__")] = np.frombuffer(text, dtype=np.uint8)
    for run_dir in ("r", "d"):
        table = VectorTable.open(f"{run_dir}/vectors")
        outputs.update({f"{run_dir}_table__{name}": table.column(name) for name in table.columns})
    summary = json.loads(Path("r-describe-summary.json").read_text())
    outputs["describe_summary"] = np.frombuffer(json.dumps(summary["rows"]).encode(), dtype=np.uint8)
    np.savez(Path(workdir) / "result.npz", **outputs)


# ---------------------------------------------------------------------------------------------------- two writers
def _record_refusal(workdir: str, name: str, action: object) -> None:
    """Run ``action()``; a refusal by the lock is written to ``WORKDIR/NAME.refused`` instead of raised."""
    try:
        action()  # type: ignore[operator]
    except curata.TableLockedError as exc:
        (Path(workdir) / f"{name}.refused").write_text(str(exc))


class _SlowRows(torch.utils.data.Dataset):
    def __init__(self, data: np.ndarray) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> np.ndarray:
        time.sleep(0.004)  # long enough for a second job to start while the first runs
        return self.data[i]


def slow_describe_job(workdir: str, name: str) -> None:
    path = Path(workdir) / "vectors"
    _record_refusal(
        workdir,
        name,
        lambda: describe(
            _SlowRows(samples()), embedder(), path, commit_rows=COMMIT_ROWS, batch_size=20, progress=False
        ),
    )


def hold_lock_job(workdir: str, path: str, seconds: float) -> None:
    """Hold the write lock of ``path`` (as a long job would) for ``seconds``."""
    with curata.store.locking.write_lock(path):
        (Path(workdir) / "holding").touch()
        time.sleep(seconds)


def appender_job(workdir: str, first: int) -> None:
    """Ten appends of ten rows with ids first, first + 1, ..."""
    table = VectorTable.open(Path(workdir) / "t")
    for start in range(first, first + 100, 10):
        ids = np.arange(start, start + 10)
        table.append(ids, np.zeros(10), np.full((10, 8), start, dtype=np.float32), labels=ids % 3)


def column_writer_job(workdir: str) -> None:
    """Add a column of row numbers, again and again, while rows may be appended."""
    table = VectorTable.open(Path(workdir) / "t")
    for _ in range(10):
        try:
            table.add_column("row", np.arange(len(table)), overwrite=True)
        except ValueError as exc:
            assert "the table now has" in str(exc) or "one entry per row" in str(exc), exc


def overwriter_job(workdir: str, value: float) -> None:
    VectorTable.from_arrays(Path(workdir) / "t", np.full((50, 4), value), overwrite=True)


def cli_cluster_job(workdir: str, name: str) -> None:
    os.chdir(workdir)
    _record_refusal(
        workdir,
        name,
        lambda: cli(
            ["curate", "--vectors", "x.npy", "--out", "r", "--target", "9", "--levels", "40", "8", "--resampling", "3"]
        ),
    )


def checkpoint_fit_job(workdir: str, name: str) -> None:
    X = np.random.default_rng(0).normal(size=(20000, 16)).astype(np.float32)
    tree = HierarchicalKMeans([200, 20], n_resampling_steps=2, n_iter=10, seed=0)
    _record_refusal(workdir, name, lambda: tree.fit(X, checkpoint=Path(workdir) / "checkpoint"))


__all__ = [name for name in dir() if name.endswith(("_job", "_setup", "_state", "Rows"))] + ["curata"]
