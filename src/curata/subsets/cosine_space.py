"""The space near-duplicates are compared in: whitened, mean-centred or raw vectors, then unit length.

Pooled CNN features all point one way (a median pairwise cosine of 0.99 on Fashion-MNIST), so raw cosines find
"duplicates" everywhere; centring removes the shared direction; whitening also evens out the few directions in which
images of one class vary together, which is what separates a re-encoded copy from a similar but distinct image
(docs/dedup.md: on 3,300 Fashion-MNIST rows, precision and recall >= 0.95 with no distinct image removed, where no
threshold on centred features reached both). Whitening needs rows enough to estimate a dim x dim covariance: with
fewer than 1.5 per dimension it found fewer copies than centring (issue 30), so "auto", the default of dedup,
dedup_curve, contamination and leakage, whitens only from there (``resolve_space``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from curata._internal.checks import first_nonfinite_row
from curata.store.cosine_check import warn_if_degenerate
from curata.store.rows import as_matrix, shape_of

__all__ = [
    "AUTO",
    "SPACES",
    "WHITENED_ROWS_PER_DIM",
    "CosineSpace",
    "check_space",
    "default_margin",
    "default_threshold",
    "fit_space",
    "fit_space_on",
    "resolve_space",
    "sample_positions",
]

SPACES = ("whitened", "centred", "raw")
AUTO = "auto"  # whitened when there are rows enough to estimate the covariance, centred otherwise
_DEFAULT_THRESHOLDS = {"whitened": 0.6, "centred": 0.9, "raw": 0.95}
_DEFAULT_MARGINS = {"whitened": 0.35, "centred": 0.0, "raw": 0.0}  # measured in whitened space only
SHRINKAGE = 0.1  # each direction's variance gets 0.1 x the mean variance added, so noise directions stay small
SAMPLE_ROWS = 65536  # rows the covariance is estimated from; beyond them it moves by less than the shrinkage
# "auto" whitens from this many rows per dimension: below it centred cosines find more copies (docs/dedup.md,
# bench/dedup_space.py: on 1280-d features whitened recall reached centred's at 1.5 rows per dimension, with higher
# precision; at 0.26 it found 4 % of the faint copies centred cosines found 77 % of)
WHITENED_ROWS_PER_DIM = 1.5


def resolve_space(space: object, rows: int, dim: int) -> str:
    """The space cosines are taken in for ``space`` on ``rows`` rows of ``dim`` dimensions: "auto" is "whitened"
    when the covariance sample (all rows, up to SAMPLE_ROWS) holds at least WHITENED_ROWS_PER_DIM (1.5) rows per
    dimension, "centred" otherwise; "whitened", "centred" and "raw" stay as they are.

    Example:
        >>> resolve_space("auto", 460, 1280), resolve_space("auto", 1920, 1280), resolve_space("raw", 10, 1280)
        ('centred', 'whitened', 'raw')
    """
    if space != AUTO:
        return check_space(space)
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 0:
        raise ValueError(f"rows must be a count >= 0, got {rows!r}")
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 0:
        raise ValueError(f"dim must be a count >= 0, got {dim!r}")
    return "whitened" if min(rows, SAMPLE_ROWS) >= WHITENED_ROWS_PER_DIM * dim else "centred"


def default_threshold(space: str) -> float:
    """The cosine from which two rows are near-duplicates in ``space``, measured in docs/dedup.md.

    Example:
        >>> default_threshold("whitened"), default_threshold("raw")
        (0.6, 0.95)
    """
    check_space(space)
    return _DEFAULT_THRESHOLDS[space]


def default_margin(space: str) -> float:
    """How far above a row's 11th-nearest neighbour a duplicate's cosine must be in ``space`` (0: no such rule),
    measured in docs/dedup.md.

    Example:
        >>> default_margin("whitened"), default_margin("centred")
        (0.35, 0.0)
    """
    check_space(space)
    return _DEFAULT_MARGINS[space]


def check_space(space: object, auto: bool = False) -> str:
    """``space`` when it is one of SPACES (or "auto", with ``auto``); a ValueError naming it otherwise.

    Example:
        >>> check_space("centred"), check_space("auto", auto=True)
        ('centred', 'auto')
    """
    allowed = (AUTO, *SPACES) if auto else SPACES
    if not isinstance(space, str) or space not in allowed:
        raise ValueError(f"space must be one of {allowed}, got {space!r}")
    return space


@dataclass(frozen=True)
class CosineSpace:
    """A fitted map from rows to unit vectors whose dot products are the cosines compared.

    A row that maps to zero (a row equal to the mean) gets an extra coordinate of 1, so rows equal to each other
    stay duplicates of each other and of nothing else.
    """

    mean: torch.Tensor | None
    projection: torch.Tensor | None

    def apply(self, block: torch.Tensor) -> torch.Tensor:
        """(rows, dim) -> (rows, dim + 1) float32 unit rows.

        Example:
            >>> space = CosineSpace(mean=torch.tensor([1.0, 1.0]), projection=None)
            >>> space.apply(torch.tensor([[2.0, 1.0], [1.0, 1.0]])).tolist()
            [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
        """
        x = block.to(torch.float32)
        if self.mean is not None:
            x = x - self.mean
        if self.projection is not None:
            x = x @ self.projection
        norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        zero = norms == 0
        return torch.cat([x / torch.where(zero, 1.0, norms), zero.to(torch.float32)], dim=1)


def fit_space(space: str, mean: torch.Tensor | None, sample: torch.Tensor | None) -> CosineSpace:
    """The map for ``space`` from the mean row (float64) and a sample of rows (for "whitened").

    Whitening: x -> (x - mean) V diag(1 / sqrt(lambda + SHRINKAGE x mean(lambda))), with V, lambda the eigenvectors
    and eigenvalues of the sample's covariance.

    Example:
        >>> rows = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 20.0], [2.0, 20.0]])
        >>> mean = rows.double().mean(dim=0)
        >>> [round(abs(v), 2) for v in fit_space("centred", mean, rows).apply(rows)[0, :2].tolist()]
        [0.1, 1.0]
        >>> [round(abs(v), 2) for v in fit_space("whitened", mean, rows).apply(rows)[0, :2].tolist()]  # narrow axis up
        [0.38, 0.92]
    """
    check_space(space)
    if space != "whitened" or sample is None or mean is None:
        return _from_moments(space, mean, None, None, 0)
    rows = sample.double()
    return _from_moments(space, mean, rows.sum(dim=0), rows.T @ rows, len(rows))


def _from_moments(
    space: str, mean: torch.Tensor | None, total: torch.Tensor | None, products: torch.Tensor | None, count: int
) -> CosineSpace:
    """The map from the mean row and the sample's sum and sum of outer products (float64), without the sample."""
    if space == "raw" or mean is None:
        return CosineSpace(None, None)
    if space == "centred" or total is None or products is None or count < 2:
        return CosineSpace(mean.float(), None)
    sample_mean = total / count
    # the sample's spread around the mean of all rows: E[x x^T] - s m^T - m s^T + m m^T
    covariance = products / count - torch.outer(sample_mean, mean) - torch.outer(mean, sample_mean)
    covariance += torch.outer(mean, mean)
    values, vectors = torch.linalg.eigh((covariance + covariance.T) / 2)
    values = values.clamp(min=0)
    if float(values.mean()) == 0:  # every sampled row is the mean: nothing to even out
        return CosineSpace(mean.float(), None)
    scale = torch.rsqrt(values + SHRINKAGE * values.mean())
    return CosineSpace(mean.float(), (vectors * scale).float())


