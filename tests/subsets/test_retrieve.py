from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from launch import HERE, TEARDOWN_ABORT, torchrun

from curata import VectorTable, contamination, retrieve
from curata.subsets.retrieve import retrieve_space


def _similarities(pool, seeds, metric, space):
    """(seed rows, pool rows) similarities, computed directly in float64."""
    P, S = np.asarray(pool, np.float64), np.asarray(seeds, np.float64)
    if metric == "l2":
        return -np.linalg.norm(S[:, None, :] - P[None, :, :], axis=2)
    if space == "centred":
        mean = np.vstack([P, S]).mean(axis=0)
        P, S = P - mean, S - mean
    P /= np.linalg.norm(P, axis=1, keepdims=True)
    S /= np.linalg.norm(S, axis=1, keepdims=True)
    return S @ P.T


def _brute(pool, seeds, per_seed, metric="cosine", space="centred", pool_ids=None, seed_ids=None, left_out=()):
    """Each seed sample's per_seed best pool samples (a sample's best row counts), merged: the seed most similar."""
    sim = _similarities(pool, seeds, metric, space)
    pool_ids = np.arange(len(pool)) if pool_ids is None else np.asarray(pool_ids)
    seed_ids = np.arange(len(seeds)) if seed_ids is None else np.asarray(seed_ids)
    candidates = [p for p in np.unique(pool_ids).tolist() if p not in set(left_out)]
    best: dict[int, tuple[float, int]] = {}
    for s in np.unique(seed_ids).tolist():
        of_seed = sim[seed_ids == s]
        score = {p: of_seed[:, pool_ids == p].max() for p in candidates}
        for p in sorted(candidates, key=lambda p: (-score[p], p))[:per_seed]:
            if p not in best or (-score[p], s) < (-best[p][0], best[p][1]):
                best[p] = (score[p], s)
    ids = sorted(best)
    return np.array(ids), np.array([best[p][1] for p in ids]), np.array([best[p][0] for p in ids])


def _same(got, expected):
    assert got[0].tolist() == expected[0].tolist()
    assert got[1].tolist() == expected[1].tolist()
    assert np.allclose(got[2], expected[2], atol=1e-5)
    assert got[2].dtype == np.float64


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(120, 8)).astype(np.float32), rng.normal(size=(9, 8)).astype(np.float32)


@pytest.mark.parametrize(("metric", "space"), [("cosine", "centred"), ("cosine", "raw"), ("l2", "auto")])
def test_neighbours_equal_brute_force_whatever_the_chunks(data, metric, space):
    pool, seeds = data
    expected = _brute(pool, seeds, 4, metric, space)
    for chunk_rows in (5, 7, 64, 4096):  # chunks that do not divide either set, and one holding both whole
        _same(retrieve(pool, seeds, metric=metric, space=space, chunk_rows=chunk_rows), expected)
    assert len(expected[0]) == len(np.unique(expected[0])) <= 9 * 4


def test_no_repeats_when_seeds_share_neighbours(data):
    pool, seeds = data
    twice = np.vstack([seeds, seeds[:3] + 1e-3])  # three seeds all but repeated: their neighbours are listed once
    ids, found_for, _ = retrieve(pool, twice, per_seed=6, space="centred", chunk_rows=10)
    assert len(ids) == len(np.unique(ids)) < 12 * 6 and np.all(np.diff(ids) > 0)
    _same((ids, found_for, _), _brute(pool, twice, 6, space="centred"))
    everything = retrieve(pool, seeds, per_seed=500, space="centred")[0]  # more than the pool holds
    assert everything.tolist() == list(range(120))


def test_tables_stream_and_answer_in_sample_ids(tmp_path, data):
    pool, seeds = data
    ids = np.arange(120) * 3 + 7  # sample ids with gaps
    table = VectorTable.from_arrays(tmp_path / "pool", pool, ids=ids)
    seed_table = VectorTable.from_arrays(tmp_path / "seeds", seeds, ids=np.arange(9) + 100)
    expected = _brute(pool, seeds, 4, pool_ids=ids, seed_ids=np.arange(9) + 100)
    for chunk_rows in (6, 4096):
        _same(retrieve(table, seed_table, space="centred", chunk_rows=chunk_rows), expected)
    from_arrays = retrieve(pool, seeds, space="centred")
    assert ids[from_arrays[0]].tolist() == expected[0].tolist()


