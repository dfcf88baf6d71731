"""Is our KMeans as fast as faiss on CPU?

1. Lloyd iterations: Gaussian mixture, 200k x 384 float32, k = 1000, 20 iterations from the same initial centroids,
   no early stop: curata.KMeans (with its default Hamerly bounds, and without: every row through the GEMM on every
   pass, as faiss does), faiss.Kmeans and scikit-learn; seconds per iteration, ratio ours / faiss, and the share of
   the machine's sgemm peak (measured in the same run; an iteration costs 2 N k d flops without bounds, so the
   bounded run's share is an effective one and may pass 100 %).
2. Assignment of 1M x 384 vectors to 10,000 centroids: curata.assign against faiss IndexFlatL2.search, time and
   extra memory (peak RSS of a fresh process beyond the data).

Goal: ratio <= 1.0 in both, >= 80 % of peak.

    python bench/kmeans.py [--rows 200000 --dim 384 --k 1000 --iters 20] [--assign-rows 1000000 --assign-k 10000]
                           [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import date

import numpy as np
import torch

from curata import KMeans
from curata.clustering.cpu_gemm import numpy_gemm_preferred, panel_gemm_preferred
from curata.clustering.kmeans import assign


def mixture(rows: int, dim: int, centers: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((centers, dim), dtype=np.float32)
    out = means[rng.integers(0, centers, rows)]
    out += 0.5 * rng.standard_normal((rows, dim), dtype=np.float32)
    return out


def sgemm_peak(repeats: int = 5, device: str = "cpu") -> float:
    """Best GFLOP/s of a large float32 matrix product: on a GPU torch's, on CPU torch (MKL) or numpy (OpenBLAS)."""
    if device != "cpu":
        a = torch.randn(8192, 8192, device=device)
        best = 0.0
        for _ in range(repeats + 1):
            torch.cuda.synchronize()
            start = time.perf_counter()
            a @ a
            torch.cuda.synchronize()
            best = max(best, 2 * 8192**3 / (time.perf_counter() - start) / 1e9)
        return best
    a = torch.randn(4096, 4096, generator=torch.Generator().manual_seed(0))
    out = torch.empty(4096, 4096)
    an = a.numpy()
    torch.mm(a, a, out=out)
    an @ an
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, a, out=out)
        best = max(best, 2 * 4096**3 / (time.perf_counter() - start) / 1e9)
        start = time.perf_counter()
        an @ an
        best = max(best, 2 * 4096**3 / (time.perf_counter() - start) / 1e9)
    return best


