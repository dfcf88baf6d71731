"""space="auto": dedup, dedup_curve, contamination and leakage whiten only with rows enough to estimate it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from curata import contamination, dedup, dedup_curve, leakage
from curata.subsets.contamination import contamination_space
from curata.subsets.cosine_space import SAMPLE_ROWS, WHITENED_ROWS_PER_DIM, resolve_space
from curata.subsets.dedup import dedup_space


def test_auto_is_centred_below_the_ratio_and_whitened_from_it():
    dim = 1280
    at = int(np.ceil(WHITENED_ROWS_PER_DIM * dim))
    assert resolve_space("auto", at - 1, dim) == "centred"
    assert resolve_space("auto", at, dim) == "whitened"
    assert resolve_space("auto", 460, 1280) == "centred"  # issue 30's pool
    assert resolve_space("auto", 0, 4) == "centred"
    # the covariance is estimated from SAMPLE_ROWS rows at most, however many there are
    assert resolve_space("auto", 10**9, SAMPLE_ROWS) == "centred"
    for space in ("whitened", "centred", "raw"):
        assert resolve_space(space, 3, 1280) == space
    with pytest.raises(ValueError, match="space must be one of"):
        resolve_space("whitend", 10, 2)
    with pytest.raises(ValueError, match="rows must be"):
        resolve_space("auto", -1, 2)
    with pytest.raises(ValueError, match="dim must be"):
        resolve_space("auto", 10, 2.5)


def _pool(distinct: int, dim: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian rows whose variance falls as 1/i along the i-th axis (a spectrum like pooled CNN features'), and
    copies of a tenth of them with small isotropic noise added. Returns (rows, source of each copy)."""
    rng = np.random.default_rng(seed)
    scales = np.arange(1, dim + 1) ** -0.5
    base = rng.normal(size=(distinct, dim)) * scales
    sources = rng.choice(distinct, distinct // 10, replace=False)
    copies = base[sources] + 0.5 * scales.mean() * rng.normal(size=(len(sources), dim))
    return np.concatenate([base, copies]), sources


def _scores(kept: np.ndarray, distinct: int, sources: np.ndarray) -> tuple[int, int]:
    """(copy pairs of which one row went, distinct rows removed that are neither a copy nor a copied row)."""
    kept_set = set(kept.tolist())
    found = sum((int(s) in kept_set) != (distinct + i in kept_set) for i, s in enumerate(sources))
    removed = set(range(distinct + len(sources))) - kept_set
    wrong = len(removed - set(range(distinct, distinct + len(sources))) - set(sources.tolist()))
    return found, wrong


def test_too_few_rows_to_whiten_centred_cosines_find_the_copies():
    """220 rows of 256 dims (0.86 per dim): whitening from them misses nearly every copy, centred cosines find all
    with no distinct row removed, and "auto" picks centred; with 440 rows (1.72 per dim) whitening finds them all."""
    X, sources = _pool(200)
    one = np.zeros(len(X), int)
    assert dedup_space(X) == "centred"
    whitened = _scores(dedup(X, clusters=one, space="whitened")[0], 200, sources)
    centred = _scores(dedup(X, clusters=one, space="centred")[0], 200, sources)
    auto = _scores(dedup(X, clusters=one)[0], 200, sources)
    assert whitened[0] <= 2 and centred == (20, 0) and auto == centred, (whitened, centred)
    X, sources = _pool(400)
    assert dedup_space(X) == "whitened"
    assert _scores(dedup(X, clusters=np.zeros(len(X), int))[0], 400, sources) == (40, 0)


def test_the_defaults_follow_the_resolved_space():
    few, _ = _pool(200)
    many, _ = _pool(400)
    for X, space in ((few, "centred"), (many, "whitened")):
        one = np.zeros(len(X), int)
        auto = dedup(X, clusters=one)
        explicit = dedup(X, clusters=one, space=space)  # that space's own threshold and margin
        assert np.array_equal(auto[0], explicit[0])
        curve = dedup_curve(X, [0.6, 0.9], clusters=one)
        assert [p["space"] for p in curve] == [space, space]
        assert curve == dedup_curve(X, [0.6, 0.9], clusters=one, space=space)
    # within= counts the rows compared: 200 of the 440 are too few to whiten 256 dims
    assert dedup_space(many, within=np.arange(200)) == "centred"
    assert dedup_space(many, "raw") == "raw"
    with pytest.raises(ValueError, match="space must be one of"):
        dedup_space(many, "white")


def test_contamination_and_leakage_count_the_rows_their_space_is_fitted_on():
    X, _ = _pool(400)  # 440 rows
    train, test = X[:300], X[300:]
    assert contamination_space(train, test) == "whitened"  # 440 rows together
    assert contamination_space(train[:200], test[:100]) == "centred"
    for a, b in ((train, test), (train[:200], test[:100])):
        space = contamination_space(a, b)
        auto, explicit = contamination(a, b), contamination(a, b, space=space)
        assert all(np.array_equal(p, q) for p, q in zip(auto, explicit))
    splits = {"train": np.arange(300), "test": np.arange(300, 440)}
    for rows, space in ((X, "whitened"), (X[:300], "centred")):
        parts = {name: ids[ids < len(rows)] for name, ids in splits.items()}
        auto, explicit = leakage(parts, rows), leakage(parts, rows, space=space)
        assert all(np.array_equal(auto[k], explicit[k]) for k in auto)
    with pytest.raises(ValueError, match="space must be one of"):
        contamination(train, test, space="Auto")
    with pytest.raises(ValueError, match="space must be one of"):
        leakage(splits, X, space="white")


def test_the_cli_records_the_space_it_used(tmp_path, monkeypatch):
    from curata.cli.main import main

    monkeypatch.chdir(tmp_path)
    few, _ = _pool(200)
    many, _ = _pool(400)
    np.save("few.npy", few.astype(np.float32))
    np.save("many.npy", many.astype(np.float32))
    for name, space in (("few", "centred"), ("many", "whitened")):
        main(["dedup", "--vectors", f"{name}.npy", "--out", f"d_{name}"])
        assert json.loads((tmp_path / f"d_{name}" / "summary.json").read_text())["space"] == space
    main(["dedup", "--vectors", "many.npy", "--out", "dry", "--dry-run", "--thresholds", "0.9"])
    summary = json.loads((tmp_path / "dry" / "summary.json").read_text())
    assert summary["space"] == "whitened" and summary["curve"][0]["space"] == "whitened"
    main(["dedup", "--vectors", "many.npy", "--out", "raw", "--space", "raw", "--max-removed", "1"])
    assert json.loads((tmp_path / "raw" / "summary.json").read_text())["space"] == "raw"
    np.save("test.npy", many[300:].astype(np.float32))
    for name, space in (("few", "centred"), ("many", "whitened")):  # 220 or 440 rows, + 140: 384 needed
        main(["contamination", "--vectors", f"{name}.npy", "--reference", "test.npy", "--out", f"c_{name}"])
        assert json.loads((tmp_path / f"c_{name}" / "summary.json").read_text())["space"] == space
