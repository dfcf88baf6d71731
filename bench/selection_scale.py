"""Does every selection method run on a million rows in bounded memory, and what does chunking cost in coverage?

A VectorTable of 1,000,000 x 128 float32 rows (a Gaussian mixture of 1,000 clusters of unequal spread, 512 MB) is
selected from with ``select(table, 1000, method=..., memory_budget=...)``: the table is read one chunk at a time,
chunks sized so that their rows and the method's per-row arrays fit the budget. Each method runs in a fresh
process; per method: the chunk size, the time, the growth of peak RSS over the process before the call, and the
coverage of a seeded 20,000-row sample of the pool (mean and max distance to its nearest picked row; lower is
better) as a ratio to random selection's, measured in the same run. One in-memory run (no budget) of kcenter
shows what the budget saves.

zcore draws ``--zcore-samples`` subspace points per chunk (its default, 10 per row, is O(rows^2) per chunk:
hours at this size); densest/farthest run in chunks of ``--nearest-chunk`` rows (O(chunk^2 * dim) each).

    python bench/selection_scale.py [--rows 1000000] [--dim 128] [--n 1000] [--budget 256M]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from curata import VectorTable, select
from curata.cli.main import memory_bytes
from curata.subsets.select import METHODS, _chunk_for_budget

_SAMPLE = 20_000


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(f.read().split(f"{field}:")[1].split()[0]) * 1024


def mixture(rows: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim), dtype=np.float32) * 4
    sizes = rng.dirichlet(np.full(1000, 0.5))
    which = rng.choice(1000, rows, p=sizes)
    spread = rng.uniform(0.3, 2.0, 1000).astype(np.float32)
    return centres[which] + rng.standard_normal((rows, dim), dtype=np.float32) * spread[which, None]


def options_for(method: str, args: argparse.Namespace) -> dict[str, object]:
    if method == "zcore":
        return {"samples": args.zcore_samples}
    if method in ("densest", "farthest"):
        return {"chunk_rows": args.nearest_chunk}
    return {}


def one(args: argparse.Namespace) -> None:
    """Run one method in this process and print its numbers as JSON."""
    table = VectorTable.open(args.table)
    table.vectors(slice(0, 100))
    select(np.random.default_rng(0).standard_normal((2000, table.dim), dtype=np.float32), 10, method=args.one)
    before = _status("VmRSS")
    start = time.perf_counter()
    picked = select(table, args.n, method=args.one, memory_budget=args.budget, seed=0, **options_for(args.one, args))
    seconds = time.perf_counter() - start
    grown = _status("VmHWM") - before
    sample = np.sort(np.random.default_rng(1).choice(len(table), _SAMPLE, replace=False))
    pool = torch.from_numpy(table.vectors(sample))
    chosen = torch.from_numpy(table.vectors(np.sort(picked)))
    nearest = torch.cdist(pool, chosen).min(dim=1).values
    print(
        json.dumps(
            {
                "seconds": seconds,
                "grown": grown,
                "picked": len(np.unique(picked)),
                "mean": float(nearest.mean()),
                "max": float(nearest.max()),
            }
        )
    )


def run(args: argparse.Namespace, method: str, budget: str) -> dict[str, float]:
    command = [sys.executable, __file__, "--one", method, "--table", str(args.table), "--n", str(args.n)]
    command += ["--budget", budget, "--zcore-samples", str(args.zcore_samples)]
    command += ["--nearest-chunk", str(args.nearest_chunk)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{method} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--budget", default="256M", help="memory_budget, e.g. 256M; 'none' reads the table whole")
    parser.add_argument("--zcore-samples", type=int, default=20_000)
    parser.add_argument("--nearest-chunk", type=int, default=20_000)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--table", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        args.budget = None if args.budget == "none" else memory_bytes(args.budget)
        one(args)
        return
    print(
        f"{date.today()}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    with tempfile.TemporaryDirectory() as scratch:
        args.table = Path(scratch) / "pool"
        start = time.perf_counter()
        VectorTable.from_arrays(args.table, mixture(args.rows, args.dim))
        table_mb = args.rows * args.dim * 4 / 2**20
        print(
            f"table {args.rows} x {args.dim} float32 ({table_mb:.0f} MB) written in {time.perf_counter() - start:.1f} s"
        )
        print(f"\n## select(table, {args.n}, method=..., memory_budget={args.budget})\n")
        print(
            "| method | rows per chunk | seconds | peak RSS growth (MB) | mean distance / random's | max / random's |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        results = {"random": run(args, "random", args.budget)}
        for method in [m for m in METHODS if m != "random"] + ["random"]:
            result = results.get(method) or run(args, method, args.budget)
            results[method] = result
            chunk = _chunk_for_budget(
                method, args.dim, options_for(method, args).get("chunk_rows"), memory_bytes(args.budget), True
            )
            base = results["random"]
            print(
                f"| {method} | {chunk or args.rows} | {result['seconds']:.1f} | {result['grown'] / 2**20:.0f} | "
                f"{result['mean'] / base['mean']:.3f} | {result['max'] / base['max']:.3f} |",
                flush=True,
            )
        whole = run(args, "kcenter", "none")
        print(
            f"\nkcenter with the table read whole (no budget): {whole['seconds']:.1f} s, peak RSS growth "
            f"{whole['grown'] / 2**20:.0f} MB (budgeted: {results['kcenter']['grown'] / 2**20:.0f} MB); coverage "
            f"mean {whole['mean'] / results['random']['mean']:.3f}, max {whole['max'] / results['random']['max']:.3f} "
            "of random's"
        )


if __name__ == "__main__":
    main()
