"""KMeans in torch: greedy k-means++, chunked Lloyd iterations, float64 sums, CPU/GPU, sharded over ranks.

Under an initialised torch.distributed process group every rank passes the same X (array or VectorTable) and
works on its contiguous block of rows; per-cluster sums and counts are all-reduced, never the assignments.
Everything summed over rows that steers the fit (per-cluster sums, inertias, k-means++ potentials) is summed in
fixed point (``curata.clustering.fixed_point``): integer sums, the same for any number of ranks, workers or chunks,
so that a fit gives the same labels and centroids, bit for bit, under any number of processes (issue 30).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from curata._internal.checks import check_finite, check_int, first_nonfinite_row
from curata._internal.distributed import (
    all_gather_rows,
    all_reduce_max,
    all_reduce_sum,
    is_distributed,
    rank_and_world,
    shard_range,
)
from curata.clustering.estimator import check_fitted, cluster_bases, validated_rows
from curata.clustering.fixed_point import fraction_bits, from_fixed, to_fixed
from curata.clustering.nearest import (
    chunk_rows,
    full_fp32_matmuls,
    largest_value,
    nearest_centroids,
    serial_main_thread,
)
from curata.clustering.parallel_seeding import kmeans_parallel, squared_distances
from curata.clustering.progress import note
from curata.clustering.row_bounds import RowBounds
from curata.store.cosine_check import warn_if_degenerate
from curata.store.rows import MemoryShard, StreamedShard, as_matrix, load_shard, shape_of
from curata.store.samples import sample_ids_of

__all__ = ["KMeans", "assign", "as_matrix"]

_Shard = MemoryShard | StreamedShard

_METRICS = ("l2", "cosine")
_EMPTY = ("keep", "split")
_INITS = ("auto", "k-means++", "k-means||", "random")
# init="auto": from this k on, k-means|| seeds in 0.33-0.35x greedy k-means++'s time (bench/kmeans_seeding.py)
_PARALLEL_SEEDING_FROM_K = 10_000
_SPLIT_EPS = 1.0 / 1024.0  # relative perturbation when an empty cluster takes half of the largest one
_BOUNDS_FROM_K = 256  # bounds="auto": the smallest k whose fits they sped up (bench/kmeans_bounds.py)


def _check_budget(memory_budget: int | None) -> int | None:
    check_int(memory_budget, "memory_budget", minimum=1 << 20, allow_none=True)
    return memory_budget


def _rank_world() -> tuple[int, int]:
    return rank_and_world() if is_distributed() else (0, 1)


def _check_finite(x: torch.Tensor, name: str) -> None:
    """Raise on every rank when any rank's rows of ``x`` hold NaN or inf."""
    bad = torch.tensor([0.0 if first_nonfinite_row(x) is None else 1.0], dtype=torch.float64)
    if all_reduce_sum(bad).item() > 0:
        raise ValueError(f"{name} holds NaN or inf")


def _global_largest(shard: _Shard) -> float:
    """The largest |value| over every rank's rows (a streamed shard is read once); raises on every rank when any
    rank's rows hold NaN or inf."""
    largest = all_reduce_max(torch.tensor([largest_value(shard)], dtype=torch.float64)).item()
    if not math.isfinite(largest):
        raise ValueError("X holds NaN or inf")
    return largest


def _distance_bound(metric: str, dim: int, largest: float, centers: torch.Tensor | None = None) -> float:
    """A bound on a squared distance from a row (values at most ``largest``) to ``centers`` (None: to another row),
    the same on every rank: dim (|x| + |c|)^2 elementwise, twice over for the rounding of float32 distances
    (cosine: 2 - 2 cos <= 4, twice over)."""
    if metric == "cosine":
        return 8.0
    other = largest if centers is None or centers.numel() == 0 else float(centers.abs().max())
    if not math.isfinite(other):
        raise ValueError("the centroids hold NaN or inf")
    return 2.0 * dim * (largest + other) ** 2


def _total(values: torch.Tensor, bits: int) -> torch.Tensor:
    """The fixed-point sum of ``values`` (int64, one element): rank by rank, added by ``all_reduce_sum`` as is."""
    return to_fixed(values, bits).sum().reshape(1).cpu()


def _gather_rows(shard: _Shard, ids: torch.Tensor) -> torch.Tensor:
    """The rows with global ids ``ids`` (each owned by exactly one rank) on every rank."""
    local = ids.to(shard.device) - shard.start
    mine = (local >= 0) & (local < shard.rows)
    rows = shard.take(local[mine])
    out = torch.zeros((len(ids), rows.shape[1]), dtype=torch.float32, device=shard.device)
    out[mine] = rows
    return all_reduce_sum(out)


