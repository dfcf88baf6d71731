"""ZCore scores (Griffin et al., "Zero-Shot Coreset Selection via Iterative Subspace Sampling", WACV 2026).

Each of ``samples`` iterations draws ``sample_dims`` random dimensions and a random point in them (per dimension,
triangular between the rows' minimum, median and maximum), gives +1 to the row nearest that point (coverage, L1
distance in the subspace), then penalises the ``neighbors`` rows nearest that row in the same subspace by weights
proportional to 1 / distance^``exponent`` summing to 1 (redundancy; a neighbour at distance 0 takes the whole -1).
Scores start from a seeded uniform(0, 1) draw and are scaled to [0, 1]; the highest scores form the coreset.
Defaults follow the paper's code (2 dimensions, 1000 neighbours, exponent 4); the sample count defaults to
min(1,000,000, 10 * rows). Iterations run in batches on torch, so one batch costs O(batch * rows) memory.
"""

from __future__ import annotations

import numpy as np
import torch

from curata._internal.checks import check_int

__all__ = ["zcore_scores"]

_BATCH_ELEMENTS = 1 << 22


def _triangular(lo: np.ndarray, mode: np.ndarray, hi: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse CDF of the triangular distribution; unlike numpy's it accepts lo == hi (a constant dimension)."""
    width = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        split = np.where(width > 0, (mode - lo) / width, 0.0)
    left = lo + np.sqrt(u * width * (mode - lo))
    right = hi - np.sqrt((1 - u) * width * (hi - mode))
    return np.where(u < split, left, right)


def zcore_scores(
    x: torch.Tensor,
    *,
    samples: int | None = None,
    sample_dims: int = 2,
    neighbors: int = 1000,
    exponent: float = 4.0,
    rng: np.random.Generator,
) -> np.ndarray:
    """One ZCore score per row of ``x`` (float64 in [0, 1], higher is kept first).

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [0.0, 0.01], [0.0, 0.02], [3.0, 3.0]])  # the middle near-copy is
        >>> int(np.argmin(zcore_scores(x, samples=2000, neighbors=2, rng=np.random.default_rng(0))))  # redundant
        1
    """
    rows, dim = x.shape
    check_int(sample_dims, "sample_dims", minimum=1)
    check_int(neighbors, "neighbors", minimum=1)
    check_int(samples, "samples", minimum=1, allow_none=True)
    if sample_dims > dim:
        raise ValueError(f"sample_dims must be <= the vectors' dimension ({dim}), got {sample_dims}")
    if isinstance(exponent, bool) or not isinstance(exponent, (int, float)) or not exponent > 0:
        raise ValueError(f"exponent must be a number > 0, got {exponent!r}")
    total = min(1_000_000, 10 * rows) if samples is None else samples
    scores = rng.random(rows)
    if rows == 1:
        return np.ones(1)
    columns = x.float().T.contiguous()  # (dim, rows): a subspace is a gather of rows of this
    lo, mode, hi = (np.array([f(column.double().numpy()) for column in columns]) for f in (np.min, np.median, np.max))
    k = min(neighbors, rows - 1)
    batch = max(1, _BATCH_ELEMENTS // (rows * sample_dims))
    delta = torch.zeros(rows, dtype=torch.float64)
    # Buffers reused by every batch: fresh ones would be mapped and zeroed by the OS each time.
    sub_buffer = torch.empty((batch * sample_dims, rows))
    diff_buffer = torch.empty((batch, sample_dims, rows))
    distance_buffer = torch.empty((batch, rows))
    for start in range(0, total, batch):
        size = min(batch, total - start)
        dims = np.argsort(rng.random((size, dim)), axis=1)[:, :sample_dims]
        point = _triangular(lo[dims], mode[dims], hi[dims], rng.random(dims.shape))
        sub = torch.index_select(columns, 0, torch.from_numpy(dims.reshape(-1)), out=sub_buffer[: size * sample_dims])
        sub = sub.view(size, sample_dims, rows)
        diff, distance = diff_buffer[:size], distance_buffer[:size]
        torch.sub(sub, torch.from_numpy(point).float()[:, :, None], out=diff).abs_()
        torch.sum(diff, dim=1, out=distance)
        covering = torch.argmin(distance, dim=1)
        delta.index_add_(0, covering, torch.ones(size, dtype=torch.float64))
        centre = sub.gather(2, covering[:, None, None].expand(size, sample_dims, 1))
        torch.sub(sub, centre, out=diff).abs_()
        torch.sum(diff, dim=1, out=distance)
        distance[torch.arange(size), covering] = float("inf")
        near, who = torch.topk(distance, k, dim=1, largest=False)
        near = near.double()
        exact = near[:, 0] == 0
        weight = (near[:, :1] / near).pow_(exponent)  # 1 / d^exponent up to a factor, without overflow
        weight[exact] = 0.0
        weight[exact, 0] = 1.0
        weight /= weight.sum(dim=1, keepdim=True)
        delta.index_add_(0, who.reshape(-1), -weight.reshape(-1))
    scores += delta.numpy()
    low, high = scores.min(), scores.max()
    return (scores - low) / (high - low) if high > low else np.zeros(rows)
