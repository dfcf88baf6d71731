"""Is our KMeans as fast as faiss at every shape, not only the one we tuned on?

A grid over N (rows), d (dimension) and k (clusters, where N >= 20 k): for each cell the same float32 rows (a
Gaussian mixture of max(k, 64) components, or real EfficientNet-Lite0 features with --real) and the same initial
centroids go to curata.KMeans and faiss.Kmeans, 10 Lloyd iterations each (no early stop, empty clusters split as
faiss does), interleaved, best of --repeats (at least --small-cell-repeats in cells estimated under
--small-cell-seconds, those of a few milliseconds, each timed run right after an untimed one of the same
contender, so that its own threads are awake), with a --pause before each contender: the idle threads of
whatever ran last would otherwise spin on the cores the next contender needs (OpenBLAS's, under scikit-learn, for
2^28 cycles, about 0.1 s; OpenMP's after faiss's and torch's parallel loops for milliseconds; our pass threads' for
one): 10,000 x 32 rows at k = 100 took 1.2 ms a pass 0.1 s after scikit-learn's fit, 0.8 ms 0.3 s after it.
Time per iteration: curata's fit is its Lloyd passes (fewer than `iters` when it reaches a fixed point) plus the
final assignment that gives labels_, so its time is divided by n_iter_ + 1; faiss's by its iterations. The
inertia of each final model is computed the same way (float64 distances to the nearest centre) and the relative gap
printed. Cells whose estimated time exceeds --cell-seconds are skipped and listed. scikit-learn's Lloyd runs where
--sklearn-max cells allow.

Each cell runs once per --metrics (default: l2, then cosine on the same rows). For cosine, curata.KMeans(metric=
"cosine") gets the raw rows (its time includes normalising them and its degenerate-rows check), faiss.Kmeans
(spherical=True) and the torch Lloyd rows normalised beforehand, all the same unit initial centroids; the inertia is
that of the unit rows (2 - 2 cos to the nearest centre), scikit-learn has no cosine and sits out. The "vs l2" column
is curata's cosine time per iteration over its l2 time in the same cell (goal <= 1.1). Issue 30 found a cosine fit
at 3.5x its l2 fit, from a copy of the rows on every k-means++ call: seeding, which the given initial centroids here
skip (tests/clustering/test_parallel_seeding.py guards that copy).

On a GPU (--device cuda) the competitor is faiss's GPU k-means when faiss sees a GPU, else a plain torch Lloyd on the
same GPU (one GEMM per chunk, argmin, index_add: the reference code's approach); the table adds the share of the
card's fp32 and tf32 matrix peak, measured in the same run.

Goal (issue 16): worst ratio <= 1.0, median <= 0.8, same inertia within 1 %.

--path picks curata's kernels: "compiled" (the default: what this CPU runs), "avx2" (what a CPU without AVX-512
runs: the compiled AVX2 scan, score GEMMs by the BLAS; on this machine through the cap of
curata.clustering.score_scan.limited_simd) or "plain" (no compiled code at all, as installed without a C compiler:
numpy and torch alone). The header names the scan that ran and the GEMM.

    python bench/kmeans_grid.py [--rows 10000 100000 1000000 --dims 32 64 128 256 384 768 1024
                                 --ks 10 100 1000 10000 --iters 10 --repeats 2 --cell-seconds 60 --pause 0.3
                                 --metrics l2 cosine --real --path compiled|avx2|plain]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import torch
from kmeans import mixture, sgemm_peak  # bench/kmeans.py: the same mixture and peak as the single-shape bench

from curata import KMeans
from curata.clustering import score_scan
from curata.clustering.cpu_gemm import numpy_gemm_preferred, panel_gemm_preferred


@contextlib.contextmanager
def kernel_path(path: str) -> Iterator[None]:
    """Within the block curata runs the --path kernels: "compiled" as they are, "avx2" capped at AVX2, "plain" with
    the compiled scan off (CURATA_NATIVE_SCAN=0) and the kernels capped at none, so that no compiled code runs."""
    if path == "compiled" or (path == "plain" and score_scan._score_scan is None):
        yield
        return
    if score_scan._score_scan is None:
        raise SystemExit(f"--path {path} needs the compiled curata.clustering._score_scan")
    before = os.environ.get("CURATA_NATIVE_SCAN")
    if path == "plain":
        os.environ["CURATA_NATIVE_SCAN"] = "0"
    try:
        with score_scan.limited_simd("avx2" if path == "avx2" else "none") as level:
            if path == "avx2" and level != "avx2":
                raise SystemExit("--path avx2: this CPU has no AVX2")
            yield
    finally:
        if path == "plain" and before is None:
            del os.environ["CURATA_NATIVE_SCAN"]
        elif path == "plain":
            os.environ["CURATA_NATIVE_SCAN"] = before


def real_features(path: Path) -> np.ndarray | None:
    """The EfficientNet-Lite0 features of Fashion-MNIST images cached by `make evidence`, or None."""
    from curata import VectorTable

    if not VectorTable.is_table(path):
        return None
    return np.ascontiguousarray(VectorTable.open(path).vectors(), dtype=np.float32)


def matrix_peak(device: str) -> dict[str, float]:
    """GFLOP/s of a large float32 matrix product (bench/kmeans.py's sgemm_peak); on a GPU also with tf32."""
    peak = {"fp32": sgemm_peak(device=device)}
    if device != "cpu":
        before = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True
        try:
            peak["tf32"] = sgemm_peak(device=device)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = before
    return peak


def unit_rows(X: np.ndarray) -> np.ndarray:
    """The rows scaled to unit length (a zero row stays zero), as cosine k-means sees them."""
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return (X / np.where(norms > 0, norms, 1)).astype(np.float32)


def torch_lloyd(X: torch.Tensor, init: torch.Tensor, iters: int, spherical: bool = False) -> torch.Tensor:
    """The plain GPU Lloyd the reference code runs: scores by one GEMM per chunk, argmin, means by index_add; with
    ``spherical`` (unit rows), the means are scaled back to unit length."""
    centers = init.clone()
    k = len(centers)
    chunk = max(1, int(1e9 // (4 * k)))  # about 1 GB of scores at a time
    for _ in range(iters):
        sums = torch.zeros((k, X.shape[1]), dtype=torch.float64, device=X.device)
        counts = torch.zeros(k, dtype=torch.float64, device=X.device)
        c_sq = (centers * centers).sum(dim=1)
        for s in range(0, len(X), chunk):
            block = X[s : s + chunk]
            labels = torch.addmm(c_sq.unsqueeze(0), block, centers.T, alpha=-2.0).argmin(dim=1)
            sums.index_add_(0, labels, block.double())
            counts.index_add_(0, labels, torch.ones_like(labels, dtype=torch.float64))
        filled = counts > 0
        centers[filled] = (sums[filled] / counts[filled].unsqueeze(1)).float()
        if spherical:
            centers = torch.nn.functional.normalize(centers, dim=1)
    return centers


def inertia_of(X: np.ndarray, centers: np.ndarray, device: str) -> float:
    """Sum of squared distances to the nearest centre, in float64 (the same code for every contender)."""
    c = torch.from_numpy(np.asarray(centers, dtype=np.float64)).to(device)
    total = 0.0
    for s in range(0, len(X), 8192):
        block = torch.from_numpy(X[s : s + 8192]).to(device, torch.float64)
        total += float(torch.cdist(block, c).min(dim=1).values.square().sum())
    return total


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_cell(
    X: np.ndarray, k: int, args: argparse.Namespace, competitor: str, repeats: int, warm: bool, metric: str = "l2"
) -> dict[str, float]:
    """Seconds per iteration of curata and the competitor (best of repeats), and the inertia of each. Each timed
    run follows a pause; with ``warm``, also an untimed run of the same contender right before it, so that a run of
    a few milliseconds finds its own threads awake (faiss's OpenMP threads, asleep after the pause, made its 10k-row
    passes 1.2-3.5x slower than back to back) and nobody else's spinning. For cosine, the competitors get the unit
    rows (curata the raw ones: it normalises them itself)."""
    cosine = metric == "cosine"
    init = X[np.random.default_rng(1).choice(len(X), k, replace=False)]
    theirs_X = unit_rows(X) if cosine else X
    if cosine:
        init = unit_rows(init)
    times: dict[str, list[float]] = {"curata": [], "competitor": [], "sklearn": []}
    inertia: dict[str, float] = {}
    X_device = torch.from_numpy(X).to(args.device) if args.device != "cpu" else None
    theirs_device = torch.from_numpy(theirs_X).to(args.device) if args.device != "cpu" else None
    run_sklearn = args.device == "cpu" and X.size * k <= args.sklearn_max and not cosine

    def ours() -> tuple[float, np.ndarray]:
        model = KMeans(
            k, n_iter=args.iters, init=init, tol=0.0, empty_clusters="split", metric=metric, device=args.device
        )
        sync(args.device)
        start = time.perf_counter()
        model.fit(X_device if X_device is not None else X)
        sync(args.device)
        return (time.perf_counter() - start) / (model.n_iter_ + 1), model.cluster_centers_  # passes run

    def theirs() -> tuple[float, np.ndarray]:
        if competitor == "torch Lloyd":
            assert theirs_device is not None
            sync(args.device)
            start = time.perf_counter()
            centers = torch_lloyd(theirs_device, torch.from_numpy(init).to(args.device), args.iters, cosine)
            sync(args.device)
            return (time.perf_counter() - start) / args.iters, centers.cpu().numpy()
        import faiss

        model = faiss.Kmeans(
            X.shape[1],
            k,
            niter=args.iters,
            seed=1,
            max_points_per_centroid=1 << 30,
            early_stop_threshold=-1.0,
            spherical=cosine,
            gpu=args.device != "cpu",
        )
        start = time.perf_counter()
        model.train(theirs_X, init_centroids=init)
        return (time.perf_counter() - start) / len(model.iteration_stats), model.centroids

    def sklearn() -> tuple[float, np.ndarray]:
        from sklearn.cluster import KMeans as SklearnKMeans

        model = SklearnKMeans(k, init=init, n_init=1, max_iter=args.iters, tol=0.0, algorithm="lloyd")
        start = time.perf_counter()
        model.fit(X)
        return (time.perf_counter() - start) / model.n_iter_, model.cluster_centers_

    contenders = {"curata": ours, "competitor": theirs} | ({"sklearn": sklearn} if run_sklearn else {})
    for _ in range(repeats):
        for name, run in contenders.items():
            time.sleep(args.pause)
            if warm:
                run()
            seconds, centers = run()
            times[name].append(seconds)
            if name != "sklearn":
                inertia[name] = inertia_of(theirs_X, centers, args.device)
    out = {name: min(values) for name, values in times.items() if values}
    out["inertia_gap"] = inertia["curata"] / inertia["competitor"] - 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[32, 64, 128, 256, 384, 768, 1024])
    parser.add_argument("--ks", type=int, nargs="+", default=[10, 100, 1000, 10_000])
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cell-seconds", type=float, default=60.0, help="skip cells estimated to take longer")
    parser.add_argument("--small-cell-seconds", type=float, default=1.0, help="cells estimated under this ...")
    parser.add_argument("--small-cell-repeats", type=int, default=5, help="... get this many repeats, each warmed")
    parser.add_argument("--pause", type=float, default=0.3, help="seconds of idle before each timed run")
    parser.add_argument("--sklearn-max", type=float, default=2e10, help="run scikit-learn where N * d * k <= this")
    parser.add_argument("--real", action="store_true", help="also EfficientNet-Lite0 features (runs/evidence/train)")
    parser.add_argument("--real-path", type=Path, default=Path("runs/evidence/train"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--metrics", nargs="+", choices=["l2", "cosine"], default=["l2", "cosine"])
    parser.add_argument("--path", choices=["compiled", "avx2", "plain"], default="compiled", help="curata's kernels")
    args = parser.parse_args()
    with kernel_path(args.path):
        grid(args)


def grid(args: argparse.Namespace) -> None:
    """The cells, run and printed, under the kernels main() put in force."""
    try:
        import faiss

        faiss_version = faiss.__version__
        competitor = "faiss.Kmeans"
        if args.device != "cpu" and not (hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0):
            competitor = "torch Lloyd"
    except ImportError:
        if args.device == "cpu":
            raise SystemExit("faiss-cpu is missing: pip install -e '.[bench]'") from None
        faiss_version, competitor = "missing", "torch Lloyd"
    peak = matrix_peak(args.device)
    machine = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"{platform.machine()}, {torch.get_num_threads()} threads, CPU GEMMs by "
        + ("our AVX-512 panel kernel (any k in memory, k >= 32 streamed), else " if panel_gemm_preferred() else "")
        + ("numpy" if numpy_gemm_preferred() else "torch")
        + f"; --path {args.path}: {score_scan.scan_path()} scan"
    )
    print(
        f"bench/kmeans_grid.py, {date.today()}, {machine}, torch {torch.__version__}, faiss {faiss_version}; "
        f"competitor {competitor}; {args.iters} iterations, best of {args.repeats} (of {args.small_cell_repeats}, "
        f"warmed, in cells estimated under {args.small_cell_seconds:g} s); matrix peak "
        + ", ".join(f"{name} {value:.0f} GFLOP/s" for name, value in peak.items())
    )
    cells: list[tuple[str, int, int, int]] = []  # (data, N, d, k)
    features: np.ndarray | None = None
    for n in args.rows:
        for d in args.dims:
            for k in args.ks:
                if n >= 20 * k:
                    cells.append(("mixture", n, d, k))
    if args.real:
        features = real_features(args.real_path)
        available = 0 if features is None else len(features)
        for n in sorted({min(n, available) for n in args.rows} - {0}):
            for k in args.ks:
                if n >= 20 * k:
                    cells.append(("EfficientNet-Lite0", n, 1280, k))
        if not available:
            print(f"no cached EfficientNet-Lite0 features at {args.real_path} (make evidence writes them)")
    rate = 0.5 * peak["fp32"] * 1e9  # a conservative rate for the estimate
    gpu_columns = args.device != "cpu"
    header = "| data | N | d | k | metric | curata s/iter | " + competitor + " s/iter | ratio | inertia gap |"
    header += " sklearn s/iter |" if not gpu_columns else " % fp32 peak | % tf32 peak |"
    header += " vs l2 |"
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    ratios: list[float] = []
    gaps: list[float] = []
    versus_l2: list[float] = []
    skipped: list[str] = []
    for source, n, d, k in cells:
        flops = 2.0 * n * k * d
        estimate = flops * (2 * args.iters + 1) * args.repeats * len(args.metrics) / rate
        if estimate > args.cell_seconds:
            skipped.append(f"{source} {n}x{d} k={k} (~{estimate:.0f} s)")
            continue
        if source == "mixture":
            X = mixture(n, d, max(k, 64), seed=n + d + k)
        else:
            assert features is not None
            X = features[:n]
        # a cell of a few milliseconds is at the mercy of the machine's noise (faiss's 10k-row passes took 0.7 to
        # 2.5 ms from one run to the next here): more repeats where they cost little
        small = estimate < args.small_cell_seconds
        repeats = max(args.repeats, args.small_cell_repeats) if small else args.repeats
        l2_time = None
        for metric in args.metrics:
            r = run_cell(X, k, args, competitor, repeats, warm=small, metric=metric)
            ratio = r["curata"] / r["competitor"]
            ratios.append(ratio)
            gaps.append(r["inertia_gap"])
            row = (
                f"| {source} | {n} | {d} | {k} | {metric} | {r['curata']:.4f} | {r['competitor']:.4f} | {ratio:.2f} | "
                f"{100 * r['inertia_gap']:+.2f} % |"
            )
            if gpu_columns:
                achieved = flops / r["curata"] / 1e9
                row += f" {100 * achieved / peak['fp32']:.0f} % | {100 * achieved / peak['tf32']:.0f} % |"
            else:
                row += f" {r['sklearn']:.4f} |" if "sklearn" in r else " - |"
            if metric == "l2":
                l2_time = r["curata"]
            if metric == "cosine" and l2_time is not None:
                versus_l2.append(r["curata"] / l2_time)
                row += f" {versus_l2[-1]:.2f} |"
            else:
                row += " - |"
            print(row, flush=True)
    if ratios:
        print(
            f"\n{len(ratios)} rows: ratio curata / {competitor} worst {max(ratios):.2f}, median "
            f"{float(np.median(ratios)):.2f}, best {min(ratios):.2f}; largest inertia gap "
            f"{100 * max(abs(g) for g in gaps):.2f} %"
        )
    if versus_l2:
        print(
            f"curata cosine / l2 time per iteration: worst {max(versus_l2):.2f}, median "
            f"{float(np.median(versus_l2)):.2f} (goal <= 1.1)"
        )
    if skipped:
        print(f"skipped {len(skipped)} cells over --cell-seconds {args.cell_seconds:g}: " + "; ".join(skipped))
    if not math.isfinite(sum(ratios)):
        raise SystemExit("a ratio is not finite")


if __name__ == "__main__":
    main()