def test_multi_vector_samples_count_by_their_best_row(tmp_path):
    rng = np.random.default_rng(1)
    pool, seeds = rng.normal(size=(90, 6)).astype(np.float32), rng.normal(size=(12, 6)).astype(np.float32)
    pool_ids = np.repeat(np.arange(30) * 10, 3)  # 30 samples of 3 rows
    seed_ids = np.repeat([5, 6, 7, 8, 9, 11], 2)  # 6 seeds of 2 rows
    table = VectorTable.from_arrays(tmp_path / "pool", pool, ids=pool_ids)
    seed_table = VectorTable.from_arrays(tmp_path / "seeds", seeds, ids=seed_ids)
    for metric in ("cosine", "l2"):
        expected = _brute(pool, seeds, 3, metric, "centred", pool_ids, seed_ids)
        for chunk_rows in (4, 4096):
            got = retrieve(table, seed_table, per_seed=3, metric=metric, space="centred", chunk_rows=chunk_rows)
            _same(got, expected)
        assert set(got[0].tolist()) <= set(pool_ids.tolist()) and set(got[1].tolist()) <= set(seed_ids.tolist())


def _brute_clusters(pool, seeds, labels, probes, metric="cosine", space="centred"):
    """Each seed's ``probes`` nearest cluster means (of the space's unit rows), all their rows: the seed nearest."""
    P, S = np.asarray(pool, np.float64), np.asarray(seeds, np.float64)
    if metric == "cosine":
        mean = np.vstack([P, S]).mean(axis=0)
        P, S = P - mean, S - mean
        P /= np.linalg.norm(P, axis=1, keepdims=True)
        S /= np.linalg.norm(S, axis=1, keepdims=True)
    names = np.unique(labels[labels >= 0])
    centroids = np.stack([P[labels == c].mean(axis=0) for c in names])
    if metric == "cosine":
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        sim = S @ centroids.T
    else:
        sim = -np.linalg.norm(S[:, None, :] - centroids[None], axis=2)
    owner: dict[int, tuple[float, int]] = {}
    for s in range(len(S)):
        for c in np.argsort(-sim[s], kind="stable")[:probes].tolist():
            if c not in owner or (-sim[s, c], s) < (-owner[c][0], owner[c][1]):
                owner[c] = (sim[s, c], s)
    rows = [r for r in range(len(P)) if labels[r] >= 0 and int(np.searchsorted(names, labels[r])) in owner]
    seed_of = [owner[int(np.searchsorted(names, labels[r]))] for r in rows]
    return np.array(rows), np.array([s for _, s in seed_of]), np.array([v for v, _ in seed_of])


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_clusters_equal_brute_force(data, metric):
    pool, seeds = data
    labels = np.random.default_rng(2).integers(-1, 15, size=120) * 3  # ids with gaps; -3: no cluster
    labels[labels < 0] = -1
    for probes in (1, 2):
        expected = _brute_clusters(pool, seeds, labels, probes, metric)
        for chunk_rows in (7, 4096):
            got = retrieve(
                pool,
                seeds,
                method="clusters",
                clusters=labels,
                probes=probes,
                metric=metric,
                space="centred",
                chunk_rows=chunk_rows,
            )
            _same(got, expected)
        assert not set(got[0].tolist()) & set(np.flatnonzero(labels < 0).tolist())


def test_clusters_by_k_means_and_by_a_table_column(tmp_path):
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(6, 16)) * 10
    truth = np.repeat(np.arange(6), 40)
    pool = (centres[truth] + rng.normal(size=(240, 16))).astype(np.float32)
    seeds = (centres[[1, 4]] + rng.normal(size=(2, 16))).astype(np.float32)
    expected = np.flatnonzero(np.isin(truth, [1, 4]))
    ids, found_for, _ = retrieve(pool, seeds, method="clusters", n_clusters=6, space="centred", chunk_rows=50)
    assert ids.tolist() == expected.tolist()
    assert found_for.tolist() == [0] * 40 + [1] * 40
    table = VectorTable.from_arrays(tmp_path / "pool", pool, ids=np.arange(240) + 1000)
    table.add_column("cluster", truth)
    got = retrieve(table, seeds, method="clusters", clusters="cluster", space="centred")
    assert got[0].tolist() == (expected + 1000).tolist()


def test_near_copies_of_the_seeds_are_left_out(tmp_path):
    rng = np.random.default_rng(4)
    pool = rng.normal(size=(300, 16)).astype(np.float32)
    test = rng.normal(size=(20, 16)).astype(np.float32)
    copies = [3, 50, 299]
    pool[copies] = test[[0, 1, 2]] + 0.01 * rng.normal(size=(3, 16)).astype(np.float32)
    with_copies = retrieve(pool, test, per_seed=2, space="centred")[0]
    assert set(copies) <= set(with_copies.tolist())
    flagged = contamination(pool, test, threshold=0.95, space="centred")[0]
    assert flagged.tolist() == copies
    got = retrieve(pool, test, per_seed=2, space="centred", exclude_near_copies=True, threshold=0.95, chunk_rows=9)
    assert not set(got[0].tolist()) & set(copies)
    _same(got, _brute(pool, test, 2, space="centred", left_out=copies))
    table = VectorTable.from_arrays(tmp_path / "pool", pool, ids=np.arange(300) * 2)
    by_table = retrieve(table, test, per_seed=2, space="centred", exclude_near_copies=True, threshold=0.95)
    assert by_table[0].tolist() == (got[0] * 2).tolist()
    clustered = retrieve(
        pool, test, method="clusters", clusters=np.zeros(300, np.int64), exclude_near_copies=True, threshold=0.95
    )
    assert clustered[0].tolist() == sorted(set(range(300)) - set(copies))