def lloyd(args: argparse.Namespace) -> None:
    import faiss
    from sklearn.cluster import KMeans as SklearnKMeans

    X = mixture(args.rows, args.dim, args.k, 0)
    init = X[np.random.default_rng(1).choice(args.rows, args.k, replace=False)]
    flops = 2 * args.rows * args.k * args.dim
    peak = sgemm_peak(device=args.device)
    results: dict[str, list[float]] = {
        "curata.KMeans": [],
        "curata.KMeans(bounds=False)": [],
        "faiss.Kmeans": [],
        "scikit-learn KMeans": [],
    }
    inertia: dict[str, float] = {}
    fits: dict[str, list[tuple[float, int]]] = {name: [] for name in results}  # whole fit: seconds, passes
    for _ in range(args.repeats):  # interleaved so that drift in machine speed hits every contender alike
        # empty clusters split, as faiss does
        for bounds in (True, False):
            name = "curata.KMeans" if bounds else "curata.KMeans(bounds=False)"
            ours = KMeans(
                args.k, n_iter=args.iters, init=init, tol=0.0, empty_clusters="split", bounds=bounds, device=args.device
            )
            start = time.perf_counter()
            ours.fit(X)
            # fit = n_iter_ passes (fewer than iters at a fixed point) + one final assignment for labels_
            fits[name].append((time.perf_counter() - start, ours.n_iter_ + 1))
            results[name].append(fits[name][-1][0] / (ours.n_iter_ + 1))
            inertia[name] = ours.inertia_
        # faiss >= 1.14 stops early by default (early_stop_threshold); a negative threshold runs every iteration
        theirs = faiss.Kmeans(
            args.dim, args.k, niter=args.iters, seed=1, max_points_per_centroid=1 << 30, early_stop_threshold=-1.0
        )
        start = time.perf_counter()
        theirs.train(X, init_centroids=init)
        fits["faiss.Kmeans"].append((time.perf_counter() - start, len(theirs.iteration_stats)))
        results["faiss.Kmeans"].append(fits["faiss.Kmeans"][-1][0] / len(theirs.iteration_stats))
        inertia["faiss.Kmeans"] = float(theirs.index.search(X, 1)[0].sum())
        sk = SklearnKMeans(args.k, init=init, n_init=1, max_iter=args.iters, tol=0.0, algorithm="lloyd")
        start = time.perf_counter()
        sk.fit(X)
        fits["scikit-learn KMeans"].append((time.perf_counter() - start, sk.n_iter_))
        results["scikit-learn KMeans"].append(fits["scikit-learn KMeans"][-1][0] / sk.n_iter_)
        inertia["scikit-learn KMeans"] = float(sk.inertia_)
    faiss_time = float(np.median(results["faiss.Kmeans"]))
    print(
        f"## Lloyd: {args.rows} x {args.dim} float32, k = {args.k}, {args.iters} iterations, same init, "
        f"median of {args.repeats}; sgemm peak {peak:.0f} GFLOP/s; ratio ours / faiss per repeat: "
        + ", ".join(f"{a / b:.2f}" for a, b in zip(results["curata.KMeans"], results["faiss.Kmeans"], strict=True))
    )
    print()
    # a curata fit stops at a fixed point (no label moved: the result of all `iters`), so it may run fewer passes;
    # per pass it is compared with faiss's passes, per fit with faiss's whole `iters`-iteration fit
    faiss_fit = float(np.median([seconds for seconds, _ in fits["faiss.Kmeans"]]))
    print(
        "| implementation | s / pass | ratio to faiss | % of sgemm peak (2 N k d / pass) | passes | whole fit (s) "
        "| fit ratio | final inertia |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, times in results.items():
        t = float(np.median(times))
        fit = float(np.median([seconds for seconds, _ in fits[name]]))
        passes = fits[name][-1][1]
        print(
            f"| {name} | {t:.3f} | {t / faiss_time:.2f} | {100 * flops / t / 1e9 / peak:.0f} % | {passes} | "
            f"{fit:.1f} | {fit / faiss_fit:.2f} | {inertia[name]:.4g} |"
        )
    print()


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def assign_once(impl: str, rows: int, dim: int, k: int, device: str = "cpu") -> dict[str, float]:
    X = mixture(rows, dim, 1000, 2)
    centroids = mixture(k, dim, 1000, 3)
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak-RSS mark left by generating the data
        f.write("5")
    base = _rss_kib("VmRSS")
    start = time.perf_counter()
    if impl == "curata":
        labels, _ = assign(X, centroids, device=device)
    else:
        import faiss

        index = faiss.IndexFlatL2(dim)
        index.add(centroids)
        labels = index.search(X, 1)[1][:, 0]
    seconds = time.perf_counter() - start
    extra = (_rss_kib("VmHWM") - base) / 1024
    return {"seconds": seconds, "extra_mb": extra, "checksum": int(np.asarray(labels[:1000]).sum())}


def assignment(args: argparse.Namespace) -> None:
    runs: dict[str, list[dict[str, float]]] = {"curata": [], "faiss": []}
    for _ in range(args.repeats):  # alternated, each in a fresh process, so that drift hits both alike
        for impl in runs:
            command = [
                sys.executable,
                __file__,
                "--assign-only",
                impl,
                "--assign-rows",
                str(args.assign_rows),
                "--dim",
                str(args.dim),
                "--assign-k",
                str(args.assign_k),
                "--device",
                args.device,
            ]
            runs[impl].append(json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout))
    out = {impl: {key: float(np.median([r[key] for r in rs])) for key in rs[0]} for impl, rs in runs.items()}
    ratios = [a["seconds"] / b["seconds"] for a, b in zip(runs["curata"], runs["faiss"], strict=True)]
    flops = 2 * args.assign_rows * args.assign_k * args.dim
    peak = sgemm_peak(device=args.device)
    same = all(a["checksum"] == b["checksum"] for a, b in zip(runs["curata"], runs["faiss"], strict=True))
    print(
        f"## Assignment: {args.assign_rows} x {args.dim} to {args.assign_k} centroids (fresh process each, median "
        f"of {args.repeats}; same labels: {same}; ratio per repeat: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    print()
    print("| implementation | seconds | ratio to faiss | % of sgemm peak | extra memory (MB) |")
    print("|---|---:|---:|---:|---:|")
    for impl, name in (("curata", "curata.assign"), ("faiss", "faiss IndexFlatL2.search")):
        r = out[impl]
        print(
            f"| {name} | {r['seconds']:.1f} | {r['seconds'] / out['faiss']['seconds']:.2f} | "
            f"{100 * flops / r['seconds'] / 1e9 / peak:.0f} % | {r['extra_mb']:.0f} |"
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--assign-rows", type=int, default=1_000_000)
    parser.add_argument("--assign-k", type=int, default=10_000)
    parser.add_argument("--skip-assign", action="store_true")
    parser.add_argument("--device", default="cpu", help="where curata runs (faiss and scikit-learn stay on CPU)")
    parser.add_argument("--assign-only", choices=["curata", "faiss"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.assign_only:
        print(json.dumps(assign_once(args.assign_only, args.assign_rows, args.dim, args.assign_k, args.device)))
        return
    panel = "AVX-512 panel kernel (any k in memory, k >= 32 streamed), else " if panel_gemm_preferred() else ""
    print(
        f"# bench/kmeans.py, {date.today()}, {platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, curata on {args.device}"
        + (f", CPU GEMMs by {panel}{'numpy' if numpy_gemm_preferred() else 'torch'}" if args.device == "cpu" else "")
        + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else "")
    )
    print()
    lloyd(args)
    if not args.skip_assign:
        assignment(args)


if __name__ == "__main__":
    main()
