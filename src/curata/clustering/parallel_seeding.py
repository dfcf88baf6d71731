"""k-means|| seeding (Bahmani et al., "Scalable K-Means++", VLDB 2012) for large k.

Greedy k-means++ makes k picks one after the other, each a pass over the seeding rows against a few candidates: at
k = 10,000 that is 10,000 memory-bound passes. k-means|| instead draws about ``oversample * k`` rows per round, each
row independently with probability proportional to its squared distance to the centres drawn so far, for a few
rounds (each round one compiled nearest-centroid pass against the new draws); the candidates are weighted by the
rows nearest them and reduced to k by greedy k-means++ on the weighted candidates alone, the same on every rank.

The draws follow the global row index (every rank draws the uniforms of all seeding rows from the same generator
and keeps its own), so the centres do not depend on the number of ranks.
"""

from __future__ import annotations

import math

import torch

from curata._internal.distributed import all_gather_rows, all_reduce_sum, is_distributed, rank_and_world
from curata.clustering.nearest import nearest_centroids
from curata.store.rows import MemoryShard

__all__ = ["kmeans_parallel", "squared_distances"]

ROUNDS = 5  # Bahmani et al.: 5 rounds of k / 2 draws each seeded as well as k-means++ (their Table 3)


def kmeans_parallel(
    data: MemoryShard,
    k: int,
    metric: str,
    generator: torch.Generator,
    chunk: int,
    *,
    oversample: float = 0.5,
    rounds: int = ROUNDS,
) -> torch.Tensor | None:
    """k initial centroids of ``data`` (this rank's rows of ``data.total``) by k-means||, or None when the rounds
    drew fewer than k distinct candidates (the caller then seeds another way).

    Example:
        >>> x = torch.cat([torch.randn(500, 2, generator=torch.Generator().manual_seed(0)) + 9 * i for i in range(4)])
        >>> centers = kmeans_parallel(MemoryShard(x, "l2", 0, len(x)), 4, "l2", torch.Generator().manual_seed(0), 256)
        >>> sorted(round(float(c) / 9) for c in centers[:, 0])
        [0, 1, 2, 3]
    """
    x = data.x
    first = int(torch.randint(data.total, (1,), generator=generator))
    candidates = _rows_everywhere(data, torch.tensor([first - data.start]) if _owns(data, first) else None)
    closest = nearest_centroids(data, candidates, metric, chunk, False)[1]
    for _ in range(rounds):
        # every rank draws the uniforms of every row, in row order, and keeps its own
        draws = torch.rand(data.total, generator=generator, dtype=torch.float64)[data.start : data.start + data.rows]
        potential = float(all_reduce_sum(closest.sum(dtype=torch.float64).reshape(1).cpu()).item())
        if potential <= 0:  # every row already is a candidate
            break
        picked = torch.nonzero(draws.to(x.device) * potential < oversample * k * closest.double()).reshape(-1)
        new = _rows_everywhere(data, picked)
        if len(new):
            candidates = torch.cat([candidates, new])
            closest = torch.minimum(closest, nearest_centroids(data, new, metric, chunk, False)[1])
    if len(candidates) < k:
        return None
    labels = nearest_centroids(data, candidates, metric, chunk, False)[0]
    weights = all_reduce_sum(torch.bincount(labels, minlength=len(candidates)).double().cpu())
    return _weighted_plus_plus(candidates, weights.to(candidates.device), k, metric, generator)


def _owns(data: MemoryShard, row: int) -> bool:
    return data.start <= row < data.start + data.rows


def _rows_everywhere(data: MemoryShard, local: torch.Tensor | None) -> torch.Tensor:
    """This rank's rows at ``local`` positions, gathered from every rank in rank order (global row order)."""
    rows = data.x[local.to(data.x.device)] if local is not None else data.x[:0]
    if not is_distributed():
        return rows.clone()
    rank, world = rank_and_world()
    counts = torch.zeros(world, dtype=torch.float64)
    counts[rank] = len(rows)
    counts = all_reduce_sum(counts)
    return all_gather_rows(rows, [int(c) for c in counts.tolist()])


def _weighted_plus_plus(
    candidates: torch.Tensor, weights: torch.Tensor, k: int, metric: str, generator: torch.Generator
) -> torch.Tensor:
    """Greedy k-means++ over weighted points (the same on every rank): each pick tries 2 + ln k candidates drawn in
    proportion to weight x squared distance and keeps the one that lowers the weighted potential most."""
    trials = 2 + int(math.log(k))
    shard = MemoryShard(candidates, metric, 0, len(candidates), prepared=True)
    chosen = torch.empty((k, candidates.shape[1]), dtype=candidates.dtype, device=candidates.device)
    cumulative = torch.cumsum(weights, dim=0)
    draw = torch.rand(1, generator=generator, dtype=torch.float64).to(cumulative.device) * cumulative[-1]
    first = torch.searchsorted(cumulative, draw, right=True)
    chosen[0] = candidates[first.clamp_(max=len(candidates) - 1)]
    closest = squared_distances(shard, chosen[:1], metric)[:, 0].double()
    for i in range(1, k):
        potential = weights * closest
        cumulative = torch.cumsum(potential, dim=0)
        total = float(cumulative[-1])
        if total <= 0:  # fewer distinct candidates than k: the farthest first, then repeats
            chosen[i:] = candidates[torch.argsort(closest, descending=True, stable=True)[: k - i]]
            break
        draws = torch.rand(trials, generator=generator, dtype=torch.float64) * total
        picks = torch.searchsorted(cumulative, draws.to(cumulative.device), right=True).clamp_(max=len(candidates) - 1)
        to_picks = squared_distances(shard, candidates[picks], metric).double()
        after = (weights.unsqueeze(1) * torch.minimum(closest.unsqueeze(1), to_picks)).sum(dim=0)
        best = int(torch.argmin(after))
        chosen[i] = candidates[picks[best]]
        closest = torch.minimum(closest, to_picks[:, best])
    return chosen


def squared_distances(shard: MemoryShard, centers: torch.Tensor, metric: str) -> torch.Tensor:
    """(rows, len(centers)) squared distances from the shard's rows (cosine: between unit vectors), clamped at 0:
    one GEMM, for a few centres at a time.

    Example:
        >>> squared_distances(MemoryShard(torch.tensor([[0.0, 3.0]]), "l2", 0, 1), torch.tensor([[4.0, 0.0]]), "l2")
        tensor([[25.]])
    """
    if metric == "cosine":
        # the product first: `2.0 * shard.x @ centers.T` scaled all of X, a fresh (rows, dim) copy per call (a 14,904 x
        # 1280 k-means++ at k = 500 spent 13 s of system time mapping them); the same values, as scaling by 2 is exact
        return (shard.x @ centers.T).mul_(-2.0).add_(2.0).clamp_(min=0.0)
    assert shard.x_sq is not None
    scores = torch.addmm((centers * centers).sum(dim=1).unsqueeze(0), shard.x, centers.T, alpha=-2.0)
    return scores.add_(shard.x_sq.unsqueeze(1)).clamp_(min=0.0)
