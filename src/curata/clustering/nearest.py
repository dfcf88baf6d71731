"""Nearest-centroid search over a shard of rows: the inner loop of every k-means pass and of ``assign``.

Rows go in chunks and centroids in tiles; each (chunk, tile) block of scores is one GEMM, reduced to a running
minimum. Scores are ||c||^2 - 2 x.c for l2 and -x.c for cosine, so that the nearest centroid is always the minimum.
On CPU the chunks are dealt round-robin to torch's intra-op threads, each running single-threaded GEMMs (torch's or
numpy's BLAS, see ``curata.clustering.cpu_gemm``) and its own reductions: the two-thread GEMMs of one chunk at a time
wait on each other at every call, and the reductions between them ran on one core while the other idled (about 5 % of an
assignment here).

Rows in memory on a CPU with AVX-512 (where the compiled extension is built) go through one compiled pass instead
(``score_scan.scan_pass`` and ``sum_pass``, on a team of C threads): the same workers, chunks and float operations,
so the same labels, distances and sums bit for bit, without a Python call per block. The sums are fixed-point
integers (``curata.clustering.fixed_point``), so they are also the same whatever the chunks, workers or ranks. The
Python workers remain for streamed shards, GPUs, and CPUs or installs without the extension.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait

import numpy as np
import torch

from curata.clustering.cpu_gemm import numpy_gemm_preferred, panel_gemm_preferred, single_threaded_blas
from curata.clustering.fixed_point import fraction_bits, to_fixed
from curata.clustering.row_bounds import RowBounds, sum_rounding
from curata.clustering.score_scan import (
    PANEL,
    add_rows,
    best_two,
    native_scan,
    pack_panels,
    panel_scores,
    row_distances,
    runner_up_columns,
    scan_pass,
    settle_rows,
    sum_pass,
)
from curata.store.rows import MemoryShard, StreamedShard

__all__ = [
    "CENTROID_TILE",
    "chunk_rows",
    "largest_value",
    "nearest_centroids",
    "serial_main_thread",
    "full_fp32_matmuls",
    "stage_rows",
]

_DISTANCE_ROWS = 256  # rows whose (x - c) differences are held at once, at least
_DISTANCE_FLOATS_GPU = 1 << 24
CENTROID_TILE = 2048  # centroids scored at once: a (rows, tile) block of scores stays in cache


def chunk_rows(chunk_size: int | str, k: int, device: str | torch.device = "cpu", dim: int | None = None) -> int:
    """Rows per block: ``chunk_size``, or for "auto" about 4 MB of float32 scores per (rows, centroid tile) block
    on CPU, and at most 4 MB of rows of ``dim`` floats, and about 256 MB of scores on a GPU.

    Example:
        >>> chunk_rows("auto", 1000), chunk_rows(300, 1000), chunk_rows("auto", 1000, "cuda")
        (1024, 300, 65536)
        >>> chunk_rows("auto", 10), chunk_rows("auto", 10, dim=1024)
        (65536, 1024)
    """
    if chunk_size != "auto":
        return int(chunk_size)
    if torch.device(device).type != "cpu":
        # a GPU wants few large launches: every block costs a few host syncs (the near-tie and stale-row checks),
        # so 1,024-row blocks left an H100 at 0-5 % of its fp32 peak
        return 1 << max(12, min(20, int(math.log2(max(1, (1 << 26) // min(k, CENTROID_TILE))))))
    # large enough for an efficient GEMM, small enough to stay in cache (1,024 rows at k = 1,000 beat 4,096 rows
    # by 15-20 % here); at small k the rows themselves, read again for the sums, should stay in cache (10,000 x 1024
    # at k = 10: 6.4 ms a pass in 1,024-row blocks, 9.9 ms in 65,536-row ones)
    floats = (1 << 20) // min(k, CENTROID_TILE)
    if dim:
        floats = min(floats, (1 << 20) // dim)
    return 1 << max(7, min(16, int(math.log2(max(1, floats)))))


class _Centroids:
    """What every worker reads: the centroids laid out for the GEMM (scaled so that a score is one product plus,
    for l2, the squared norm) and, when numpy runs the GEMMs, a numpy view of them, or the panels of our kernel."""

    def __init__(self, centers: torch.Tensor, metric: str, numpy_gemm: bool, panel_gemm: bool = False) -> None:
        self.k, self.dim = centers.shape
        self.rows = centers.contiguous()
        self.t = (centers.T * (-2.0 if metric == "l2" else -1.0)).contiguous()  # scaling by -2 is exact in float32
        self.sq = (centers * centers).sum(dim=1).unsqueeze(0) if metric == "l2" else None
        self.t_np = self.t.numpy() if numpy_gemm else None
        self.panels = pack_panels(self.t) if panel_gemm else None
        # a score sums `dim` float32 products of rows of norm |x| and centroids of norm at most this
        self.largest_norm = 1.0 if metric == "cosine" else float(torch.linalg.vector_norm(centers, dim=1).max())
        self.unit_slack = sum_rounding(self.dim)

    def distances(self, block: torch.Tensor, labels: torch.Tensor, out: torch.Tensor, work: torch.Tensor) -> None:
        """Squared distances of the rows of ``block`` to the centroids ``labels``, as sum((x - c)^2), through a
        ``work`` buffer of (rows, dim) floats, a few rows at a time.

        The scores pick the labels, but a score ||c||^2 - 2 x.c rounds differently with the GEMM's blocking (the
        rows around it, the BLAS) and loses digits to cancellation; this sum depends on the row alone, so the
        distances (and whatever is ranked by them) are the same whatever the chunking, ranks or threads. On CPU
        the sum runs in score_scan.row_distances' order (the compiled pass's), in one call.
        """
        if block.device.type == "cpu":
            if len(block) and block.stride(1) != 1:
                block = block.contiguous()
            row_distances(block, self.rows, labels, out, checked=False)
            return
        step = len(work)
        for a in range(0, len(block), step):
            b = min(a + step, len(block))
            diff = work[: b - a]
            torch.index_select(self.rows, 0, labels[a:b], out=diff)
            diff.sub_(block[a:b]).square_()
            torch.sum(diff, dim=1, out=out[a:b])

    def settle_near_ties(
        self, rows: torch.Tensor, near_at: torch.Tensor, other_at: torch.Tensor, work: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For rows whose two best scores lie within the scores' rounding (columns ``near_at`` and ``other_at``):
        the label and squared distance decided by the sums of squares (see ``distances``), lower column on a tie."""
        near = torch.empty(len(rows), dtype=torch.float32, device=rows.device)
        other = torch.empty_like(near)
        self.distances(rows, near_at, near, work)
        self.distances(rows, other_at, other, work)
        swap = (other < near) | ((other == near) & (other_at < near_at))
        return torch.where(swap, other_at, near_at), torch.minimum(near, other)


