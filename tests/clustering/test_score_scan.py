"""The compiled scan gives what its numpy/torch fallback gives, bit for bit, and so does a whole fit."""

import numpy as np
import pytest
import torch

from curata import KMeans
from curata.clustering import score_scan
from curata.clustering.kmeans import assign
from curata.clustering.score_scan import (
    add_rows,
    best_two,
    native_scan,
    pack_panels,
    row_distances,
    scan_pass,
    settle_rows,
    sum_pass,
)

needs_native = pytest.mark.skipif(score_scan._score_scan is None, reason="the C extension is not built")


def _both(monkeypatch: pytest.MonkeyPatch, fn):
    monkeypatch.setenv("CURATA_NATIVE_SCAN", "1")
    native = fn()
    monkeypatch.setenv("CURATA_NATIVE_SCAN", "0")
    assert not native_scan()
    fallback = fn()
    monkeypatch.delenv("CURATA_NATIVE_SCAN")
    return native, fallback


def _equal(a, b) -> None:
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y


@needs_native
@pytest.mark.parametrize("cols", [1, 2, 7, 8, 15, 16, 17, 31, 33, 100, 257, 2048])
def test_best_two_matches_numpy(monkeypatch, cols):
    rng = np.random.default_rng(cols)
    scores = np.round(rng.standard_normal((300, cols)), 1).astype(np.float32)  # many ties
    scores[rng.random(scores.shape) < 0.1] = np.inf
    scores[:4] = np.inf  # rows of inf only
    scores[4:8] = 3.0  # rows of one value
    bias = torch.from_numpy(np.round(rng.standard_normal(cols), 1).astype(np.float32))
    for b in (None, bias):

        def run(b=b):
            out = [torch.empty(300), torch.empty(300, dtype=torch.long), torch.empty(300)]
            out.append(torch.empty(300, dtype=torch.long))
            best_two(torch.from_numpy(scores.copy()), b, *out)
            return out

        native, fallback = _both(monkeypatch, run)
        _equal(native, fallback)
    # and what numpy says, directly (the last run had the bias)
    first = np.argmin(scores + bias.numpy(), axis=1)
    assert torch.equal(native[1], torch.from_numpy(first))


@needs_native
@pytest.mark.parametrize("dim", [1, 5, 64])
@pytest.mark.parametrize("bits", [-3, 0, 1, 40])
def test_add_rows_matches_index_add(monkeypatch, dim, bits):
    """C's rounding to fixed point (8 lanes at a time, or scalar rint) is torch's, halves to even included."""
    x = torch.randn(3000, dim, generator=torch.Generator().manual_seed(dim)) * 50
    x[:40] = torch.arange(40).float().unsqueeze(1) / 2 - 10  # halves and odd multiples of 2^-1: rounding ties
    labels = torch.randint(0, 17, (3000,), generator=torch.Generator().manual_seed(1))
    start = torch.randint(-1000, 1000, (17, dim), generator=torch.Generator().manual_seed(2))

    def run():
        stage = start.clone()
        add_rows(stage, labels, x, bits)
        return [stage]

    _equal(*_both(monkeypatch, run))
    with score_scan.limited_simd("none"):  # the scalar kernel of CPUs without AVX-512
        _equal(*_both(monkeypatch, run))


@needs_native
@pytest.mark.parametrize("cosine", [False, True])
def test_settle_rows_matches_torch(monkeypatch, cosine):
    g = torch.Generator().manual_seed(3)
    first = torch.randn(5000, generator=g) * 10
    second = first + torch.rand(5000, generator=g) * torch.logspace(-8, 0, 5000)  # near-ties and clear wins
    block_sq = None if cosine else torch.rand(5000, generator=g) * 100 + first.abs()

    def run():
        best, bound, close = torch.empty(5000), torch.empty(5000), torch.empty(5000, dtype=torch.long)
        m = settle_rows(first, second, block_sq, 3.5, 260 * 2.0**-24, best, bound, close)
        return [m, best, bound, close[:m]]

    native, fallback = _both(monkeypatch, run)
    assert 0 < native[0] < 5000
    _equal(native, fallback)


@needs_native
@pytest.mark.parametrize(
    ("k", "metric", "bounds"), [(10, "l2", False), (100, "cosine", False), (300, "l2", True), (2500, "l2", "auto")]
)
def test_fit_is_the_same_with_and_without_the_extension(monkeypatch, k, metric, bounds):
    rng = np.random.default_rng(k)
    X = (rng.standard_normal((6000, 24)) + rng.integers(0, 5, (6000, 1))).astype(np.float32)

    def run():
        km = KMeans(k, n_iter=6, metric=metric, bounds=bounds, init="random", seed=1).fit(X)
        labels, d2 = assign(X, km.cluster_centers_, metric=metric)
        return [torch.from_numpy(a) for a in (km.labels_, km.cluster_centers_, km.distances_, labels, d2)]

    _equal(*_both(monkeypatch, run))


def test_bad_flag_is_refused(monkeypatch):
    monkeypatch.setenv("CURATA_NATIVE_SCAN", "maybe")
    if score_scan._score_scan is not None:
        with pytest.raises(ValueError, match="CURATA_NATIVE_SCAN"):
            native_scan()


