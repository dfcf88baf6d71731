"""The scan around each score GEMM of a k-means pass: per row, the best two scores and their columns, and the
per-cluster sums of the rows.

A small C extension (``_score_scan``, built with the package where a C compiler is present) does each in one pass
over memory; without it, or with ``CURATA_NATIVE_SCAN=0``, numpy and torch calls give the same results bit for bit
(only comparisons and float32 adds in the same order), several times more slowly: on 65,536 x 10 scores the numpy
argmin alone took 1.1 ms where the whole scan takes a fraction of that.
"""

from __future__ import annotations

import os

import numpy as np
import torch

try:
    from curata.clustering import _score_scan
except ImportError:  # not built: no C compiler where the package was installed
    _score_scan = None

__all__ = ["add_rows", "best_two", "native_scan"]

_ENV = "CURATA_NATIVE_SCAN"


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


def _f32(t: torch.Tensor, name: str) -> None:
    if t.dtype != torch.float32 or t.device.type != "cpu":
        raise ValueError(f"{name} must be a float32 CPU tensor, got {t.dtype} on {t.device}")


def best_two(
    scores: torch.Tensor,
    bias: torch.Tensor | None,
    first: torch.Tensor,
    first_at: torch.Tensor,
    second: torch.Tensor,
    second_at: torch.Tensor,
) -> None:
    """Per row of ``scores`` (rows, cols) plus ``bias`` (cols,): the smallest value and its column into ``first`` and
    ``first_at``, the smallest of the other columns and its column into ``second`` and ``second_at`` (a row of one
    column: inf and column 0). Ties go to the lowest column. ``scores`` may be overwritten (the fallback adds the
    bias in place and hides each row's best).

    Example:
        >>> s = torch.tensor([[3.0, 1.0, 2.0], [0.0, 0.0, 5.0]])
        >>> v1, v2, i1, i2 = torch.empty(2), torch.empty(2), torch.empty(2).long(), torch.empty(2).long()
        >>> best_two(s, torch.tensor([0.0, 0.0, -1.5]), v1, i1, v2, i2)
        >>> v1.tolist(), i1.tolist(), v2.tolist(), i2.tolist()
        ([0.5, 0.0], [2, 0], [1.0, 0.0], [1, 1])
    """
    rows, cols = scores.shape
    for name, t in (("first", first), ("second", second)):
        _f32(t, name)
    _f32(scores, "scores")
    if scores.stride(1) != 1 or min(len(first), len(second), len(first_at), len(second_at)) < rows:
        raise ValueError(f"best_two needs row-major scores and outputs of at least {rows} rows")
    if first_at.dtype != torch.long or second_at.dtype != torch.long:
        raise ValueError("first_at and second_at must be int64 tensors")
    if bias is not None:
        _f32(bias, "bias")
        bias = bias.reshape(-1)
        if len(bias) != cols or bias.stride(0) != 1:
            raise ValueError(f"bias must be {cols} contiguous floats, got shape {tuple(bias.shape)}")
    if native_scan():
        contiguous = all(t.is_contiguous() for t in (first, second, first_at, second_at))
        if contiguous:
            _score_scan.best_two(
                scores.data_ptr(),
                0 if bias is None else bias.data_ptr(),
                first.data_ptr(),
                first_at.data_ptr(),
                second.data_ptr(),
                second_at.data_ptr(),
                rows,
                cols,
                scores.stride(0),
            )
            return
    if bias is not None:
        scores.add_(bias)
    out, positions = scores.numpy(), np.arange(rows)
    at = np.argmin(out, axis=1)
    first[:rows] = torch.from_numpy(out[positions, at])
    first_at[:rows] = torch.from_numpy(at)
    out[positions, at] = np.inf  # hide each row's minimum and take the minimum again
    runner_at = np.argmin(out, axis=1)
    second[:rows] = torch.from_numpy(out[positions, runner_at])
    second_at[:rows] = torch.from_numpy(runner_at)


def add_rows(stage: torch.Tensor, labels: torch.Tensor, x: torch.Tensor) -> None:
    """``stage[labels[i]] += x[i]`` for every row i, in row order (float32, as ``index_add_`` on one thread).

    Example:
        >>> stage = torch.zeros(2, 2)
        >>> add_rows(stage, torch.tensor([1, 1, 0]), torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
        >>> stage.tolist()
        [[5.0, 6.0], [4.0, 6.0]]
    """
    _f32(stage, "stage")
    _f32(x, "x")
    if labels.dtype != torch.long or len(labels) != len(x) or x.shape[1:] != stage.shape[1:]:
        raise ValueError(f"add_rows needs int64 labels for each of {len(x)} rows of {tuple(stage.shape[1:])} floats")
    if native_scan() and stage.is_contiguous() and labels.is_contiguous() and x.stride(1) == 1:
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(stage)):
            raise ValueError(f"labels must lie in [0, {len(stage)})")
        _score_scan.add_rows(
            stage.data_ptr(), labels.data_ptr(), x.data_ptr(), len(x), stage.shape[1], x.stride(0) if len(x) else 0
        )
        return
    stage.index_add_(0, labels, x)