class _ScratchPool:
    """CPU buffers kept from one pass to the next. Once ``return_large_buffers_to_the_os`` has lowered glibc's mmap
    threshold (streamed fits, select and dedup under a budget do), every buffer over 1 MiB is fresh pages that the
    kernel maps and zeroes: 0.8 ms per 3.2 MB score buffer here, and fits of 10k-100k rows took 4-17 % longer
    without the pool; with glibc's default threshold the pool changed nothing measurable. Each pass takes what it
    needs and gives it back; at most ``keep_bytes`` wait between passes."""

    def __init__(self, keep_bytes: int = 256 << 20) -> None:
        self.free: list[torch.Tensor] = []
        self.keep_bytes = keep_bytes
        self.lock = threading.Lock()

    def take(self, numel: int, dtype: torch.dtype) -> torch.Tensor:
        with self.lock:
            fits = [i for i, b in enumerate(self.free) if b.dtype == dtype and b.numel() >= numel]
            if fits:
                return self.free.pop(min(fits, key=lambda i: self.free[i].numel()))
        return torch.empty(max(numel, 1), dtype=dtype)

    def give_back(self, buffers: list[torch.Tensor]) -> None:
        with self.lock:
            self.free.extend(buffers)
            self.free.sort(key=lambda b: b.numel() * b.element_size(), reverse=True)
            kept = 0
            for i, b in enumerate(self.free):
                kept += b.numel() * b.element_size()
                if kept > self.keep_bytes:
                    del self.free[i:]
                    break


