"""What does running k-means and curation on 2 processes (torchrun, gloo) buy on this machine?

Writes a 2M x 384 float32 VectorTable (a Gaussian mixture), then runs the same job under
``torchrun --nproc_per_node=1`` and ``--nproc_per_node=2`` (threads split evenly, so both use every core):
KMeans(k=1000) with 5 Lloyd iterations, a 2-level HierarchicalKMeans with one resampling step, and curate 200k
rows. Every rank reads its own block of rows from the table. Prints the time per stage, the speed-up of 2
processes over 1, and whether both runs gave the same labels.

    python bench/distributed.py [--rows 2000000 --dim 384 --k 1000 --processes 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from curata import HierarchicalKMeans, KMeans, VectorTable, curate


def worker(table_path: str, out: str, k: int) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo")
    table = VectorTable.open(table_path)
    times: dict[str, float] = {}
    dist.barrier()
    start = time.perf_counter()
    flat = KMeans(k, n_iter=5, init="random", seed=0).fit(table)
    times["KMeans, 5 iterations"] = time.perf_counter() - start
    dist.barrier()
    start = time.perf_counter()
    tree = HierarchicalKMeans([k, k // 10], n_resampling_steps=1, n_iter=5, init="random", seed=0).fit(table)
    times["HierarchicalKMeans, 1 resampling step"] = time.perf_counter() - start
    start = time.perf_counter()
    chosen = curate(tree, len(table) // 10, seed=0)
    times["curate 10 %"] = time.perf_counter() - start
    if dist.get_rank() == 0:
        np.savez(out, flat=flat.labels_, tree=tree.labels_, chosen=chosen)
        Path(out + ".json").write_text(json.dumps(times))
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(
        f"curata distributed bench, {date.today()}, {platform.processor() or platform.machine()}, {cores} cores, "
        f"torch {torch.__version__}, gloo"
    )
    workdir = Path(tempfile.mkdtemp(prefix="curata-dist-"))
    try:
        rng = np.random.default_rng(0)
        table = VectorTable.create(workdir / "vectors", dim=args.dim)
        means = rng.normal(size=(5000, args.dim)).astype(np.float32)
        for start in range(0, args.rows, 250_000):
            count = min(250_000, args.rows - start)
            block = means[rng.integers(0, len(means), count)]
            block += rng.standard_normal((count, args.dim), dtype=np.float32) * 0.3
            table.append(np.arange(start, start + count), np.zeros(count), block)
        results: dict[int, dict[str, float]] = {}
        labels: dict[int, dict[str, np.ndarray]] = {}
        for n in args.processes:
            out = str(workdir / f"out-{n}")
            threads = max(1, cores // n)
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "CURATA_BENCH_WORKER": "1"}
            command = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                f"--nproc_per_node={n}",
                f"--master_port={free_port()}",
                __file__,
                str(workdir / "vectors"),
                out,
                str(args.k),
            ]
            start = time.perf_counter()
            subprocess.run(command, env=env, check=True)
            wall = time.perf_counter() - start
            results[n] = {**json.loads(Path(out + ".json").read_text()), "whole job (incl. start-up)": wall}
            labels[n] = dict(np.load(out + ".npz"))
            print(f"  {n} process(es) x {threads} thread(s): {wall:.1f} s", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    base = args.processes[0]
    print(f"\n{args.rows:,} x {args.dim} float32, k = {args.k}")
    header = " | ".join(f"{n} proc. (s)" for n in args.processes)
    print(f"| stage | {header} | speed-up {args.processes[-1]} vs {base} |")
    print("|---|" + "---:|" * (len(args.processes) + 1))
    for stage in results[base]:
        cells = " | ".join(f"{results[n][stage]:.1f}" for n in args.processes)
        print(f"| {stage} | {cells} | {results[base][stage] / results[args.processes[-1]][stage]:.2f}x |")
    for n in args.processes[1:]:
        agree = {key: float(np.mean(labels[base][key] == labels[n][key])) for key in ("flat", "tree")}
        curated = len(np.intersect1d(labels[base]["chosen"], labels[n]["chosen"])) / len(labels[base]["chosen"])
        print(
            f"\n{n} vs {base} processes: same k-means label for {agree['flat']:.2%} of rows, same tree labels "
            f"for {agree['tree']:.2%}, {curated:.2%} of curated rows in common"
        )


if __name__ == "__main__":
    if os.environ.get("CURATA_BENCH_WORKER"):
        worker(sys.argv[1], sys.argv[2], int(sys.argv[3]))
    else:
        main()