def sample_positions(rows: int, seed: int) -> np.ndarray:
    """Sorted row positions of the seeded covariance sample (all rows up to SAMPLE_ROWS)."""
    if rows <= SAMPLE_ROWS:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, SAMPLE_ROWS, replace=False))


def fit_space_on(sources: Sequence[tuple[str, Any]], space: str, seed: int, chunk_rows: int) -> CosineSpace:
    """The map for ``space`` fitted on the rows of every (name, rows) source together, read ``chunk_rows`` at a
    time in one pass (arrays, tensors or VectorTables streamed from disk): each row is checked finite (a bad one is
    named by its source and row), the mean summed in float64 and the seeded covariance sample taken.

    Example:
        >>> fit_space_on([("X", np.eye(3))], "centred", seed=0, chunk_rows=2).mean.tolist()
        [0.3333333432674408, 0.3333333432674408, 0.3333333432674408]
    """
    check_space(space)
    shapes = [shape_of(data) for _, data in sources]
    total_rows = sum(rows for rows, _ in shapes)
    total = torch.zeros(shapes[0][1] if shapes else 0, dtype=torch.float64)
    wanted = sample_positions(total_rows, seed)  # positions over the sources one after the other
    dim = shapes[0][1] if shapes else 0
    sample_total = torch.zeros(dim, dtype=torch.float64)
    products = torch.zeros(dim, dim, dtype=torch.float64) if space == "whitened" else None
    offset = 0
    for (name, data), (rows, _) in zip(sources, shapes):
        for start in range(0, rows, chunk_rows):
            block = as_matrix(data, start, min(start + chunk_rows, rows))
            bad = first_nonfinite_row(block)
            if bad is not None:
                raise ValueError(f"{name} holds NaN or inf (row {start + bad})")
            total += block.double().sum(dim=0)
            low, high = np.searchsorted(wanted, [offset + start, offset + start + len(block)])
            if products is not None and high > low:  # the sample's moments, not the sample: O(dim^2) memory
                picked = block[torch.from_numpy(wanted[low:high] - offset - start)].double()
                sample_total += picked.sum(dim=0)
                products += picked.T @ picked
        offset += rows
    mean = total / total_rows if total_rows else None
    if space == "raw" and sources:
        warn_if_degenerate(sources[0][1], "cosine on raw rows (space='raw')", seed)
    return _from_moments(space, mean, sample_total, products, len(wanted))
