import numpy as np
import pytest
import torch

from curata.clustering.nearest import CENTROID_TILE, nearest_centroids
from curata.store.rows import MemoryShard


def _near_ties(k: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Rows exactly between two centroids, and rows nearer to one of them by less than the scores can resolve."""
    rng = np.random.default_rng(0)
    dim = 24
    centers = rng.normal(size=(k, dim)).astype(np.float32) * 5
    centers[0, 0], centers[1] = 0.0, centers[0]
    centers[1, 0] = 2.0  # centroids 0 and 1 differ in the first coordinate only, by exactly 2
    rows, expected = [], []
    for offset, label in ((0.0, 0), (2.0**-10, 1), (-(2.0**-10), 0)):
        block = np.repeat(centers[:1], 300, axis=0)
        block[:, 0] = 1.0 + offset  # midway (an exact tie), or a hair nearer to one side
        block[:, 1:] += rng.normal(scale=0.05, size=(300, dim - 1)).astype(np.float32)
        rows.append(block)
        expected += [label] * 300
    return torch.from_numpy(np.concatenate(rows)), torch.from_numpy(centers), np.array(expected)


@pytest.mark.parametrize("k", [2, 100, CENTROID_TILE + 50])  # one tile, one wide tile, two tiles
def test_near_ties_go_to_the_exactly_nearest_whatever_the_blocking(k):
    x, centers, expected = _near_ties(k)
    shard = MemoryShard(x, "l2", 0, len(x))
    exact = ((x.double()[:, None, :] - centers.double()[None]) ** 2).sum(-1)
    results = [
        nearest_centroids(shard, centers, "l2", chunk, with_sums)[:2]
        for chunk in (7, 256, 4096)
        for with_sums in (False, True)
    ]
    for labels, _ in results:
        assert np.array_equal(labels.numpy(), expected)  # an exact tie goes to the lower index
        assert np.array_equal(labels.numpy(), results[0][0].numpy())
    np.testing.assert_allclose(results[0][1].numpy(), exact.min(dim=1).values.numpy(), rtol=1e-5)
