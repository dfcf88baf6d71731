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


def test_a_pass_under_serial_main_thread_still_uses_every_core(monkeypatch):
    """Torch's own ops run on one thread inside the block, but the passes keep dealing chunks to as many workers as
    there were threads, and give the same answer as one worker does."""
    import curata.clustering.nearest as nearest

    monkeypatch.setattr(nearest, "_SMALL_PASS", 0)
    torch.set_num_threads(2)
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((5000, 16)).astype(np.float32))
    centers = x[:40].clone()
    shard = MemoryShard(x, "l2", 0, len(x))
    seen = []
    real = nearest._Worker.score

    def score(self, s, block, block_sq):
        seen.append(id(self))
        real(self, s, block, block_sq)

    monkeypatch.setattr(nearest._Worker, "score", score)
    with nearest.serial_main_thread("cpu"):
        assert torch.get_num_threads() == 1
        labels, d2, sums = nearest_centroids(shard, centers, "l2", 512, True)
    assert torch.get_num_threads() == 2
    assert len(set(seen)) == 2  # two workers
    monkeypatch.setattr(nearest, "_threads_for", lambda *args: 1)
    alone = nearest_centroids(shard, centers, "l2", 512, True)
    assert torch.equal(labels, alone[0]) and torch.equal(d2, alone[1])
    assert sums is not None and alone[2] is not None
    assert torch.allclose(sums, alone[2], rtol=1e-6)  # float32 partial sums differ with the workers' shares