_scratch = _ScratchPool()


class _Worker:
    """One thread's score buffers and its share of the per-cluster sums."""

    def __init__(
        self,
        centroids: _Centroids,
        chunk: int,
        with_sums: bool,
        labels: torch.Tensor,
        best: torch.Tensor,
        bounds: RowBounds | None,
        sum_bits: int = 0,
        exact_distances: bool | None = None,
    ) -> None:
        k, dim, device = centroids.k, centroids.dim, centroids.t.device
        self.k, self.tile, self.chunk = k, min(k, CENTROID_TILE), chunk
        self.one_tile = k <= CENTROID_TILE
        chunk = min(chunk, max(len(labels), 1))  # rows a block holds at most
        self.centroids = centroids
        self.centers_t, self.c_sq, self.centers_np = centroids.t, centroids.sq, centroids.t_np
        self.panels = centroids.panels
        self.labels, self.best, self.bounds = labels, best, bounds
        self.on_cpu = device.type == "cpu"
        self.device = device
        self.held: list[torch.Tensor] = []  # what this pass took from the scratch pool
        self.scores = self._buffer(chunk * self.tile, torch.float32)
        # per row of a block: the best two scores and the second's column
        self.first = self._buffer(chunk, torch.float32)
        self.second = self._buffer(chunk, torch.float32)
        self.second_at = self._buffer(chunk, torch.long)
        # the same for one tile of centroids, when there are several (CPU)
        many_tiles = self.on_cpu and not self.one_tile
        self.tile_first = self._buffer(chunk if many_tiles else 0, torch.float32)
        self.tile_second = self._buffer(len(self.tile_first), torch.float32)
        self.tile_first_at = self._buffer(chunk if many_tiles else 0, torch.long)
        self.tile_second_at = self._buffer(len(self.tile_first_at), torch.long)
        # differences for the distances on a GPU, 64 MB (on CPU they are summed as they are formed)
        work_rows = 0 if self.on_cpu else max(_DISTANCE_ROWS, _DISTANCE_FLOATS_GPU // max(dim, 1))
        self.work = self._buffer(min(chunk, work_rows) * dim, torch.float32).view(-1, dim)
        # outputs for the rows a bounded pass scores
        self.some_best = self._buffer(chunk, torch.float32)
        self.some_labels = self._buffer(chunk, torch.long)
        # per row of a block: the bound on the other centroids (bounded passes), the near-ties found
        self.bound = self._buffer(chunk if bounds is not None else 0, torch.float32)
        self.close = self._buffer(chunk, torch.long)
        self.scored = 0
        # A Lloyd pass (with sums) only adds its distances up into the inertia; the others report them, and rank
        # rows by them (resampling), so they get the sums of squares that follow the row alone.
        self.exact_distances = not with_sums if exact_distances is None else exact_distances
        # fixed-point sums (int64 multiples of 2^-sum_bits): integer adds, so whatever rows a worker, chunk or
        # streamed window holds, the totals are the same
        self.sums = self._buffer(k * dim, torch.int64).view(k, dim).zero_() if with_sums else None
        self.sum_bits = sum_bits

    def _buffer(self, numel: int, dtype: torch.dtype) -> torch.Tensor:
        """A 1-D buffer of at least ``numel`` (CPU: from the scratch pool, given back by ``release``)."""
        if not self.on_cpu:
            return torch.empty(numel, dtype=dtype, device=self.device)
        buffer = _scratch.take(numel, dtype)
        self.held.append(buffer)
        return buffer[:numel]

    def release(self) -> None:
        _scratch.give_back(self.held)
        self.held = []

    def score_share(self, shard: MemoryShard, chunk: int, w: int, threads: int) -> None:
        """Score chunks w, w + threads, w + 2 threads, ... of an in-memory shard."""
        x, x_sq = shard.x, shard.x_sq
        for s in range(w * chunk, shard.rows, threads * chunk):
            e = min(s + chunk, shard.rows)
            self.score(s, x[s:e], x_sq[s:e] if x_sq is not None else None)

    def score(self, s: int, block: torch.Tensor, block_sq: torch.Tensor | None) -> None:
        rows, e = len(block), s + len(block)
        best, labels, bounds = self.best[s:e], self.labels[s:e], self.bounds
        if bounds is None:
            self._search(block, block_sq, labels, best)
        else:
            stale = None
            if bounds.filled:  # distances to the moved centroids of the last labels tell which rows are stale
                self.centroids.distances(block, labels, best, self.work)
                stale = bounds.stale_rows(s, best)
            m = rows if stale is None else len(stale)
            if m == rows:
                second = self._search(block, block_sq, labels, best)
                assert second is not None
                bounds.record(s, None, second)
            elif m:
                assert stale is not None
                some, some_sq = block[stale], (block_sq[stale] if block_sq is not None else None)
                some_best, some_labels = self.some_best[:m], self.some_labels[:m]
                second = self._search(some, some_sq, some_labels, some_best)
                assert second is not None
                labels[stale] = some_labels
                best[stale] = some_best
                bounds.record(s, stale, second)
            self.scored += m
        if self.sums is not None:
            stage_rows(self.sums, labels, block, self.sum_bits, native=self.on_cpu)

    def _search(
        self, block: torch.Tensor, block_sq: torch.Tensor | None, labels: torch.Tensor, best: torch.Tensor
    ) -> torch.Tensor | None:
        """Nearest centroid of every row of ``block`` and its squared distance; in a bounded pass, returns per row
        a squared distance that no other centroid is nearer than, up to the rounding of the scores."""
        rows = len(block)
        first, second, first_at, second_at = self.first[:rows], self.second[:rows], labels, self.second_at[:rows]
        one_tile = self.one_tile and self.on_cpu
        for t0 in range(0, self.k, self.tile):
            t1 = min(t0 + self.tile, self.k)
            out = self.scores[: rows * (t1 - t0)].view(rows, t1 - t0)
            if self.on_cpu:
                bias = self.c_sq[0, t0:t1] if self.c_sq is not None else None
                if self.panels is not None:
                    panel_scores(block, self.panels, t0, bias, out, checked=False)
                    bias = None
                elif self.centers_np is not None:
                    np.matmul(block.numpy(), self.centers_np[:, t0:t1], out=out.numpy())
                else:
                    torch.mm(block, self.centers_t[:, t0:t1], out=out)
                if t0 == 0:
                    # one tile: the runner-up's column is needed only for near-ties, found below from the scores
                    best_two(out, bias, first, first_at, second, None if one_tile else second_at, checked=False)
                    continue
                values, at = self.tile_first[:rows], self.tile_first_at[:rows]
                runner_up, runner_at = self.tile_second[:rows], self.tile_second_at[:rows]
                best_two(out, bias, values, at, runner_up, runner_at, checked=False)
            else:
                if self.c_sq is not None:
                    torch.addmm(self.c_sq[:, t0:t1], block, self.centers_t[:, t0:t1], out=out)
                else:
                    torch.mm(block, self.centers_t[:, t0:t1], out=out)
                values, at, runner_up, runner_at = _tile_best_two(out)
                if t0 == 0:
                    first.copy_(values)
                    first_at.copy_(at)
                    second.copy_(runner_up)
                    second_at.copy_(runner_at)
                    continue
            at.add_(t0)
            runner_at.add_(t0)
            better = values < first
            # the new second: if this tile's best wins, the better of the old first and this tile's second; if not,
            # the better of the old second and this tile's best
            old_value, old_at = torch.where(better, first, second), torch.where(better, first_at, second_at)
            new_value, new_at = torch.where(better, runner_up, values), torch.where(better, runner_at, at)
            keep = old_value <= new_value
            second.copy_(torch.where(keep, old_value, new_value))
            second_at.copy_(torch.where(keep, old_at, new_at))
            first.copy_(torch.where(better, values, first))
            first_at.copy_(torch.where(better, at, first_at))
        if self.exact_distances:
            self.centroids.distances(block, labels, best, self.work)
        bound = self.bound[:rows] if self.bounds is not None else None
        shared = self.centroids
        m = settle_rows(
            first, second, block_sq, shared.largest_norm, shared.unit_slack,
            None if self.exact_distances else best, bound, self.close, checked=False,
        )  # fmt: skip
        if m:
            close = self.close[:m]
            if one_tile:  # the scores are still in the buffer (with the bias when the panel kernel added it)
                scores = self.scores[: rows * self.k].view(rows, self.k)[close]
                second_at[close] = runner_up_columns(scores, self.c_sq if self.panels is None else None, labels[close])
            labels[close], best[close] = shared.settle_near_ties(
                block[close], labels[close], second_at[close], self.work
            )
        return bound


def _tile_best_two(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """On a GPU, per row of a score tile: the smallest score and its column, the second smallest and its column (inf
    and the only column for a tile of one column)."""
    if out.shape[1] == 1:
        values, at = out.min(dim=1)
        return values, at, torch.full_like(values, math.inf), at.clone()
    two, where = torch.topk(out, 2, dim=1, largest=False)
    return two[:, 0], where[:, 0], two[:, 1], where[:, 1]


def stage_rows(stage: torch.Tensor, labels: torch.Tensor, block: torch.Tensor, bits: int, *, native: bool) -> None:
    """Add each row of ``block``, in fixed point (round(x * 2^bits) as int64), to the row of ``stage`` its label names:
    on CPU in C (``native``, score_scan.add_rows), elsewhere by torch's ``index_add_``.

    Integer adds give the same totals in any order, so ``index_add_``'s atomics on a GPU (whose float sums changed
    in their last bits from run to run) need neither sorting nor torch's process-wide deterministic mode.

    Example:
        >>> stage = torch.zeros(2, 2, dtype=torch.int64)
        >>> stage_rows(stage, torch.tensor([1, 0, 1]), torch.tensor([[1.0, 2], [3, 4], [5, 6]]), 0, native=False)
        >>> stage.tolist()
        [[3, 4], [6, 8]]
    """
    if native:
        add_rows(stage, labels, block, bits, checked=False)
    else:
        stage.index_add_(0, labels, to_fixed(block, bits))


def largest_value(shard: MemoryShard | StreamedShard) -> float:
    """The largest |value| of the shard's rows (as the passes see them: unit rows for cosine), inf when one is not
    finite: with the row count, what bounds the fixed-point sums (``fraction_bits``). A streamed shard is read once.

    Example:
        >>> largest_value(MemoryShard(torch.tensor([[1.0, -3.0], [2.0, 0.5]]), "l2", 0, 2))
        3.0
    """
    largest = 0.0
    parts = [shard.x] if isinstance(shard, MemoryShard) else (block for _, block, _ in shard.blocks(1 << 16))
    for part in parts:
        if part.numel():
            top = float(part.abs().max())
            largest = math.inf if not math.isfinite(top) else max(largest, top)
    return largest


# torch's float32 matmul settings, per backend: the fp32_precision of (backend, "matmul") since torch 2.9 (where it
# may inherit (backend, "all")), else the one legacy switch of torch.set_float32_matmul_precision
_MATMUL_BACKENDS = ("cuda", "mkldnn")
_REDUCED = ("tf32", "bf16")
_matmul_lock = threading.Lock()
_matmul_users = 0
_matmul_set_aside: dict[str, str] = {}
_matmul_restore: Callable[[], None] | None = None


def _reduced_matmuls() -> dict[str, str]:
    """The backends whose float32 matmuls may now round below fp32, with the setting that allows it."""
    get = getattr(torch._C, "_get_fp32_precision_getter", None)
    if get is None:
        legacy = torch.get_float32_matmul_precision()
        return {} if legacy == "highest" else dict.fromkeys(_MATMUL_BACKENDS, legacy)
    return {b: value for b in _MATMUL_BACKENDS if (value := get(b, "matmul")) in _REDUCED}


def _set_aside(reduced: dict[str, str]) -> Callable[[], None] | None:
    """Full fp32 for the backends in ``reduced``; returns what puts the user's settings back (None: nothing to)."""
    if not reduced:
        return None
    get = getattr(torch._C, "_get_fp32_precision_getter", None)
    if get is None:
        legacy = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")
        return lambda: torch.set_float32_matmul_precision(legacy)
    set_ = torch._C._set_fp32_precision_setter
    # a backend that inherited its setting (read through from (backend, "all")) inherits it again afterwards
    restore = {b: "none" if value == get(b, "all") else value for b, value in reduced.items()}
    for backend in reduced:
        set_(backend, "matmul", "ieee")

    def put_back() -> None:
        for backend, value in restore.items():
            set_(backend, "matmul", value)

    return put_back


@contextlib.contextmanager
def full_fp32_matmuls(device: str | torch.device) -> Iterator[None]:
    """Within the block, torch's float32 matmuls round as fp32, whatever the user allowed (TF32 by
    ``torch.backends.cuda.matmul.allow_tf32 = True`` or ``torch.set_float32_matmul_precision("high")``, bf16 by
    "medium"); the user's settings are back when the block ends, even on an error.

    The near-tie rule bounds a score's rounding by fp32's: TF32's 10-bit mantissa breaks that bound, and labels
    would change with the GEMM's blocking. torch has no per-call switch, so the setting is process-wide while any
    such block runs, in any thread: the first block to start sets it aside and the last to end puts it back. A
    RuntimeWarning says so when the setting set aside is the one ``device``'s matmuls would have used.

    Example:
        >>> torch.set_float32_matmul_precision("high")  # TF32 on a GPU
        >>> with warnings.catch_warnings(record=True) as caught, full_fp32_matmuls("cuda"):
        ...     during = _reduced_matmuls()
        >>> during, torch.get_float32_matmul_precision(), "set aside" in str(caught[0].message)
        ({}, 'high', True)
        >>> torch.set_float32_matmul_precision("highest")
    """
    global _matmul_users, _matmul_set_aside, _matmul_restore
    with _matmul_lock:
        if _matmul_users == 0:
            _matmul_set_aside = _reduced_matmuls()
            _matmul_restore = _set_aside(_matmul_set_aside)
        _matmul_users += 1
        set_aside = dict(_matmul_set_aside)
    try:
        backend = "cuda" if torch.device(device).type == "cuda" else "mkldnn"
        if backend in set_aside:
            warnings.warn(
                f"curata's k-means runs its float32 matmuls in full fp32 (its near-tie rule assumes fp32 rounding): "
                f"torch's {backend} matmul precision {set_aside[backend]!r} is set aside while it runs and restored "
                "after",
                RuntimeWarning,
                stacklevel=4,
            )
        yield
    finally:
        with _matmul_lock:
            _matmul_users -= 1
            if _matmul_users == 0 and _matmul_restore is not None:
                restore, _matmul_restore, _matmul_set_aside = _matmul_restore, None, {}
                restore()


_TEAM_MAX = 256  # workers the compiled pass takes at most (TEAM_MAX in _thread_team.h); more go to Python threads
_SMALL_PASS = 1 << 26  # multiply-adds under which one thread beats handing chunks to workers (10k x 32 x 100 here)


_cores: contextvars.ContextVar[int | None] = contextvars.ContextVar("curata_worker_cores", default=None)


@contextlib.contextmanager
def serial_main_thread(device: str | torch.device) -> Iterator[None]:
    """Within the block, torch's own ops on the calling thread run on one thread, while the passes still hand their
    chunks to as many workers as torch had threads before.

    After each parallel op, OpenMP's threads spin for a while waiting for the next: between the passes of a fit,
    the bookkeeping ops (a sum over the distances, labels compared with the last pass) left them spinning on the
    cores the workers then needed, and a 2-core fit of 100,000 x 32 rows at k = 100 took 1.6x as long.

    Example:
        >>> with serial_main_thread("cpu"):
        ...     torch.get_num_threads()
        1
    """
    before = torch.get_num_threads()
    if torch.device(device).type != "cpu" or before == 1 or _cores.get() is not None:
        yield
        return
    token = _cores.set(before)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        _cores.reset(token)


def _threads_for(shard: MemoryShard | StreamedShard, chunk: int) -> int:
    """The workers a pass deals its chunks to: as many as there are cores (and chunks). The sums are integers, so
    they do not depend on the workers; nor do the labels (near-ties are settled by sums of squares of the row alone)."""
    if shard.device.type != "cpu":
        return 1
    cores = _cores.get() or torch.get_num_threads()
    return max(1, min(cores, -(-shard.rows // chunk)))


def _in_parallel(shard: MemoryShard | StreamedShard, k: int, dim: int) -> bool:
    """Whether Python worker threads run a pass's workers at the same time (else the calling thread runs them one
    after the other): below _SMALL_PASS the hand-over costs more than it saves."""
    return shard.rows * k * dim >= _SMALL_PASS


def _balanced_chunk(rows: int, chunk: int, threads: int) -> int:
    """The chunk size that deals the same number of chunks to every thread, at most ``chunk`` rows and a multiple
    of 16 (10,000 rows in 8,192-row chunks left one of two cores with a fifth of the work)."""
    if threads == 1:
        return chunk
    rounds = -(-rows // (chunk * threads))
    return min(chunk, -(-rows // (rounds * threads * 16)) * 16)


_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (process id, threads, pool)
_pool_lock = threading.Lock()


def _workers_pool(threads: int) -> ThreadPoolExecutor:
    """A pool of ``threads`` threads kept between passes (starting one cost ~0.2 ms a pass, and its threads' first
    torch calls more); a forked child, whose copy has no threads, gets a new one."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid() or _pool[1] != threads:
            if _pool is not None and _pool[0] == os.getpid():
                _pool[2].shutdown(wait=False)
            _pool = (
                os.getpid(),
                threads,
                ThreadPoolExecutor(threads, initializer=torch.set_num_threads, initargs=(1,)),
            )
        return _pool[2]


def _score_blocks(shard: MemoryShard | StreamedShard, chunk: int, workers: list[_Worker], parallel: bool) -> None:
    threads = len(workers)
    if threads == 1 or not parallel:
        for s, block, block_sq in shard.blocks(chunk):
            workers[(s // chunk) % threads].score(s, block, block_sq)
        return
    pool = _workers_pool(threads)
    if isinstance(shard, MemoryShard):  # each worker takes its own chunks: one hand-over per worker and pass
        shares = [pool.submit(worker.score_share, shard, chunk, w, threads) for w, worker in enumerate(workers)]
        wait(shares)
        for share in shares:
            share.result()
        return
    # Each worker's buffers serve one chunk at a time: before a worker gets its next chunk its previous one must be
    # done, which also lets the main thread read ahead (a streamed window) while the workers compute.
    pending: list[Future[None] | None] = [None] * threads
    try:
        for s, block, block_sq in shard.blocks(chunk):
            w = (s // chunk) % threads
            previous = pending[w]
            if previous is not None:
                previous.result()
            pending[w] = pool.submit(workers[w].score, s, block, block_sq)
        for future in pending:
            if future is not None:
                future.result()
    finally:  # on an error, nothing of this pass may still run when the caller goes on
        for future in pending:
            if future is not None and not future.cancel():
                with contextlib.suppress(Exception):
                    future.result()


def _native_pass(
    shard: MemoryShard,
    shared: _Centroids,
    chunk: int,
    threads: int,
    with_sums: bool,
    labels: torch.Tensor,
    best: torch.Tensor,
    bounds: RowBounds | None,
    sum_bits: int,
    exact: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """A pass over rows in memory on the compiled thread team (score_scan.scan_pass and sum_pass): the same
    chunks, workers and operations as the Python workers, the same results bit for bit, without a Python call per
    block or a hand-over to Python threads (about 0.3 ms a pass, as long as the whole arithmetic of 10,000 rows)."""
    x = shard.x if shard.rows == 0 or shard.x.stride(1) == 1 else shard.x.contiguous()
    bias = shared.sq.reshape(-1) if shared.sq is not None else None
    _, scored = scan_pass(
        x, shard.x_sq, shared.panels, bias, shared.rows, labels, best, threads, shared.largest_norm,
        shared.unit_slack, exact=exact, checked=False, lower=None if bounds is None else bounds.lower,
        filled=bounds is not None and bounds.filled, grow=1 + bounds.relative_slack if bounds is not None else 1.0,
    )  # fmt: skip
    if bounds is not None:
        bounds.filled, bounds.scored = True, scored
    if not with_sums:
        return labels, best, None
    sums = sum_pass(x, labels, shared.k, chunk, sum_bits, threads, threads, checked=False)
    return labels, best, sums


def nearest_centroids(
    shard: MemoryShard | StreamedShard,
    centers: torch.Tensor,
    metric: str,
    chunk: int,
    with_sums: bool,
    *,
    bounds: RowBounds | None = None,
    sum_bits: int | None = None,
    exact_distances: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Labels and squared distances of the shard's rows (cosine: between unit vectors); with ``with_sums``, a
    (k, dim + 1) int64 tensor of per-cluster sums in fixed point (multiples of 2^-sum_bits, see
    ``curata.clustering.fixed_point``) with the counts in the last column. ``sum_bits`` must be the same for every
    part of the rows whose sums are added (a fit passes one from the global largest value and row count); None: from
    this shard's own (a streamed shard is then read once more).

    The distances are sums of squares of each row alone (the same whatever the chunks, threads or ranks) when
    ``exact_distances`` is true, by default without sums; a pass with sums (None) takes them from the scores, which
    round with the GEMM's blocking.

    With ``bounds`` (the same RowBounds on every pass over this shard), only the rows whose label may have changed
    since the last pass are scored; the labels returned are ``bounds.labels``.

    Chunk i goes to worker i mod threads whatever the windows a streamed shard reads, so that a streamed pass
    gives bit for bit the result of an in-memory one.

    Example:
        >>> shard = MemoryShard(torch.tensor([[0.0, 0.0], [5.0, 5.0]]), "l2", 0, 2)
        >>> labels, d2, _ = nearest_centroids(shard, torch.tensor([[4.0, 4.0], [0.0, 1.0]]), "l2", 1024, False)
        >>> labels.tolist(), d2.tolist()
        ([1, 0], [1.0, 2.0])
    """
    n, device = shard.rows, shard.device
    if bounds is not None:
        if len(bounds.labels) != n:
            raise ValueError(f"the bounds are for {len(bounds.labels)} rows, the shard has {n}")
        bounds.follow(centers)
        labels = bounds.labels
    else:
        labels = torch.empty(n, dtype=torch.long, device=device)
    best = torch.empty(n, dtype=torch.float32, device=device)
    threads = _threads_for(shard, chunk)
    chunk = _balanced_chunk(n, chunk, threads)
    numpy_gemm = device.type == "cpu" and numpy_gemm_preferred()
    whole_pass = isinstance(shard, MemoryShard) and shard.x.dtype == centers.dtype == torch.float32
    # under 32 centroids a panel is mostly padding, and the BLAS was as fast block by block (65,536 x 64 rows,
    # k = 10); a whole pass in C (below) gains more than that
    panel_gemm = device.type == "cpu" and panel_gemm_preferred() and (len(centers) >= PANEL or whole_pass)
    shared = _Centroids(centers, metric, numpy_gemm, panel_gemm)
    if with_sums and sum_bits is None:
        sum_bits = fraction_bits(largest_value(shard), shard.rows)
    bits = 0 if sum_bits is None else sum_bits
    exact = not with_sums if exact_distances is None else exact_distances
    if whole_pass and panel_gemm and threads <= _TEAM_MAX and native_scan():
        return _native_pass(shard, shared, chunk, threads, with_sums, labels, best, bounds, bits, exact)
    workers = [_Worker(shared, chunk, with_sums, labels, best, bounds, bits, exact) for _ in range(threads)]
    try:
        # threadpoolctl takes ~60 us a pass: only when numpy's BLAS runs the GEMMs
        with single_threaded_blas() if numpy_gemm and shared.panels is None else contextlib.nullcontext():
            _score_blocks(shard, chunk, workers, _in_parallel(shard, len(centers), centers.shape[1]))
        if bounds is not None:
            bounds.filled = True
            bounds.scored = sum(worker.scored for worker in workers)
        sums = None
        if with_sums:
            sums = workers[0].sums
            assert sums is not None
            for worker in workers[1:]:
                assert worker.sums is not None
                sums += worker.sums
            if device.type == "cpu":  # numpy's is ~4x faster than torch's here
                counts = torch.from_numpy(np.bincount(labels.numpy(), minlength=len(centers)).astype(np.int64))
            else:
                counts = torch.bincount(labels, minlength=len(centers))
            sums = torch.cat([sums, counts.unsqueeze(1)], dim=1)
    finally:
        for worker in workers:
            worker.release()
    return labels, best, sums
