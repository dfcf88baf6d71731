import numpy as np
import pytest
import torch

from curata.clustering import score_scan
from curata.clustering.cpu_gemm import panel_gemm_preferred
from curata.clustering.nearest import CENTROID_TILE, nearest_centroids, serial_main_thread
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

    monkeypatch.setenv("CURATA_NATIVE_SCAN", "0")  # the Python workers (the compiled pass has its own threads)
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
    assert torch.equal(sums, alone[2])  # fixed-point sums: the workers' shares do not matter


needs_native_pass = pytest.mark.skipif(
    score_scan._score_scan is None or not panel_gemm_preferred(),
    reason="the compiled pass needs the C extension and a CPU with AVX-512",
)


def _pass(shard, centers, chunk, with_sums, threads):
    torch.set_num_threads(threads)
    with serial_main_thread("cpu"):
        return nearest_centroids(shard, centers, shard.metric, chunk, with_sums)


@needs_native_pass
@pytest.mark.parametrize("k", [2, 100, CENTROID_TILE + 50])
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_the_compiled_pass_gives_what_the_python_workers_give(monkeypatch, k, metric):
    """Labels, distances and sums bit for bit, near-ties included, whatever the chunks and threads."""
    ties, centers, _ = _near_ties(k)
    spread = torch.from_numpy(np.random.default_rng(k).normal(size=(1500, ties.shape[1])).astype(np.float32) * 5)
    x = torch.cat([ties, spread])
    if metric == "cosine":
        centers = torch.nn.functional.normalize(centers, dim=1)
    shard = MemoryShard(x, metric, 0, len(x))
    before = torch.get_num_threads()
    try:
        for threads in (1, 2, 3):
            for chunk in (64, 1000):
                for with_sums in (False, True):
                    monkeypatch.delenv("CURATA_NATIVE_SCAN", raising=False)
                    native = _pass(shard, centers, chunk, with_sums, threads)
                    monkeypatch.setenv("CURATA_NATIVE_SCAN", "0")
                    python = _pass(shard, centers, chunk, with_sums, threads)
                    for a, b in zip(native, python, strict=True):
                        assert (a is None and b is None) or torch.equal(a, b), (threads, chunk, with_sums)
    finally:
        torch.set_num_threads(before)
    if metric == "l2":  # the exact ties went to the lower column, the others to the exactly nearer centroid
        assert np.array_equal(native[0][: len(ties)].numpy(), _near_ties(k)[2])


