"""The rows the clustering engines read: in memory, or streamed from a VectorTable under a memory budget.

A *shard* is one rank's contiguous block of a data set's rows, prepared for a metric (cosine: unit rows; l2:
with squared norms). ``MemoryShard`` holds them as one float32 tensor; ``StreamedShard`` reads them from disk
window by window on every pass, so that a table larger than memory is clustered in bounded memory. Both give
the engines the same chunks, in the same order, so the two paths give the same result.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from curata._internal.checks import check_real
from curata.store.table import VectorTable

__all__ = [
    "TableRows",
    "as_matrix",
    "shape_of",
    "MemoryShard",
    "StreamedShard",
    "keep_streamed_memory_in_budget",
    "load_shard",
    "return_large_buffers_to_the_os",
    "rows_at",
]

_MAX_WINDOW_ROWS = 1 << 20  # larger windows stop paying off: the read rate is flat above ~64k rows here
_MIN_WINDOW_ROWS = 256
_CONVERT_ROWS = 1 << 18  # float16 rows converted to float32 at a time when a table is loaded whole
# labels, distances, their gathered copies and the orderings of a resampling step, per row of the table
# (measured: a hierarchical fit grew by ~90 bytes per row beyond its windows)
_BOOKKEEPING_BYTES_PER_ROW = 96
# per value of a window: the reader's Arrow batch, the array it fills, a gathered copy for a subset, the output
# and a normalised float32 copy (measured: windows of 4-byte values took about 4x their size)
_WINDOW_BYTES_PER_VALUE = 20


class TableRows:
    """A lazy subset of a VectorTable's rows (sorted storage positions); nothing is read until asked.

    Example:
        >>> import numpy as np, tempfile, os
        >>> t = VectorTable.from_arrays(os.path.join(tempfile.mkdtemp(), "t"), np.arange(10.0).reshape(5, 2))
        >>> rows = TableRows(t, [1, 3])
        >>> len(rows), rows.read(0, 2).tolist()
        (2, [[2.0, 3.0], [6.0, 7.0]])
    """

    def __init__(self, table: VectorTable, positions: Any = None, *, start: int = 0, stop: int | None = None) -> None:
        self.table = table
        self.start = start
        if positions is None:  # the contiguous rows [start, stop)
            self.positions: np.ndarray | None = None
            self._len = (len(table) if stop is None else stop) - start
        else:
            array = np.asarray(positions, dtype=np.int64).reshape(-1)
            if len(array) and (array[0] < 0 or array[-1] >= len(table) or np.any(np.diff(array) <= 0)):
                raise ValueError("positions must be sorted, distinct row positions of the table")
            self.positions = array
            self._len = len(array)

    def __len__(self) -> int:
        return self._len

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self.table.dim

    def subset(self, local: Any) -> TableRows:
        """The rows at sorted positions ``local`` of this subset."""
        local = np.asarray(local, dtype=np.int64)
        return TableRows(self.table, self.start + local if self.positions is None else self.positions[local])

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of the subset, in the table's storage dtype."""
        if self.positions is None:
            return self.table.vectors(slice(self.start + start, self.start + stop))
        return self._read_positions(self.positions[start:stop])

    def take(self, local: Any) -> np.ndarray:
        """The rows at sorted positions ``local`` of this subset."""
        return self.subset(local).read(0, len(local))

    def _read_positions(self, wanted: np.ndarray) -> np.ndarray:
        if len(wanted) == 0:
            return np.empty((0, self.dim), dtype=np.dtype(self.table.dtype))
        span = int(wanted[-1] - wanted[0] + 1)
        if len(wanted) * 8 < span:  # sparse: random reads beat scanning
            return self.table.vectors(wanted)
        # dense: scan the covering range in windows no larger than the result, keeping the wanted rows
        out = np.empty((len(wanted), self.dim), dtype=np.dtype(self.table.dtype))
        filled, first, last = 0, int(wanted[0]), int(wanted[-1]) + 1
        for a in range(first, last, len(wanted)):
            b = min(a + len(wanted), last)
            lo, hi = np.searchsorted(wanted, [a, b])
            if hi - lo == b - a:  # every row of the window is wanted: no gather copy
                out[filled : filled + b - a] = self.table.vectors(slice(a, b))
            elif hi > lo:
                out[filled : filled + hi - lo] = self.table.vectors(slice(a, b))[wanted[lo:hi] - a]
            filled += hi - lo
        return out