def test_bad_buffers_are_refused():
    scores = torch.zeros(4, 3)
    ok = [torch.empty(4), torch.empty(4, dtype=torch.long), torch.empty(4), torch.empty(4, dtype=torch.long)]
    with pytest.raises(ValueError, match="first_at"):
        best_two(scores, None, ok[0], ok[0], ok[2], ok[3])
    with pytest.raises(ValueError, match="bias"):
        best_two(scores, torch.zeros(2), *ok)
    with pytest.raises(ValueError, match="scores"):
        best_two(scores.double(), None, *ok)
    with pytest.raises(ValueError, match="labels"):
        add_rows(torch.zeros(2, 3, dtype=torch.int64), torch.tensor([0, 2]), torch.zeros(2, 3), 0)
    with pytest.raises(ValueError, match="int64"):
        add_rows(torch.zeros(2, 3), torch.tensor([0, 1]), torch.zeros(2, 3), 0)
    with pytest.raises(ValueError, match="close"):
        settle_rows(ok[0], ok[2], None, 1.0, 1e-6, None, None, torch.empty(2, dtype=torch.long))


needs_avx512 = pytest.mark.skipif(
    score_scan._score_scan is None or not score_scan._score_scan.avx512(), reason="the pass needs AVX-512"
)


def _scan_inputs(rows: int, dim: int, k: int):
    g = torch.Generator().manual_seed(rows + k)
    x, c = torch.randn(rows, dim, generator=g), torch.randn(k, dim, generator=g)
    return x, (x * x).sum(1), pack_panels((-2 * c.T).contiguous()), (c * c).sum(1)


@needs_avx512
@pytest.mark.parametrize("k", [1, 7, 100, 3000])
def test_scan_pass_does_not_depend_on_the_threads(k):
    x, x_sq, panels, bias = _scan_inputs(2001, 12, k)
    centers = (panels.permute(1, 0, 2).reshape(12, -1)[:, :k].T / -2).contiguous()
    results = []
    for threads in (1, 2, 5):
        for exact in (False, True):
            out = [torch.empty(2001, dtype=torch.long), torch.empty(2001)]
            m, _ = scan_pass(x, x_sq, panels, bias, centers, *out, threads, 10.0, 2.0**-12, exact=exact)  # wide slack
            results.append(out + [m])
    for other in results[2::2]:
        _equal(results[0], other)
    for other in results[3::2]:
        _equal(results[1], other)
    labels, best, m = results[1]
    exact = torch.cdist(x.double(), centers.double()).square()
    assert torch.equal(labels, exact.argmin(dim=1))  # near-ties settled by the sums of squares
    assert m > 0 or k == 1
    expected = torch.empty(2001)
    row_distances(x, centers, labels, expected)
    assert torch.equal(best, expected)
    torch.testing.assert_close(results[0][1].double(), exact.min(dim=1).values, rtol=1e-4, atol=1e-3)


@needs_native
@pytest.mark.parametrize("dim", [1, 15, 16, 17, 100])
def test_row_distances_match_numpy(monkeypatch, dim):
    g = torch.Generator().manual_seed(dim)
    x, centers = torch.randn(500, dim, generator=g) * 30, torch.randn(9, dim, generator=g)
    labels = torch.randint(0, 9, (500,), generator=g)

    def run():
        out = torch.empty(500)
        row_distances(x, centers, labels, out)
        return [out]

    native, fallback = _both(monkeypatch, run)
    _equal(native, fallback)
    truth = ((x.double() - centers.double()[labels]) ** 2).sum(dim=1)
    torch.testing.assert_close(native[0].double(), truth, rtol=1e-5, atol=0)


@needs_native
def test_sum_pass_matches_the_workers_sums():
    """Fixed-point sums: whatever the chunks, workers and threads, the one total of every row rounded alone."""
    from curata.clustering.fixed_point import fraction_bits, to_fixed

    g = torch.Generator().manual_seed(4)
    x, labels = torch.randn(5000, 9, generator=g) * 100, torch.randint(0, 13, (5000,), generator=g)
    bits = fraction_bits(float(x.abs().max()), len(x))
    expected = torch.zeros(13, 9, dtype=torch.int64).index_add_(0, labels, to_fixed(x, bits))
    for chunk, workers in ((300, 3), (64, 1), (5000, 2), (7, 256)):
        for threads in (1, 2, 4):
            out = sum_pass(x, labels, 13, chunk, bits, workers, threads)
            assert torch.equal(out[:, :9], expected)
            assert torch.equal(out[:, 9], torch.bincount(labels, minlength=13))


def test_bad_pass_arguments_are_refused():
    x, x_sq, panels, bias = _scan_inputs(10, 4, 5)
    centers = torch.zeros(5, 4)
    out = [torch.empty(10, dtype=torch.long), torch.empty(10)]
    with pytest.raises(ValueError, match="panels"):
        scan_pass(x, x_sq, panels, bias, torch.zeros(40, 4), *out, 1, 1.0, 1e-6)
    with pytest.raises(ValueError, match="best"):
        scan_pass(x, x_sq, panels, bias, centers, out[0], out[0], 1, 1.0, 1e-6)
    with pytest.raises(ValueError, match="x_sq and bias"):
        scan_pass(x, None, panels, bias, centers, *out, 1, 1.0, 1e-6)
    with pytest.raises(ValueError, match="centers"):
        scan_pass(x, x_sq, panels, bias, torch.zeros(5, 3), *out, 1, 1.0, 1e-6)
    with pytest.raises(ValueError, match="labels"):
        sum_pass(x, torch.full((10,), 5), 5, 4, 4, 1, 1)
    with pytest.raises(ValueError, match="workers"):
        sum_pass(x, torch.zeros(10, dtype=torch.long), 5, 4, 4, 0, 1)
    with pytest.raises(ValueError, match="labels"):
        row_distances(x, centers, torch.full((10,), 7), torch.empty(10))