def _child_pass(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    torch.set_num_threads(2)
    with serial_main_thread("cpu"):  # torch's OpenMP hangs in a forked child whose parent ran parallel ops
        shard = MemoryShard(torch.from_numpy(x), "l2", 0, len(x))
        return nearest_centroids(shard, torch.from_numpy(centers), "l2", 256, True)[0].numpy()


@needs_native_pass
def test_a_forked_child_runs_the_compiled_pass():
    """The child of a fork has none of the parent's helper threads: its passes still run, and give the parent's
    labels."""
    import multiprocessing
    import warnings

    rng = np.random.default_rng(5)
    x, centers = rng.normal(size=(4000, 16)).astype(np.float32), rng.normal(size=(50, 16)).astype(np.float32)
    before = torch.get_num_threads()
    try:
        mine = _child_pass(x, centers)  # the parent's helpers are running
        with warnings.catch_warnings(), multiprocessing.get_context("fork").Pool(1) as pool:
            warnings.simplefilter("ignore")  # lance warns of forks, and this process holds no dataset
            theirs = pool.apply_async(_child_pass, (x, centers)).get(timeout=120)
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(mine, theirs)


@needs_native_pass
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_the_compiled_bounded_pass_gives_what_the_python_workers_give(monkeypatch, metric):
    """Over passes that move the centroids a little, then a lot: the same labels, distances, sums, bounds and count
    of rows scored, with and without the compiled pass."""
    from curata.clustering.row_bounds import RowBounds

    rng = np.random.default_rng(7)
    x = torch.from_numpy((rng.normal(size=(3000, 20)) + rng.integers(0, 6, (3000, 1)) * 3).astype(np.float32))
    start = x[rng.choice(3000, 300, replace=False)].clone()
    moves = [start + 0.01 * k * torch.from_numpy(rng.normal(size=start.shape).astype(np.float32)) for k in range(4)]
    moves.append(moves[-1] + 2.0)
    if metric == "cosine":
        moves = [torch.nn.functional.normalize(c, dim=1) for c in moves]
    shard = MemoryShard(x, metric, 0, len(x))
    runs = {}
    before = torch.get_num_threads()
    try:
        for flag in ("1", "0"):
            monkeypatch.setenv("CURATA_NATIVE_SCAN", flag)
            bounds, seen = RowBounds(len(x), torch.device("cpu")), []
            for i, centers in enumerate(moves):
                labels, d2, sums = _pass(shard, centers, 256, i % 2 == 0, 2)
                seen += [labels.clone(), d2.clone(), sums, bounds.lower.clone(), bounds.scored]
                labels2, *_ = nearest_centroids(shard, centers, metric, 256, False, bounds=bounds)
                seen += [labels2.clone(), bounds.lower.clone(), bounds.scored]
            runs[flag] = seen
    finally:
        torch.set_num_threads(before)
    for a, b in zip(runs["1"], runs["0"], strict=True):
        assert (a is None and b is None) or (torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b)
    assert runs["1"][7] == len(x) and 0 < runs["1"][15] < len(x)  # then the second bounded pass scored a few


def test_more_workers_than_the_compiled_team_takes(monkeypatch):
    """A machine with more cores than the C team's 256 threads runs its passes on the Python workers instead."""
    import curata.clustering.nearest as nearest

    x = torch.from_numpy(np.random.default_rng(2).standard_normal((20000, 8)).astype(np.float32))
    shard = MemoryShard(x, "l2", 0, len(x))
    centers = x[:50].clone()
    monkeypatch.setattr(nearest, "_threads_for", lambda *args: 300)
    labels, d2, sums = nearest_centroids(shard, centers, "l2", 64, True)
    exact = torch.cdist(x.double(), centers.double()).argmin(dim=1)
    assert torch.equal(labels, exact) and sums is not None and int(sums[:, -1].sum()) == len(x)


def test_sums_off_cpu_need_no_deterministic_mode(monkeypatch):
    """The per-cluster sums off CPU once switched torch.use_deterministic_algorithms on for the whole process while a
    pass ran; fixed-point sums are integers, the same in any order of the adds, with nothing switched."""
    from curata.clustering.fixed_point import to_fixed
    from curata.clustering.nearest import stage_rows

    def switched(*args, **kwargs):
        raise AssertionError("torch.use_deterministic_algorithms was switched")

    monkeypatch.setattr(torch, "use_deterministic_algorithms", switched)
    rng = np.random.default_rng(0)
    block = torch.from_numpy(rng.normal(size=(500, 7)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 9, size=500))
    stage = torch.zeros(9, 7, dtype=torch.int64)
    stage_rows(stage, labels, block, 30, native=False)
    backwards = torch.zeros(9, 7, dtype=torch.int64)
    for i in reversed(range(500)):  # the other order, one row at a time
        backwards[labels[i]] += to_fixed(block[i], 30)
    assert torch.equal(stage, backwards) and not torch.are_deterministic_algorithms_enabled()


def test_nested_and_overlapping_fp32_blocks_put_the_setting_back_once():
    from curata.clustering.nearest import full_fp32_matmuls

    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        outer = full_fp32_matmuls("cpu")
        inner = full_fp32_matmuls("cpu")
        with pytest.warns(RuntimeWarning, match="mkldnn matmul precision 'bf16' is set aside"):
            outer.__enter__()
            inner.__enter__()
        outer.__exit__(None, None, None)  # another thread's fit ending first: the inner one still runs in fp32
        assert torch.get_float32_matmul_precision() in ("highest", "medium")
        if hasattr(torch.backends.mkldnn, "matmul"):
            assert torch.backends.mkldnn.matmul.fp32_precision == "ieee"
        inner.__exit__(None, None, None)
        assert torch.get_float32_matmul_precision() == "medium"
        if hasattr(torch.backends.mkldnn, "matmul"):
            assert torch.backends.mkldnn.matmul.fp32_precision == "bf16"
    finally:
        torch.set_float32_matmul_precision(before)


def test_an_inherited_setting_is_inherited_again():
    if not hasattr(torch._C, "_get_fp32_precision_getter"):
        pytest.skip("torch < 2.9 has one legacy switch")
    from curata.clustering.nearest import full_fp32_matmuls

    get, set_ = torch._C._get_fp32_precision_getter, torch._C._set_fp32_precision_setter
    for backend in ("cuda", "mkldnn"):
        set_(backend, "matmul", "none")  # (a legacy setting writes them)
    torch.backends.fp32_precision = "tf32"  # every backend inherits it
    try:
        with pytest.warns(RuntimeWarning, match="set aside"), full_fp32_matmuls("cuda"):
            assert get("cuda", "matmul") == "ieee" and get("mkldnn", "matmul") == "ieee"
        torch.backends.fp32_precision = "ieee"
        assert get("cuda", "matmul") == "ieee" and get("mkldnn", "matmul") == "ieee"  # still inheriting
    finally:
        torch.backends.fp32_precision = "none"