def shape_of(X: Any) -> tuple[int, int]:
    """(rows, dim) of a 2-D array, tensor, VectorTable or TableRows."""
    if isinstance(X, (VectorTable, TableRows)):
        return len(X), X.dim
    check_real(X, "X")  # the first look at X of every engine: strings, complex, meta tensors... refused here
    shape = tuple(getattr(X, "shape", ()))
    if len(shape) != 2:
        raise ValueError(f"X must be 2-D (rows, dim), got shape {shape}")
    return int(shape[0]), int(shape[1])


def as_matrix(X: Any, start: int = 0, stop: int | None = None, device: str | torch.device = "cpu") -> torch.Tensor:
    """Rows [start, stop) of X (numpy array, torch tensor, VectorTable or TableRows) as a float32 tensor.

    Example:
        >>> as_matrix(np.ones((3, 2), dtype=np.float16), 1).dtype, as_matrix(np.ones((3, 2)), 1).shape
        (torch.float32, torch.Size([2, 2]))
    """
    if isinstance(X, VectorTable):
        X = TableRows(X)
    if isinstance(X, TableRows):
        stop = len(X) if stop is None else stop
        if X.table.dtype == "float32":
            block = torch.from_numpy(X.read(start, stop))
        else:  # convert window by window: never the whole float16 copy beside the float32 one
            out = np.empty((max(0, stop - start), X.dim), dtype=np.float32)
            for a in range(start, stop, _CONVERT_ROWS):
                out[a - start : min(a + _CONVERT_ROWS, stop) - start] = X.read(a, min(a + _CONVERT_ROWS, stop))
            block = torch.from_numpy(out)
    elif isinstance(X, torch.Tensor):
        check_real(X, "X")
        block = X[start:stop]
    else:
        array = np.asarray(X)
        check_real(array, "X")
        block = torch.from_numpy(np.ascontiguousarray(array[start:stop]))
    return block.to(device=device, dtype=torch.float32)


def rows_at(X: Any, positions: np.ndarray) -> torch.Tensor:
    """The rows at sorted ``positions`` of X (numpy array, torch tensor, VectorTable or TableRows) as a float32
    tensor; from a table only those rows are read.

    Example:
        >>> rows_at(np.arange(6.0).reshape(3, 2), np.array([0, 2])).tolist()
        [[0.0, 1.0], [4.0, 5.0]]
    """
    if isinstance(X, (VectorTable, TableRows)):
        return as_matrix((TableRows(X) if isinstance(X, VectorTable) else X).subset(positions))
    if isinstance(X, torch.Tensor):
        return X[torch.from_numpy(positions)].float()
    return as_matrix(np.asarray(X)[positions])


def _prepare(x: torch.Tensor, metric: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    if metric == "cosine":
        return torch.nn.functional.normalize(x, dim=1), None
    return x, torch.linalg.vector_norm(x, dim=1).square_()  # a reduction: no (rows, dim) temporary


class MemoryShard:
    """Rows [start, start + len(x)) of ``total``, held in memory and prepared for ``metric``."""

    def __init__(self, x: torch.Tensor, metric: str, start: int, total: int, *, prepared: bool = False) -> None:
        self.metric = metric
        if prepared:
            self.x, self.x_sq = x, (None if metric == "cosine" else torch.linalg.vector_norm(x, dim=1).square_())
        else:
            self.x, self.x_sq = _prepare(x, metric)
        self.start, self.total = start, total

    @property
    def rows(self) -> int:
        """Rows held by this shard."""
        return len(self.x)

    @property
    def device(self) -> torch.device:
        """Where the rows are."""
        return self.x.device

    def blocks(self, chunk: int) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None]]:
        """(local start, rows, squared norms or None) in chunks of ``chunk`` rows."""
        for s in range(0, self.rows, chunk):
            e = min(s + chunk, self.rows)
            yield s, self.x[s:e], (self.x_sq[s:e] if self.x_sq is not None else None)

    def take(self, local: torch.Tensor) -> torch.Tensor:
        """The prepared rows at local positions ``local``."""
        return self.x[local.to(self.x.device)]

    def subset(self, local: torch.Tensor, start: int, total: int, memory_budget: int | None) -> MemoryShard:
        """The rows at sorted local positions ``local``, as rows [start, ...) of a data set of ``total`` rows."""
        return MemoryShard(self.take(local), self.metric, start, total, prepared=True)

    def materialize(self) -> MemoryShard:
        """This shard, in memory."""
        return self


