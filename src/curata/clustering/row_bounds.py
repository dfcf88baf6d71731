"""Hamerly's bounds: which rows of a repeated nearest-centroid pass can keep their label without being scored.

Each row keeps its label and a lower bound on its distance to every other centroid. When the centroids move by
p_j, the triangle inequality lowers that bound by the largest move among the other centroids; a row whose exact
distance to its own (moved) centroid is still below the bound keeps its label, and only the other rows go through
the GEMM. The result is the one a full pass gives, up to float32 ties: the bounds are widened by the rounding bound
of the scores (Hamerly, "Making k-means even faster", SDM 2010, with the exact distance to the own centroid
computed every pass, which also keeps the inertia exact).
"""

from __future__ import annotations

import torch

from curata.clustering.score_scan import exact_sqrt

__all__ = ["RowBounds", "sum_rounding"]


def sum_rounding(terms: int) -> float:
    """A bound on the relative rounding of a float32 sum of ``terms`` products, with a few roundings to spare.

    Example:
        >>> sum_rounding(380) == 384 * 2.0**-24
        True
    """
    return (terms + 4) * 2.0**-24


class RowBounds:
    """Labels and lower bounds of ``rows`` rows, carried from one pass over the same rows to the next.

    Example:
        >>> from curata.clustering.nearest import nearest_centroids
        >>> from curata.store.rows import MemoryShard
        >>> shard = MemoryShard(torch.tensor([[0.0, 0.0], [0.1, 0.0], [9.0, 9.0]]), "l2", 0, 3)
        >>> bounds = RowBounds(3, torch.device("cpu"))
        >>> centers = torch.tensor([[0.0, 0.0], [9.0, 9.0]])
        >>> nearest_centroids(shard, centers, "l2", 1024, False, bounds=bounds)[0].tolist()
        [0, 0, 1]
        >>> labels, d2, _ = nearest_centroids(shard, centers + 0.01, "l2", 1024, False, bounds=bounds)
        >>> labels.tolist(), bounds.scored  # nothing moved far enough to change a label: no row was scored
        ([0, 0, 1], 0)
    """

    def __init__(self, rows: int, device: torch.device) -> None:
        self.labels = torch.zeros(rows, dtype=torch.long, device=device)
        # a lower bound on each row's distance to every centroid but its own; negative: unknown
        self.lower = torch.full((rows,), -1.0, dtype=torch.float32, device=device)
        self.centers: torch.Tensor | None = None
        self.filled = False  # whether a pass has set the labels and bounds (set by nearest_centroids)
        self.relative_slack = 0.0
        self.scored = 0  # rows that went through the GEMM in the last pass (set by nearest_centroids)

    def follow(self, centers: torch.Tensor) -> None:
        """Move the bounds to ``centers`` (called once per pass, before it)."""
        if self.centers is not None and self.centers.shape != centers.shape:
            raise ValueError(f"the bounds are for {tuple(self.centers.shape)} centroids, got {tuple(centers.shape)}")
        if self.filled and self.centers is not None and len(centers) > 1:
            # float64, and a little larger, so that rounding never shrinks a move
            moved = torch.linalg.vector_norm(centers.double() - self.centers.double(), dim=1) * (1 + 1e-6)
            top, where = torch.topk(moved, 2)
            self.lower.sub_(torch.where(self.labels == where[0], top[1], top[0]).float())
        self.centers = centers.clone()
        self.relative_slack = sum_rounding(centers.shape[1])  # of the own distances, sums of dim squares

    def stale_rows(self, s: int, own: torch.Tensor) -> torch.Tensor:
        """Of the rows s, s + 1, ... whose squared distances to their own (moved) centroids are ``own``, those
        (as offsets from s) that must be scored: another centroid may now be nearer."""
        lower = self.lower[s : s + len(own)]
        own = own * (1 + self.relative_slack)
        return torch.nonzero((lower < 0) | (own > lower * lower)).reshape(-1)

    def record(self, s: int, rows: torch.Tensor | None, others: torch.Tensor) -> None:
        """Set the bounds of rows s + ``rows`` (None: the next ``len(others)`` rows) from squared distances that
        no centroid but the row's own is nearer than."""
        bound = exact_sqrt(others)  # as the compiled pass's sqrtf
        if rows is None:
            self.lower[s : s + len(bound)] = bound
        else:
            self.lower[s + rows] = bound
