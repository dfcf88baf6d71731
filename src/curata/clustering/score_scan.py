"""The scan around each score GEMM of a k-means pass: per row, the best two scores and their columns, the
distances and near-ties that follow, the sums of squares to given centroids, and the per-cluster sums of the rows.

A small C extension (``_score_scan``, built with the package where a C compiler is present) does each in one pass
over memory; without it, or with ``CURATA_NATIVE_SCAN=0``, numpy and torch calls give the same results bit for bit
(only comparisons and float32 operations in the same order), several times more slowly: on 65,536 x 10 scores the
numpy argmin alone took 1.1 ms where the whole scan takes a fraction of that. ``scan_pass`` and ``sum_pass`` run a
whole pass over rows in memory on the extension's own threads (``nearest.py`` says when).

The extension picks its kernels by what the CPU has: AVX-512 (the panel GEMM, the whole pass, the 16-lane scan and
distances), else AVX2 (the 8-lane scan; the score GEMMs by the BLAS), else scalar C. ``CURATA_SIMD=avx2`` or
``=none`` (read when the extension loads) or ``limited_simd`` caps that choice, so that a machine with AVX-512 runs
what the others run; ``scan_path`` says which runs, ``kernel_uses`` counts the calls that took each kernel.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator

import numpy as np
import torch

from curata.clustering.fixed_point import to_fixed

try:
    from curata.clustering import _score_scan
except ImportError:  # not built: no C compiler where the package was installed
    _score_scan = None

__all__ = [
    "PANEL",
    "add_rows",
    "best_two",
    "exact_sqrt",
    "kernel_uses",
    "limited_simd",
    "native_scan",
    "pack_panels",
    "panel_scores",
    "row_distances",
    "runner_up_columns",
    "scan_pass",
    "scan_path",
    "settle_rows",
    "sum_pass",
]

_ENV = "CURATA_NATIVE_SCAN"
PANEL = 32  # centroids per panel of the AVX-512 kernel


def native_scan() -> bool:
    """Whether the compiled scan is used (built, and not turned off by ``CURATA_NATIVE_SCAN=0``).

    Example:
        >>> isinstance(native_scan(), bool)
        True
    """
    if _score_scan is None:
        return False
    flag = os.environ.get(_ENV, "1").strip().lower()
    if flag not in ("0", "1", "false", "true", "no", "yes", ""):
        raise ValueError(f"{_ENV} must be 0 or 1, got {flag!r}")
    return flag not in ("0", "false", "no")


def scan_path() -> str:
    """Which code scans the scores: ``"avx512"``, ``"avx2"`` or ``"scalar"`` (the compiled kernels, capped by
    ``CURATA_SIMD`` or ``limited_simd``), or ``"plain"`` (numpy and torch: the extension is not built, or
    ``CURATA_NATIVE_SCAN=0``; the panel GEMM may still score blocks then, see ``cpu_gemm``).

    Example:
        >>> scan_path() in ("avx512", "avx2", "scalar", "plain")
        True
    """
    if not native_scan():
        return "plain"
    level = _score_scan.simd()
    return "scalar" if level == "none" else level


def kernel_uses() -> dict[str, int]:
    """Calls that took each compiled kernel since the extension loaded (``scan_avx512``, ``scan_avx2``,
    ``scan_scalar``, ``distance_avx512``, ``distance_portable``, ``panel_gemm``, ``scan_pass``): counted once a
    call, not once a row; empty without the extension.

    Example:
        >>> all(count >= 0 for count in kernel_uses().values())
        True
    """
    return {} if _score_scan is None else dict(_score_scan.kernel_uses())


@contextlib.contextmanager
def limited_simd(level: str) -> Iterator[str]:
    """Within the block the compiled kernels use at most ``level`` (``"avx512"``, ``"avx2"`` or ``"none"``), as on a
    CPU that has no more, and the CPU GEMM choice follows (no panel kernel below AVX-512); yields the level in force.
    For tests and benchmarks, between fits: not while a pass runs on another thread.

    Example:
        >>> if _score_scan is not None:
        ...     with limited_simd("none") as level:
        ...         print(level, scan_path() in ("scalar", "plain"))
        ... else:
        ...     print("none", True)
        none True
    """
    from curata.clustering import cpu_gemm  # the GEMM choice is cached per process: cleared on the way in and out

    if _score_scan is None:
        raise RuntimeError("limited_simd needs the compiled curata.clustering._score_scan")
    before = _score_scan.simd()
    _score_scan.set_simd(level)
    cpu_gemm.panel_gemm_preferred.cache_clear()
    try:
        yield _score_scan.simd()
    finally:
        _score_scan.set_simd(before)
        cpu_gemm.panel_gemm_preferred.cache_clear()


def _f32(t: torch.Tensor, name: str, any_device: bool = False) -> None:
    if t.dtype != torch.float32 or not (any_device or t.device.type == "cpu"):
        raise ValueError(f"{name} must be a float32 {'' if any_device else 'CPU '}tensor, got {t.dtype} on {t.device}")


def best_two(
    scores: torch.Tensor,
    bias: torch.Tensor | None,
    first: torch.Tensor,
    first_at: torch.Tensor,
    second: torch.Tensor,
    second_at: torch.Tensor | None,
    *,
    checked: bool = True,
) -> None:
    """Per row of ``scores`` (rows, cols) plus ``bias`` (cols,): the smallest value and its column into ``first`` and
    ``first_at``, the smallest of the other columns and its column into ``second`` and ``second_at`` (a row of one
    column: inf and column 0). Ties go to the lowest column. ``second_at=None`` leaves the runner-up's column out
    (``runner_up_columns`` finds it for the rows that need it). ``checked=False`` skips the checks of the arguments
    (the k-means passes' own buffers, block after block: the checks cost more than the scan of a small block).

    Example:
        >>> s = torch.tensor([[3.0, 1.0, 2.0], [0.0, 0.0, 5.0]])
        >>> v1, v2, i1, i2 = torch.empty(2), torch.empty(2), torch.empty(2).long(), torch.empty(2).long()
        >>> best_two(s, torch.tensor([0.0, 0.0, -1.5]), v1, i1, v2, i2)
        >>> v1.tolist(), i1.tolist(), v2.tolist(), i2.tolist()
        ([0.5, 0.0], [2, 0], [1.0, 0.0], [1, 1])
    """
    rows, cols = scores.shape
    if checked:
        for name, t in (("first", first), ("second", second)):
            _f32(t, name)
        _f32(scores, "scores")
        outputs = (first, second, first_at) + ((second_at,) if second_at is not None else ())
        if scores.stride(1) != 1 or min(len(t) for t in outputs) < rows:
            raise ValueError(f"best_two needs row-major scores and outputs of at least {rows} rows")
        if first_at.dtype != torch.long or (second_at is not None and second_at.dtype != torch.long):
            raise ValueError("first_at and second_at must be int64 tensors")
        if bias is not None:
            _f32(bias, "bias")
            if bias.numel() != cols or bias.stride(-1) != 1:
                raise ValueError(f"bias must be {cols} contiguous floats, got shape {tuple(bias.shape)}")
    if native_scan():
        outputs = (first, second, first_at) + ((second_at,) if second_at is not None else ())
        if not checked or all(t.is_contiguous() for t in outputs):
            _score_scan.best_two(
                scores.data_ptr(),
                0 if bias is None else bias.data_ptr(),
                first.data_ptr(),
                first_at.data_ptr(),
                second.data_ptr(),
                0 if second_at is None else second_at.data_ptr(),
                rows,
                cols,
                scores.stride(0),
            )
            return
    out, positions = scores.numpy(), np.arange(rows)
    out = out + bias.reshape(-1).numpy() if bias is not None else out.copy()
    at = np.argmin(out, axis=1)
    first[:rows] = torch.from_numpy(out[positions, at])
    first_at[:rows] = torch.from_numpy(at)
    out[positions, at] = np.inf  # hide each row's minimum and take the minimum again
    runner_at = np.argmin(out, axis=1)
    second[:rows] = torch.from_numpy(out[positions, runner_at])
    if second_at is not None:
        second_at[:rows] = torch.from_numpy(runner_at)


def runner_up_columns(scores: torch.Tensor, bias: torch.Tensor | None, first_at: torch.Tensor) -> torch.Tensor:
    """For a few rows of scores (plus ``bias``) whose best column is ``first_at``: the column of the smallest of the
    others, lowest on ties, as ``best_two`` gives it.

    Example:
        >>> runner_up_columns(torch.tensor([[3.0, 1.0, 1.0]]), None, torch.tensor([1])).tolist()
        [2]
    """
    rows = scores + bias.reshape(-1) if bias is not None else scores.clone()
    rows[torch.arange(len(rows)), first_at] = math.inf
    return torch.from_numpy(np.argmin(rows.numpy(), axis=1))


def add_rows(stage: torch.Tensor, labels: torch.Tensor, x: torch.Tensor, bits: int, *, checked: bool = True) -> None:
    """``stage[labels[i]] += round(x[i] * 2^bits)`` for every row i: int64 fixed-point sums of float32 rows (see
    ``curata.clustering.fixed_point``), which are the same bit for bit in C and in torch, in any order of the rows;
    ``checked=False`` as for ``best_two``.

    Example:
        >>> stage = torch.zeros(2, 2, dtype=torch.int64)
        >>> add_rows(stage, torch.tensor([1, 1, 0]), torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.5]]), 1)
        >>> stage.tolist()
        [[10, 13], [8, 12]]
    """
    native = native_scan() and (not checked or (stage.is_contiguous() and labels.is_contiguous() and x.stride(1) == 1))
    if checked:
        if stage.dtype != torch.int64:
            raise ValueError(f"stage must hold int64 values, got {stage.dtype}")
        if x.dtype != torch.float32:
            raise ValueError(f"x must hold float32 values, got {x.dtype}")
        if labels.dtype != torch.long or len(labels) != len(x) or x.shape[1:] != stage.shape[1:]:
            raise ValueError(
                f"add_rows needs int64 labels for each of {len(x)} rows of {tuple(stage.shape[1:])} floats"
            )
        if native and len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(stage)):
            raise ValueError(f"labels must lie in [0, {len(stage)})")
    if native:
        _score_scan.add_rows(
            stage.data_ptr(), labels.data_ptr(), x.data_ptr(), len(x), stage.shape[1], x.stride(0) if len(x) else 0,
            int(bits),
        )  # fmt: skip
        return
    # integer adds: index_add_ gives the same totals in any order (a GPU's atomics included)
    stage.index_add_(0, labels, to_fixed(x, bits))


def settle_rows(
    first: torch.Tensor,
    second: torch.Tensor,
    block_sq: torch.Tensor | None,
    largest_norm: float,
    unit_slack: float,
    best: torch.Tensor | None,
    bound: torch.Tensor | None,
    close: torch.Tensor,
    *,
    checked: bool = True,
) -> int:
    """What follows the scan of a block's scores (l2: ``block_sq`` the rows' squared norms; cosine: None, unit rows):
    writes into ``best`` (if given) each row's squared distance from its best score, clamped at 0; lists in
    ``close`` the near-ties, rows whose two best scores are within twice their rounding bound (l2:
    ``(|x| + largest_norm)^2 unit_slack``, cosine ``4 unit_slack``), and returns their count; writes into ``bound``
    (if given) a lower bound on the squared distance to every centroid but the best: the second score (the first
    for a near-tie) as a distance, less the rounding bound, clamped at 0.

    Example:
        >>> close = torch.empty(2, dtype=torch.long)
        >>> best, bound = torch.empty(2), torch.empty(2)
        >>> settle_rows(torch.tensor([-3.0, -1.0]), torch.tensor([-1.0, -1.0]), torch.tensor([4.0, 4.0]),
        ...             1.0, 2.0**-20, best, bound, close)
        1
        >>> best.tolist(), close[:1].tolist()
        ([1.0, 3.0], [1])
    """
    rows = len(first)
    tensors = [("first", first), ("second", second)] + [
        (n, t) for n, t in (("block_sq", block_sq), ("best", best), ("bound", bound)) if t is not None
    ]
    if checked:
        tensors = [("first", first), ("second", second), ("block_sq", block_sq), ("best", best), ("bound", bound)]
        for name, t in tensors:
            if t is not None:
                _f32(t, name, any_device=True)
                if len(t) < rows or not t.is_contiguous():
                    raise ValueError(f"{name} must hold at least {rows} contiguous floats")
        if close.dtype != torch.long or len(close) < rows or not close.is_contiguous():
            raise ValueError(f"close must be a contiguous int64 tensor of at least {rows} entries")
    if native_scan() and first.device.type == "cpu":
        return _score_scan.settle_rows(
            first.data_ptr(),
            second.data_ptr(),
            0 if block_sq is None else block_sq.data_ptr(),
            0 if best is None else best.data_ptr(),
            0 if bound is None else bound.data_ptr(),
            close.data_ptr(),
            rows,
            float(largest_norm),
            float(unit_slack),
        )
    first, second = first[:rows], second[:rows]
    if block_sq is None:
        slack: torch.Tensor | float = 4.0 * unit_slack
        as_distance = lambda scores: scores * 2.0 + 2.0  # noqa: E731  (between unit vectors)
    else:
        slack = torch.square(exact_sqrt(block_sq[:rows]) + largest_norm) * unit_slack
        as_distance = lambda scores: scores + block_sq[:rows]  # noqa: E731
    if best is not None:
        best[:rows] = as_distance(first).clamp_(min=0.0)
    near = second - first <= 2 * slack
    found = torch.nonzero(near).reshape(-1)
    close[: len(found)] = found
    if bound is not None:
        bound[:rows] = (as_distance(torch.where(near, first, second)) - slack).clamp_(min=0.0)
    return len(found)


def exact_sqrt(t: torch.Tensor) -> torch.Tensor:
    """The square root of each value, rounded as IEEE 754 says (as C's sqrtf): on CPU through numpy, since torch's
    vectorised float32 sqrt is off by one unit in the last place for some values (18.13308 here).

    Example:
        >>> exact_sqrt(torch.tensor([18.133079528808594])).item() == float(np.sqrt(np.float32(18.133079528808594)))
        True
    """
    if t.device.type != "cpu":
        return torch.sqrt(t)
    return torch.from_numpy(np.sqrt(t.contiguous().numpy()))


def pack_panels(centers_t: torch.Tensor) -> torch.Tensor:
    """The (dim, k) centroid columns as (ceil(k / PANEL), dim, PANEL) panels, zero-padded, for ``panel_scores``.

    Example:
        >>> pack_panels(torch.arange(6.0).reshape(2, 3)).shape
        torch.Size([1, 2, 32])
    """
    dim, k = centers_t.shape
    panels = -(-k // PANEL)
    padded = torch.zeros((dim, panels * PANEL), dtype=torch.float32)
    padded[:, :k] = centers_t
    return padded.view(dim, panels, PANEL).permute(1, 0, 2).contiguous()


def panel_scores(
    block: torch.Tensor,
    panels: torch.Tensor,
    start: int,
    bias: torch.Tensor | None,
    out: torch.Tensor,
    *,
    checked: bool = True,
) -> None:
    """``out = block @ columns[start : start + out.shape[1]] + bias`` with the columns packed by ``pack_panels``, in
    our AVX-512 kernel (``curata.clustering.cpu_gemm.panel_gemm_preferred`` says where it runs); ``start`` is a
    multiple of PANEL. Rounds differently from a BLAS GEMM (its own order of the multiply-adds).

    Example:
        >>> from curata.clustering.cpu_gemm import panel_gemm_preferred
        >>> x, c = torch.ones(3, 4), torch.arange(8.0).reshape(4, 2)
        >>> out = torch.empty(3, 2)
        >>> if panel_gemm_preferred():
        ...     panel_scores(x, pack_panels(c), 0, torch.tensor([0.5, 0.0]), out)
        ... else:
        ...     _ = torch.addmm(torch.tensor([0.5, 0.0]), x, c, out=out)
        >>> out[0].tolist()
        [12.5, 16.0]
    """
    rows, cols = out.shape
    if checked:
        for name, t in (("block", block), ("panels", panels), ("out", out)):
            _f32(t, name)
        if bias is not None:
            _f32(bias, "bias")
        dim = panels.shape[1]
        if (
            block.shape != (rows, dim)
            or block.stride(1) != 1
            or not panels.is_contiguous()
            or panels.shape[2] != PANEL
            or start % PANEL
            or start + cols > panels.shape[0] * PANEL
            or out.stride(1) != 1
            or (bias is not None and (bias.numel() != cols or bias.stride(-1) != 1))
        ):
            raise ValueError(
                f"panel_scores needs ({rows}, {dim}) rows, panels of {PANEL} columns from a multiple of {PANEL}, "
                f"and {cols} bias values"
            )
    if _score_scan is None:
        raise RuntimeError("the compiled curata.clustering._score_scan is missing")
    dim = panels.shape[1]
    ran = _score_scan.panel_scores(
        block.data_ptr(),
        panels.data_ptr() + (start // PANEL) * dim * PANEL * 4,
        0 if bias is None else bias.data_ptr(),
        out.data_ptr(),
        rows,
        dim,
        cols,
        block.stride(0) if rows else dim,
        out.stride(0) if rows else cols,
    )
    if not ran:
        raise RuntimeError("the panel kernel needs a CPU with AVX-512")


def _rows_in_memory(x: torch.Tensor, name: str) -> None:
    _f32(x, name)
    if x.dim() != 2 or (len(x) > 1 and x.stride(1) != 1) or (len(x) and x.stride(0) < x.shape[1]):
        raise ValueError(f"{name} must be (rows, dim) float32 rows with unit column stride")


def scan_pass(
    x: torch.Tensor,
    x_sq: torch.Tensor | None,
    panels: torch.Tensor,
    bias: torch.Tensor | None,
    centers: torch.Tensor,
    labels: torch.Tensor,
    best: torch.Tensor,
    threads: int,
    largest_norm: float,
    unit_slack: float,
    *,
    exact: bool = False,
    lower: torch.Tensor | None = None,
    filled: bool = False,
    grow: float = 1.0,
    checked: bool = True,
) -> tuple[int, int]:
    """The nearest of the k ``centers`` for every row of ``x``, on up to ``threads`` threads in C (the result does not
    depend on them): ``panel_scores`` (l2: ``x_sq`` the rows' squared norms, ``bias`` the centroids'; cosine: both
    None), ``best_two`` and ``settle_rows`` block after block while the scores are in cache. Writes each row's
    centroid into ``labels`` and its squared distance into ``best``: from the score, or with ``exact`` the sum of
    squares (``row_distances``). Near-ties (two best scores within the scores' rounding) are decided by the sums of
    squares, the lower column on a tie, and get that sum as their distance.

    With ``lower`` (``RowBounds.lower``: per row a bound on the distance to every other centroid) and ``filled`` (it
    and ``labels`` hold the last pass's), a row whose exact distance to its own centroid, times ``grow``, is within
    lower^2 keeps its label with that distance, and only the others are scored; every scored row gets its new bound.

    Returns (near-ties, rows scored). Needs the compiled extension and AVX-512 (``panel_gemm_preferred``);
    ``checked=False`` as for ``best_two``.

    Example:
        >>> from curata.clustering.cpu_gemm import panel_gemm_preferred
        >>> x, c = torch.tensor([[0.0, 0.0], [5.0, 5.0]]), torch.tensor([[4.0, 4.0], [0.0, 1.0]])
        >>> labels, best = torch.empty(2, dtype=torch.long), torch.empty(2)
        >>> if panel_gemm_preferred():
        ...     _ = scan_pass(x, (x * x).sum(1), pack_panels(-2 * c.T), (c * c).sum(1), c, labels, best, 2, 5.7,
        ...                   2.0**-20, exact=True)
        ...     print(labels.tolist(), best.tolist())
        ... else:
        ...     print([1, 0], [1.0, 2.0])
        [1, 0] [1.0, 2.0]
    """
    if checked:
        _rows_in_memory(x, "x")
        rows, dim = x.shape
        _f32(centers, "centers")
        k = len(centers)
        if centers.shape != (k, dim) or not centers.is_contiguous() or k < 1:
            raise ValueError(f"centers must be contiguous (k >= 1, {dim}) floats, got shape {tuple(centers.shape)}")
        _f32(panels, "panels")
        if panels.dim() != 3 or panels.shape[1:] != (dim, PANEL) or panels.shape[0] * PANEL < k:
            raise ValueError(f"panels must pack the k = {k} centroids of {dim} floats ({PANEL} per panel)")
        if not panels.is_contiguous():
            raise ValueError("panels must be contiguous")
        for name, t, dtype, size in (
            ("x_sq", x_sq, torch.float32, rows),
            ("bias", bias, torch.float32, k),
            ("labels", labels, torch.long, rows),
            ("best", best, torch.float32, rows),
            ("lower", lower, torch.float32, rows),
        ):
            if t is None:
                continue
            if t.dtype != dtype or t.device.type != "cpu" or not t.is_contiguous() or t.numel() < size:
                raise ValueError(f"{name} must be a contiguous {dtype} CPU tensor of at least {size} values")
        if (x_sq is None) != (bias is None):
            raise ValueError("x_sq and bias go together (l2) or are both None (cosine)")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if _score_scan is None or not _score_scan.avx512():
            raise RuntimeError("scan_pass needs the compiled curata.clustering._score_scan and a CPU with AVX-512")
        if filled and lower is None:
            raise ValueError("filled=True needs the bounds (lower)")
        if filled and rows and (int(labels[:rows].min()) < 0 or int(labels[:rows].max()) >= len(centers)):
            raise ValueError(f"filled=True needs the last pass's labels, in [0, {len(centers)})")
    rows, dim = x.shape
    near_ties, scored = _score_scan.scan_pass(
        x.data_ptr(),
        0 if x_sq is None else x_sq.data_ptr(),
        panels.data_ptr(),
        0 if bias is None else bias.data_ptr(),
        centers.data_ptr(),
        labels.data_ptr(),
        best.data_ptr(),
        0 if lower is None else lower.data_ptr(),
        rows,
        dim,
        len(centers),
        x.stride(0) if rows else dim,
        threads,
        int(exact),
        int(filled),
        float(largest_norm),
        float(unit_slack),
        float(grow),
    )
    return near_ties, scored


def row_distances(
    x: torch.Tensor, centers: torch.Tensor, labels: torch.Tensor, out: torch.Tensor, *, checked: bool = True
) -> None:
    """``out[i]`` = the squared distance from row i of ``x`` to centroid ``labels[i]``, summed in an order that
    depends on the row alone (sixteen lanes: lane l adds the squared differences of columns l, l + 16, ... in
    turn, then lanes l and l + 8, l + 4, l + 2, l + 1 are added), in C or, without it, in numpy in the same order:
    the same float32 result either way. ``checked=False`` as for ``best_two``.

    Example:
        >>> out = torch.empty(2)
        >>> row_distances(torch.tensor([[0.0, 0.0], [5.0, 5.0]]), torch.tensor([[3.0, 4.0]]), torch.tensor([0, 0]), out)
        >>> out.tolist()
        [25.0, 5.0]
    """
    rows, dim = x.shape
    if checked:
        _rows_in_memory(x, "x")
        _f32(centers, "centers")
        _f32(out, "out")
        if centers.dim() != 2 or centers.shape[1] != dim or not centers.is_contiguous():
            raise ValueError(f"centers must be contiguous rows of {dim} floats, got shape {tuple(centers.shape)}")
        if labels.dtype != torch.long or not labels.is_contiguous() or len(labels) != rows:
            raise ValueError(f"labels must be {rows} contiguous int64 values")
        if rows and (int(labels.min()) < 0 or int(labels.max()) >= len(centers)):
            raise ValueError(f"labels must lie in [0, {len(centers)})")
        if not out.is_contiguous() or len(out) < rows:
            raise ValueError(f"out must hold at least {rows} contiguous floats")
    if native_scan():
        _score_scan.row_distances(
            x.data_ptr(), centers.data_ptr(), labels.data_ptr(), out.data_ptr(), rows, dim, x.stride(0) if rows else dim
        )
        return
    lanes = -(-dim // 16) * 16
    diff = np.zeros((rows, lanes), dtype=np.float32)
    diff[:, :dim] = x.numpy()
    diff[:, :dim] -= centers.numpy()[labels.numpy()]
    diff *= diff
    steps = diff.reshape(rows, lanes // 16, 16)
    acc = np.zeros((rows, 16), dtype=np.float32)
    for t in range(lanes // 16):
        acc += steps[:, t]
    for half in (8, 4, 2, 1):
        acc = acc[:, :half] + acc[:, half : 2 * half]
    out[:rows] = torch.from_numpy(acc[:, 0])


def sum_pass(
    x: torch.Tensor,
    labels: torch.Tensor,
    k: int,
    chunk: int,
    bits: int,
    workers: int,
    threads: int,
    *,
    checked: bool = True,
) -> torch.Tensor:
    """Per-cluster sums and counts of the rows of ``x`` as a (k, dim + 1) int64 tensor (counts last), the sums in
    fixed point (each value rounded to a multiple of 2^-bits, as ``add_rows``), on up to ``threads`` threads in C:
    worker w (of ``workers``) adds its chunks of ``chunk`` rows (w, w + workers, ...), then the workers' sums are
    added. Integer sums: what nearest.py's Python workers give, bit for bit, whatever the chunks, workers or threads.
    ``checked=False`` as for ``best_two``.

    Example:
        >>> sum_pass(torch.tensor([[1.0, 2.0], [3.0, 4.5]]), torch.tensor([1, 1]), 2, 1, 1, 2, 2).tolist()
        [[0, 0, 0], [8, 13, 2]]
    """
    rows, dim = x.shape
    if checked:
        _rows_in_memory(x, "x")
        if labels.dtype != torch.long or not labels.is_contiguous() or len(labels) != rows:
            raise ValueError(f"labels must be {rows} contiguous int64 values")
        if rows and (int(labels.min()) < 0 or int(labels.max()) >= k):
            raise ValueError(f"labels must lie in [0, {k})")
        if chunk < 1 or not 1 <= workers <= 256 or threads < 1:
            raise ValueError(
                f"chunk and threads must be >= 1 and workers in [1, 256], got {chunk}, {threads} and {workers}"
            )
        if _score_scan is None:
            raise RuntimeError("sum_pass needs the compiled curata.clustering._score_scan")
    out = torch.empty((k, dim + 1), dtype=torch.int64)
    _score_scan.sum_pass(
        x.data_ptr(), labels.data_ptr(), out.data_ptr(), rows, dim, k, x.stride(0) if rows else dim, chunk, int(bits),
        workers, threads,
    )  # fmt: skip
    return out