def assign(
    X: Any,
    centroids: Any,
    *,
    metric: str = "l2",
    chunk_size: int | str = "auto",
    device: str | torch.device = "cpu",
    memory_budget: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of every row of X and the squared distance to it (cosine: between unit vectors).

    Under an initialised process group every rank assigns its block of rows and the results are gathered once.
    A VectorTable whose float32 rows exceed ``memory_budget`` bytes is streamed from disk.

    Example:
        >>> labels, d2 = assign(np.array([[0.0, 0], [5, 5]]), np.array([[4.0, 4], [0, 1]]))
        >>> labels.tolist(), d2.tolist()
        ([1, 0], [1.0, 2.0])
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    n, dim = shape_of(X)
    rank, world = _rank_world()
    start, stop = shard_range(n, rank, world)
    centers = as_matrix(centroids, device=device)
    if centers.ndim != 2 or len(centers) == 0 or centers.shape[1] != dim:
        raise ValueError(f"centroids must have shape (k >= 1, {dim}) to match X, got {tuple(centers.shape)}")
    check_finite(centers, "centroids")
    if metric == "cosine":
        centers = torch.nn.functional.normalize(centers, dim=1)
    chunk = chunk_rows(chunk_size, len(centers), device, dim)
    shard = load_shard(X, start, stop, metric, device, _check_budget(memory_budget), chunk)
    with serial_main_thread(device), full_fp32_matmuls(device):
        labels, best, _ = nearest_centroids(shard, centers, metric, chunk, False)
    counts = [b - a for a, b in (shard_range(n, r, world) for r in range(world))]
    return all_gather_rows(labels, counts).cpu().numpy(), all_gather_rows(best, counts).cpu().numpy()


class KMeans(*cluster_bases()):
    """k-means in torch, a scikit-learn estimator (Pipeline, GridSearchCV, clone) when scikit-learn is installed.

    X may be a numpy array or any array-like (list, DataFrame: checked by scikit-learn's ``validate_data`` when it is
    installed), a torch tensor (on any device) or a VectorTable.

    Args:
        n_clusters: k.
        n_iter: Lloyd iterations at most (each: assign every row, then move every centroid to its cluster's mean);
            the fit stops sooner at a fixed point, when a pass moved no label (the centroids cannot move again).
        tol: stop early when an iteration lowers the inertia by less than ``tol`` times it (0: run all).
        init: "auto" (the default: "k-means||" for k >= 10,000, where it seeds in a third of the time from as
            good a start, else "k-means++"), "k-means++" (greedy: 2 + ln k candidates per pick, keep the one that
            lowers the potential most), "k-means||" (Bahmani et al.: 5 rounds drawing about k / 2 rows each in
            proportion to their squared distance, then greedy k-means++ on those candidates weighted by the rows
            nearest them; see ``curata.clustering.parallel_seeding``), "random" (k distinct rows) or a (k, dim)
            array of initial centroids.
        n_init: independent runs; the one with the lowest inertia is kept.
        metric: "l2", or "cosine" for spherical k-means (rows and centroids on the unit sphere).
        max_points_per_centroid: fit on a seeded sample of k * this many rows, then assign all rows.
        init_size: rows that k-means++ or k-means|| look at (a seeded sample; default ``max(10000, 8 * k)``):
            k-means++ costs rows * k * log(k) * dim in k passes one after the other, which is why "auto" turns
            to k-means|| at large k.
        empty_clusters: "keep" (an empty cluster keeps its centroid) or "split" (it takes half of the largest one).
        bounds: carry Hamerly's bounds from one Lloyd pass to the next, so that a pass only scores the rows whose
            nearest centroid may have changed (same result up to float32 ties; 4 more bytes per row). "auto": for
            k >= 256, where the GEMM they save outweighs checking every row against its own centroid (on real
            1280-d features: 0.90x the fit time at k = 1,000, 1.12x at k = 100).
        chunk_size: rows per assignment block, or "auto" (about 4 MB of scores on CPU, 256 MB on a GPU).
        device: "cpu", "cuda", ...
        memory_budget: bytes the fit may hold (at least 1 MiB). A VectorTable (or TableRows) whose float32 rows
            exceed it is streamed from disk on every pass: ~96 bytes per row are set aside for labels, distances
            and orderings, and the rest of the budget holds the windows of rows being read. The k-means++ sample
            (``init_size`` rows), a fit sample that fits the budget and O(k * dim) centroids come on top. On
            glibc, streaming sets the process's mmap threshold to 1 MiB so that freed windows return to the OS.
        seed: seed of every random choice.

    Learned: ``cluster_centers_`` (k, dim), ``labels_`` (rows,), ``distances_`` (rows,: squared distance of each row
    to its centroid; cosine: between unit vectors, 2 - 2 cos), ``inertia_`` (their sum), ``n_iter_``.

    Example:
        >>> X = np.r_[np.zeros((5, 2)), np.ones((5, 2)) * 10]
        >>> km = KMeans(2, seed=0).fit(X)
        >>> sorted(np.bincount(km.labels_).tolist()), km.inertia_
        ([5, 5], 0.0)
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        n_iter: int = 50,
        tol: float = 0.0,
        init: str | Any = "auto",
        n_init: int = 1,
        metric: str = "l2",
        max_points_per_centroid: int | None = None,
        init_size: int | None = None,
        empty_clusters: str = "keep",
        bounds: bool | str = "auto",
        chunk_size: int | str = "auto",
        device: str | torch.device = "cpu",
        memory_budget: int | None = None,
        seed: int = 0,
    ) -> None:
        self.n_clusters = n_clusters
        self.n_iter = n_iter
        self.tol = tol
        self.init = init
        self.n_init = n_init
        self.metric = metric
        self.max_points_per_centroid = max_points_per_centroid
        self.init_size = init_size
        self.empty_clusters = empty_clusters
        self.bounds = bounds
        self.chunk_size = chunk_size
        self.device = device
        self.memory_budget = memory_budget
        self.seed = seed

    # ------------------------------------------------------------------ checks
    def _validate(self, n: int, dim: int) -> None:
        check_int(self.n_clusters, "n_clusters", minimum=1)
        check_int(self.n_iter, "n_iter", minimum=1)
        check_int(self.n_init, "n_init", minimum=1)
        check_int(self.max_points_per_centroid, "max_points_per_centroid", minimum=1, allow_none=True)
        check_int(self.init_size, "init_size", minimum=1, allow_none=True)
        if self.chunk_size != "auto":
            check_int(self.chunk_size, "chunk_size", minimum=1)
        if not isinstance(self.tol, (int, float)) or self.tol < 0:
            raise ValueError(f"tol must be a number >= 0, got {self.tol!r}")
        if self.metric not in _METRICS:
            raise ValueError(f"metric must be one of {_METRICS}, got {self.metric!r}")
        if self.empty_clusters not in _EMPTY:
            raise ValueError(f"empty_clusters must be one of {_EMPTY}, got {self.empty_clusters!r}")
        if not isinstance(self.bounds, bool) and self.bounds != "auto":
            raise ValueError(f"bounds must be True, False or 'auto', got {self.bounds!r}")
        check_int(self.seed, "seed")
        _check_budget(self.memory_budget)
        if n == 0 or dim == 0:
            raise ValueError(f"X is empty (shape ({n}, {dim})): nothing to cluster")
        if self.n_clusters > n:
            raise ValueError(f"n_clusters ({self.n_clusters}) must be <= the number of rows of X (n_samples={n})")
        if isinstance(self.init, str):
            if self.init not in _INITS:
                raise ValueError(
                    f"init must be one of {', '.join(map(repr, _INITS))} or a (k, dim) array, got {self.init!r}"
                )
        elif shape_of(self.init) != (self.n_clusters, dim):
            raise ValueError(f"init centroids must have shape ({self.n_clusters}, {dim}), got {shape_of(self.init)}")
        else:
            check_finite(as_matrix(self.init), "init")

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any = None) -> KMeans:
        """Cluster X (array-like, torch tensor or VectorTable); ``y`` is ignored. Returns self.

        Fitted on a VectorTable, ``sample_ids_`` holds the sample id (``idx``) of each row of ``labels_``, so that
        ``curate`` and ``select`` answer in samples; else it is None."""
        self.sample_ids_ = sample_ids_of(X)
        X = validated_rows(self, X, reset=True)
        n, dim = shape_of(X)
        self._validate(n, dim)
        if self.metric == "cosine" and not getattr(self, "_cosine_checked", False):
            warn_if_degenerate(X, "KMeans(metric='cosine')", self.seed)
        # torch's own ops run on one thread from here on (see serial_main_thread): after a parallel op its OpenMP
        # threads spin for milliseconds on the cores the passes' workers need; its matmuls in fp32 (not TF32)
        with serial_main_thread(self.device), full_fp32_matmuls(self.device):
            return self._fit(X, n)

    def _fit(self, X: Any, n: int) -> KMeans:
        rank, world = _rank_world()
        start, stop = shard_range(n, rank, world)
        data = load_shard(X, start, stop, self.metric, self.device, self.memory_budget, self._chunk)
        # the bound on every value that sets the fixed-point sums' resolution, one collective per fit; it also
        # finds NaN and inf, in memory or streamed, on every rank at once
        self._largest = _global_largest(data)
        generator = torch.Generator().manual_seed(int(self.seed))
        fit_set = data
        if self.max_points_per_centroid is not None and n > self.n_clusters * self.max_points_per_centroid:
            fit_set = self._subsample(data, self.n_clusters * self.max_points_per_centroid, generator, world)
        best: tuple[float, torch.Tensor, int, torch.Tensor, torch.Tensor] | None = None
        for _ in range(self.n_init):
            centers = self._initial_centers(fit_set, generator, world)
            bounds = RowBounds(fit_set.rows, fit_set.device) if self._uses_bounds() else None
            centers, iterations = self._lloyd(fit_set, centers, bounds)
            if fit_set is not data:
                bounds = None
            labels, distances, _ = nearest_centroids(data, centers, self.metric, self._chunk, False, bounds=bounds)
            labels = labels.clone()  # bounds.labels when bounded: not to be shared with the next init
            # the exact distances (sums of squares of each row alone) in fixed point: an inertia, and so the choice
            # among the inits, that does not depend on the ranks
            bits = fraction_bits(_distance_bound(self.metric, centers.shape[1], self._largest, centers), data.total)
            inertia = from_fixed(all_reduce_sum(_total(distances, bits)), bits).item()
            if best is None or inertia < best[0]:
                best = (inertia, centers, iterations, labels, distances)
        assert best is not None
        self.inertia_, centers, self.n_iter_, labels, distances = best
        counts = [b - a for a, b in (shard_range(n, r, world) for r in range(world))]
        self.labels_ = all_gather_rows(labels, counts).cpu().numpy()
        self.distances_ = all_gather_rows(distances, counts).cpu().numpy()
        self.cluster_centers_ = centers.cpu().numpy()
        return self

    def _uses_bounds(self) -> bool:
        return self.n_clusters >= _BOUNDS_FROM_K if self.bounds == "auto" else bool(self.bounds)

    @property
    def _chunk(self) -> int:
        return chunk_rows(self.chunk_size, int(self.n_clusters), self.device, getattr(self, "n_features_in_", None))

    def _subsample(self, data: _Shard, size: int, generator: torch.Generator, world: int) -> _Shard:
        """A seeded sample of ``size`` global rows; each rank keeps the sampled rows it owns, in row order."""
        ids = torch.randperm(data.total, generator=generator)[:size].sort().values
        bounds = [shard_range(data.total, r, world)[0] for r in range(world)] + [data.total]
        cuts = torch.searchsorted(ids, torch.tensor(bounds))
        mine = ids[(ids >= data.start) & (ids < data.start + data.rows)] - data.start
        rank, _ = _rank_world()
        return data.subset(mine, int(cuts[rank]), size, self.memory_budget)

    def _initial_centers(self, data: _Shard, generator: torch.Generator, world: int) -> torch.Tensor:
        k = int(self.n_clusters)
        if not isinstance(self.init, str):
            centers = as_matrix(self.init, device=data.device)
        elif self.init == "random":
            centers = _gather_rows(data, torch.randperm(data.total, generator=generator)[:k].sort().values)
        else:
            init_size = self.init_size if self.init_size is not None else max(10_000, 8 * k)
            seeding = data
            if data.total > init_size:
                seeding = self._subsample(data, init_size, generator, world)
            seeding = seeding.materialize()
            centers = None
            if self._seeding() == "k-means||":
                centers = kmeans_parallel(seeding, k, self.metric, generator, self._chunk)
            if centers is None:  # k-means++, or k-means|| drew fewer than k candidates
                centers = self._kmeans_plus_plus(seeding, generator)
        if self.metric == "cosine":
            centers = torch.nn.functional.normalize(centers, dim=1)
        return centers

    def _seeding(self) -> str:
        """The seeding a string ``init`` stands for: "auto" is k-means|| from k = 10,000 (bench/kmeans_seeding.py)."""
        if self.init == "auto":
            return "k-means||" if int(self.n_clusters) >= _PARALLEL_SEEDING_FROM_K else "k-means++"
        return str(self.init)

    def _kmeans_plus_plus(self, data: MemoryShard, generator: torch.Generator) -> torch.Tensor:
        """Greedy k-means++; per pick, ranks exchange one potential each and the candidates, never row data.

        The squared distances are rounded to fixed point (a monotone rounding, so minima commute with it) and the
        potentials summed as int64: every rank's cumulative potential is then exactly a slice of the one process's,
        each draw falls in exactly one rank's slice, and the candidates' potentials compare alike under any number
        of ranks."""
        k, trials = int(self.n_clusters), 2 + int(math.log(int(self.n_clusters)))
        rank, world = _rank_world()
        x = data.x
        bits = fraction_bits(_distance_bound(self.metric, x.shape[1], self._largest), data.total)
        centers = torch.empty((k, x.shape[1]), dtype=torch.float32, device=x.device)
        first = torch.randint(data.total, (1,), generator=generator)
        centers[0] = _gather_rows(data, first)[0]
        closest = to_fixed(squared_distances(data, centers[:1], self.metric)[:, 0], bits)
        for i in range(1, k):
            potentials = torch.zeros(world, dtype=torch.int64)
            potentials[rank] = int(closest.sum())
            potentials = all_reduce_sum(potentials)
            total = int(potentials.sum())
            offset = int(potentials[:rank].sum())
            # a draw in [0, total): the same integers on every rank and under any number of ranks
            draws = (torch.rand(trials, generator=generator, dtype=torch.float64) * total).floor().long()
            draws.clamp_(max=max(total - 1, 0))
            if total <= 0:  # every row already is a centre: take distinct rows at random
                picks = torch.randint(data.total, (trials,), generator=generator)
                candidates = _gather_rows(data, picks)
            else:
                local = draws - offset
                mine = (local >= 0) & (local < int(potentials[rank]))
                candidates = torch.zeros((trials, x.shape[1]), dtype=torch.float32, device=x.device)
                if bool(mine.any()):
                    cumulative = torch.cumsum(closest, dim=0)
                    where = torch.searchsorted(cumulative, local[mine].to(x.device), right=True)
                    candidates[mine.to(x.device)] = x[where]
                candidates = all_reduce_sum(candidates)  # each row comes from one rank, zeros from the others
            to_candidates = to_fixed(squared_distances(data, candidates, self.metric), bits)
            new_potentials = torch.minimum(closest.unsqueeze(1), to_candidates).sum(dim=0)
            choice = int(torch.argmin(all_reduce_sum(new_potentials.cpu())))  # ties: the first candidate
            centers[i] = candidates[choice]
            closest = torch.minimum(closest, to_candidates[:, choice])
        return centers

    def _lloyd(self, data: _Shard, centers: torch.Tensor, bounds: RowBounds | None) -> tuple[torch.Tensor, int]:
        previous = math.inf
        iterations = 0
        last_labels: torch.Tensor | None = None
        dim = centers.shape[1]
        # the same resolution on every rank and every pass: from the global largest value and row count
        sum_bits = fraction_bits(self._largest, data.total)
        for _ in range(int(self.n_iter)):
            iterations += 1
            note(f"k-means of {len(centers)} clusters: iteration {iterations} of {self.n_iter}")
            labels, distances, sums = nearest_centroids(
                data, centers, self.metric, self._chunk, True, bounds=bounds, sum_bits=sum_bits,
                exact_distances=self.tol > 0,
            )  # fmt: skip
            assert sums is not None
            # one collective per iteration: the sums (counts in the last column), then a row of the inertia in fixed
            # point (exact distances when tol needs it: score-based ones round with the GEMM's blocking) and the
            # number of rows whose label changed
            changed = len(labels) if last_labels is None else int((labels != last_labels).sum())
            inertia_bits = fraction_bits(_distance_bound(self.metric, dim, self._largest, centers), data.total)
            extra = torch.zeros((1, sums.shape[1]), dtype=torch.int64, device=sums.device)
            extra[0, 0] = _total(distances, inertia_bits)[0]
            extra[0, 1] = changed
            reduced = all_reduce_sum(torch.cat([sums, extra]))
            sums = reduced[:-1]
            inertia = from_fixed(reduced[-1, 0], inertia_bits).item()
            changed_anywhere = int(reduced[-1, 1])
            filled = bool((sums[:, -1] > 0).all())
            centers = self._update(sums, centers, sum_bits)
            # No label moved: the means are those of the last pass, bit for bit, so every further pass would give
            # the same centroids (unless an empty cluster is split). Stopping here gives the n_iter-pass result, sooner.
            if changed_anywhere == 0 and (filled or self.empty_clusters == "keep"):
                break
            if self.tol > 0 and math.isfinite(previous) and previous - inertia <= self.tol * previous:
                break
            previous = inertia
            last_labels = labels.clone()
        return centers, iterations

    def _update(self, sums: torch.Tensor, centers: torch.Tensor, bits: int) -> torch.Tensor:
        """The new centroids from the all-reduced fixed-point sums (int64, counts in the last column)."""
        counts = sums[:, -1].to(torch.float64)
        filled = counts > 0
        # one division for every cluster (an empty one's is dropped below): boolean-mask indexing cost ~40 us a pass
        means = from_fixed(sums[:, :-1], bits) / counts.clamp(min=1.0).unsqueeze(1)
        some_empty = not bool(filled.all())
        if some_empty:
            means = torch.where(filled.unsqueeze(1), means, centers.double())
        if some_empty and self.empty_clusters == "split":
            signs = torch.ones(means.shape[1], dtype=torch.float64, device=means.device)
            signs[1::2] = -1.0
            for empty in torch.nonzero(~filled).reshape(-1).tolist():
                largest = int(torch.argmax(counts))
                means[empty] = means[largest] * (1 + _SPLIT_EPS * signs)
                means[largest] = means[largest] * (1 - _SPLIT_EPS * signs)
                counts[empty] = counts[largest] / 2
                counts[largest] -= counts[empty]
        out = means.float()
        if self.metric == "cosine":
            out = torch.nn.functional.normalize(out, dim=1)
        return out

    # ------------------------------------------------------------------ using the fit
    @property
    def _n_features_out(self) -> int:  # names transform's columns (get_feature_names_out)
        return int(self.cluster_centers_.shape[0])

    def _fitted(self, X: Any) -> tuple[Any, torch.Tensor]:
        """X checked against the fit, and the centroids on the fit's device."""
        check_fitted(self, "cluster_centers_")
        X = validated_rows(self, X, reset=False)
        return X, torch.from_numpy(self.cluster_centers_).to(self.device)

    def _nearest(self, X: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(label, squared distance) of every row's nearest centroid (a VectorTable over the budget is streamed)."""
        X, centers = self._fitted(X)
        n, _ = shape_of(X)
        shard = load_shard(X, 0, n, self.metric, self.device, self.memory_budget, self._chunk)
        with serial_main_thread(shard.device), full_fp32_matmuls(shard.device):
            labels, distances, _ = nearest_centroids(shard, centers, self.metric, self._chunk, False)
        if not bool(torch.isfinite(distances).all()):
            raise ValueError("X holds NaN or inf")
        return labels, distances

    def predict(self, X: Any) -> np.ndarray:
        """The nearest centroid of every row of X."""
        return self._nearest(X)[0].cpu().numpy()

    def score(self, X: Any, y: Any = None) -> float:
        """Minus the sum of squared distances from the rows of X to their nearest centroid (higher is better)."""
        return -float(self._nearest(X)[1].sum(dtype=torch.float64))

    def transform(self, X: Any) -> np.ndarray:
        """Distances from every row to every centroid (l2: Euclidean; cosine: 1 - cos), float64 for float64 X.

        Each distance is computed from the row's own differences to the centroid, so a row's output does not
        depend on the other rows passed with it (a GEMM's blocking would change the last bits).
        """
        dtype = np.float64 if getattr(X, "dtype", None) in (np.float64, torch.float64) else np.float32
        X, centers = self._fitted(X)
        shard = load_shard(X, 0, shape_of(X)[0], self.metric, self.device)
        _check_finite(shard.x, "X")
        out = torch.empty((shard.rows, len(centers)), dtype=torch.float32, device=centers.device)
        step = max(1, (1 << 24) // max(1, centers.numel()))  # about 64 MB of differences at a time
        for a in range(0, shard.rows, step):
            differences = shard.x[a : a + step, None, :] - centers[None, :, :]
            out[a : a + step] = (differences * differences).sum(dim=2)
        out = out / 2 if self.metric == "cosine" else out.sqrt_()
        return out.cpu().numpy().astype(dtype, copy=False)

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """``fit(X).labels_``."""
        return self.fit(X).labels_