class StreamedShard:
    """Rows [start, start + len(source)) of ``total``, read from disk window by window on every pass.

    Windows hold a multiple of the engines' chunk (or, under a small budget, a piece of one), so that chunk
    boundaries, and with them every floating-point sum, are those of a ``MemoryShard`` of the same rows.
    """

    def __init__(
        self, source: TableRows, metric: str, start: int, total: int, device: str | torch.device, window_rows: int
    ) -> None:
        self.source, self.metric, self.start, self.total = source, metric, start, total
        self._device = torch.device(device)
        self.window_rows = window_rows

    @property
    def rows(self) -> int:
        """Rows of this shard."""
        return len(self.source)

    @property
    def device(self) -> torch.device:
        """Where the rows go when read."""
        return self._device

    def blocks(self, chunk: int) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None]]:
        """(local start, rows, squared norms or None) in chunks of ``chunk`` rows, read a window at a time."""
        # Windows of whole chunks, or pieces of one chunk, keep the chunk boundaries, and so every sum, of the
        # in-memory path: no block spans two chunks.
        if self.window_rows >= chunk:
            window = self.window_rows // chunk * chunk
            reads = [(a, min(a + window, self.rows)) for a in range(0, self.rows, window)]
        else:
            piece = -(-chunk // -(-chunk // self.window_rows))  # equal pieces of at most window_rows rows
            reads = [
                (c + p, min(c + p + piece, c + chunk, self.rows))
                for c in range(0, self.rows, chunk)
                for p in range(0, chunk, piece)
                if c + p < self.rows
            ]
            chunk = piece
        for a, b in reads:
            raw = torch.from_numpy(self.source.read(a, b))
            x, x_sq = _prepare(raw.to(device=self._device, dtype=torch.float32), self.metric)
            del raw
            for s in range(0, len(x), chunk):
                e = min(s + chunk, len(x))
                yield a + s, x[s:e], (x_sq[s:e] if x_sq is not None else None)
        x = x_sq = None  # the last window too
        return_large_buffers_to_the_os()  # the pass's windows, freed in the reader threads' arenas

    def take(self, local: torch.Tensor) -> torch.Tensor:
        """The prepared rows at sorted local positions ``local``."""
        raw = torch.from_numpy(self.source.take(local.cpu().numpy()))
        return _prepare(raw.to(device=self._device, dtype=torch.float32), self.metric)[0]

    def subset(
        self, local: torch.Tensor, start: int, total: int, memory_budget: int | None
    ) -> MemoryShard | StreamedShard:
        """The rows at sorted local positions ``local``: in memory when they fit ``memory_budget``."""
        if _fits(len(local), self.source.dim, memory_budget, len(self.source.table)):
            return MemoryShard(self.take(local), self.metric, start, total, prepared=True)
        subset = self.source.subset(local.cpu().numpy())
        return StreamedShard(subset, self.metric, start, total, self._device, self.window_rows)

    def materialize(self) -> MemoryShard:
        """This shard's rows, read into memory."""
        x = torch.from_numpy(self.source.read(0, self.rows)).to(device=self._device, dtype=torch.float32)
        return MemoryShard(x, self.metric, self.start, self.total)


@functools.cache
def _malloc_trim() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to trim
        return None


def return_large_buffers_to_the_os() -> None:
    """Give the memory glibc keeps in freed blocks back to the operating system now (``malloc_trim(0)``); no
    allocator setting is changed. ``select`` and every streamed pass call it when they end.

    Example:
        >>> return_large_buffers_to_the_os()
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


@functools.cache
def keep_streamed_memory_in_budget() -> None:
    """Have glibc serve blocks of 1 MiB and more with mmap, for the rest of the process: only where a memory
    budget is asked for and a table is streamed under it.

    glibc's adaptive threshold otherwise serves the engines' per-thread blocks from one arena per thread, and a
    streamed k-means fit of 300k x 128 rows under a 48 MiB budget peaked at +98 to +103 MB instead of +43 MB
    (tests/store/test_rows.py); trimming, even every 2 ms, did not bring it down. It is a process-wide change
    (it ends glibc's adaptive threshold), so nothing else sets it: not in-memory fits, not ``select`` without a
    budget (``select`` on a table under a budget does: kcenter on 300k x 128 rows under 24 MiB peaked at +93 MB
    without it, +50 MB with it).

    Example:
        >>> keep_streamed_memory_in_budget()
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 1 << 20)
        except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
            pass


def _fits(rows: int, dim: int, memory_budget: int | None, table_rows: int = 0) -> bool:
    """Whether ``rows`` float32 rows, their norms, the per-row arrays of a ``table_rows`` table and the
    conversion window fit ``memory_budget``."""
    if memory_budget is None:
        return True
    window = min(rows, _CONVERT_ROWS) * dim * _WINDOW_BYTES_PER_VALUE
    return rows * (dim + 1) * 4 + _BOOKKEEPING_BYTES_PER_ROW * table_rows + window <= memory_budget


def load_shard(
    X: Any,
    start: int,
    stop: int,
    metric: str,
    device: str | torch.device,
    memory_budget: int | None = None,
    chunk: int = 1024,
) -> MemoryShard | StreamedShard:
    """Rows [start, stop) of X: streamed when X is on disk and its float32 rows exceed ``memory_budget`` bytes.

    A streamed shard sets aside ~96 bytes per table row for the engines' per-row arrays and reads windows that
    fill the rest of the budget (float32 rows plus copies).

    Example:
        >>> shard = load_shard(np.ones((4, 3)), 0, 4, "l2", "cpu")
        >>> type(shard).__name__, shard.x_sq.tolist()
        ('MemoryShard', [3.0, 3.0, 3.0, 3.0])
    """
    total, dim = shape_of(X)
    on_disk = isinstance(X, (VectorTable, TableRows))
    if on_disk and not _fits(stop - start, dim, memory_budget, len(X) if isinstance(X, VectorTable) else len(X.table)):
        assert memory_budget is not None
        table_rows = len(X) if isinstance(X, VectorTable) else len(X.table)
        for_windows = memory_budget - _BOOKKEEPING_BYTES_PER_ROW * table_rows
        if for_windows < _MIN_WINDOW_ROWS * dim * _WINDOW_BYTES_PER_VALUE:
            raise ValueError(
                f"memory_budget ({memory_budget} bytes) is too small for a table of {table_rows} rows: their "
                f"labels, distances and orderings alone take about {_BOOKKEEPING_BYTES_PER_ROW * table_rows} bytes; "
                f"give at least {_BOOKKEEPING_BYTES_PER_ROW * table_rows + (4 << 20)}"
            )
        window = min(_MAX_WINDOW_ROWS, max(_MIN_WINDOW_ROWS, for_windows // (dim * _WINDOW_BYTES_PER_VALUE)))
        keep_streamed_memory_in_budget()
        if isinstance(X, VectorTable):
            rows = TableRows(X, start=start, stop=stop)
        else:
            rows = X.subset(np.arange(start, stop))
        return StreamedShard(rows, metric, start, total, device, window)
    return MemoryShard(as_matrix(X, start, stop, device), metric, start, total)