def test_bad_input(tmp_path):
    pool, seeds = np.ones((4, 3)), np.ones((2, 3))
    with pytest.raises(ValueError, match="seeds have dim 2, pool has dim 3"):
        retrieve(pool, np.ones((2, 2)))
    with pytest.raises(ValueError, match="seeds: X must be 2-D"):
        retrieve(pool, np.ones(3))
    with pytest.raises(ValueError, match="seeds hold no rows"):
        retrieve(pool, np.ones((0, 3)))
    with pytest.raises(ValueError, match="method must be one of"):
        retrieve(pool, seeds, method="knn")
    with pytest.raises(ValueError, match="metric must be one of"):
        retrieve(pool, seeds, metric="dot")
    with pytest.raises(ValueError, match="per_seed"):
        retrieve(pool, seeds, per_seed=0)
    with pytest.raises(ValueError, match="space must be one of"):
        retrieve(pool, seeds, space="white")
    with pytest.raises(ValueError, match="threshold must be in"):
        retrieve(pool, seeds, exclude_near_copies=True, threshold=1.5)
    with pytest.raises(ValueError, match="needs one of n_clusters= .* or clusters="):
        retrieve(pool, seeds, method="clusters")
    with pytest.raises(ValueError, match="are for method='clusters'"):
        retrieve(pool, seeds, n_clusters=2)
    with pytest.raises(ValueError, match=r"n_clusters \(5\) must be <= the pool's rows \(4\)"):
        retrieve(pool, seeds, method="clusters", n_clusters=5)
    with pytest.raises(ValueError, match=r"clusters must hold one id per row \(4\)"):
        retrieve(pool, seeds, method="clusters", clusters=[0, 1])
    with pytest.raises(TypeError, match="names a column"):
        retrieve(pool, seeds, method="clusters", clusters="cluster")
    model = {"embedder": {"kind": "TorchEmbedder", "weights": "a"}, "vectorizer": {"pool": "mean"}}
    other = {"embedder": {"kind": "TorchEmbedder", "weights": "b"}, "vectorizer": {"pool": "mean"}}
    a = VectorTable.from_arrays(tmp_path / "a", np.eye(3), fingerprint=model)
    b = VectorTable.from_arrays(tmp_path / "b", np.eye(3), fingerprint=other)
    c = VectorTable.from_arrays(tmp_path / "c", np.eye(3), fingerprint={**model, "normalize": "l2"})
    with pytest.raises(ValueError, match="seeds were described with another model than pool"):
        retrieve(a, b)
    with pytest.raises(ValueError, match="seeds were described with another normalize than pool"):
        retrieve(a, c)
    with pytest.raises(ValueError, match="clusters='level_1' is not a column"):
        retrieve(a, a, method="clusters", clusters="level_1")
    assert retrieve(a, VectorTable.from_arrays(tmp_path / "d", np.eye(3), fingerprint=model), per_seed=1)[0].size
    assert retrieve(np.ones((0, 3)), seeds)[0].tolist() == []
    assert retrieve_space(np.zeros((400, 1280)), np.zeros((60, 1280))) == "centred"


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_gloo_ranks_equal_one_process(tmp_path):
    sys.path.insert(0, str(HERE))
    from retrieve_job import retrieve_all

    (tmp_path / "one").mkdir()
    single = retrieve_all(tmp_path / "one")
    (tmp_path / "two").mkdir()
    result = torchrun("retrieve_job.py", str(tmp_path / "two" / "answers.npz"))
    assert result.returncode == 0 or TEARDOWN_ABORT in result.stderr, result.stderr[-3000:]
    two = np.load(tmp_path / "two" / "answers.npz")
    assert sorted(two.files) == sorted(single)
    for key, values in single.items():
        assert np.array_equal(two[key], values) if key.endswith(("_i", "_s")) else np.allclose(two[key], values), key
    assert not {10, 200} & set(single["copies_i"].tolist()) and {10, 200} <= set(single["cosine_i"].tolist())
