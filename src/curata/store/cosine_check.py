"""A check before any cosine-based stage: are the rows so nearly parallel that every cosine is close to 1?

Pooled CNN features are all positive: EfficientNet-Lite0's have a median pairwise cosine of 0.988, so cosine
k-means, dedup on raw rows, leakage and cosine selection see every sample as a near-duplicate of every other.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from curata._internal.distributed import is_distributed, rank_and_world
from curata.store.rows import TableRows, as_matrix, shape_of
from curata.store.table import VectorTable

__all__ = ["cosine_spread", "warn_if_degenerate", "DEGENERATE_MEDIAN", "SAMPLE_ROWS"]

DEGENERATE_MEDIAN = 0.9
SAMPLE_ROWS = 1000


def cosine_spread(X: Any, seed: int = 0, sample_rows: int = SAMPLE_ROWS) -> tuple[float, float, int]:
    """(median, 5th percentile, rows sampled) of the cosine similarities between every pair of a seeded sample of
    rows of X (array, tensor, VectorTable). Zero rows are left out.

    Example:
        >>> X = np.random.default_rng(0).normal(size=(300, 8))
        >>> median, low, rows = cosine_spread(X)
        >>> abs(median) < 0.1, rows
        (True, 300)
    """
    rows, _ = shape_of(X)
    picked = np.arange(rows)
    if rows > sample_rows:
        picked = np.sort(np.random.default_rng(seed).choice(rows, sample_rows, replace=False))
    if isinstance(X, (VectorTable, TableRows)):
        table_rows = TableRows(X) if isinstance(X, VectorTable) else X
        block = torch.from_numpy(table_rows.take(picked).astype(np.float32))
    else:
        block = as_matrix(X)[torch.from_numpy(picked)] if len(picked) < rows else as_matrix(X)
    block = block.double()
    norms = torch.linalg.vector_norm(block, dim=1)
    block = block[norms > 0] / norms[norms > 0, None]
    if len(block) < 2:
        return float("nan"), float("nan"), len(block)
    similarity = (block @ block.T).numpy()
    upper = similarity[np.triu_indices(len(block), 1)]
    # torch's median (the lower middle value) and linear 5th percentile, by partial sorts: torch.quantile sorted
    # all ~500k values, a fixed 0.2 s of every cosine fit
    median = float(np.partition(upper, (len(upper) - 1) // 2)[(len(upper) - 1) // 2])
    low = float(np.quantile(upper.astype(np.float32), 0.05))
    return median, low, len(block)


def warn_if_degenerate(X: Any, stage: str, seed: int = 0) -> float:
    """Warn (once per call, on rank 0) when the median pairwise cosine of a seeded sample of rows exceeds 0.9,
    with the numbers and the fix; returns the median.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     _ = warn_if_degenerate(np.random.default_rng(0).random((200, 16)) + 5, "demo")
        >>> "nearly parallel" in str(caught[0].message)
        True
    """
    median, low, rows = cosine_spread(X, seed)
    quiet = is_distributed() and rank_and_world()[0] != 0
    if median > DEGENERATE_MEDIAN and not quiet:
        warnings.warn(
            f"{stage}: the rows are nearly parallel: the median cosine similarity between {rows} sampled rows is "
            f"{median:.3f} (5th percentile {low:.3f}), so under cosine every sample looks like every other. Centre "
            "them first: describe(normalize='center+l2') (CLI --normalize center+l2), or for dedup/contamination "
            "space='whitened' or 'centred'.",
            RuntimeWarning,
            stacklevel=3,
        )
    return median
