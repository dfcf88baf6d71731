from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import LETTERS

from curata import VectorTable, retrieve
from curata.cli.main import command_line, main


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(300, 32)).astype(np.float32)
    seeds = rng.normal(size=(10, 32)).astype(np.float32)
    pool[[4, 150]] = seeds[[0, 1]] + 0.01 * rng.normal(size=(2, 32)).astype(np.float32)  # two test rows leaked
    np.save(tmp_path / "pool.npy", pool)
    np.save(tmp_path / "seeds.npy", seeds)
    return tmp_path


def _read(run, name):
    return np.load(run / f"{name}.npy")


def test_retrieve_writes_ids_seeds_and_similarities(workdir):
    pool, seeds = np.load(workdir / "pool.npy"), np.load(workdir / "seeds.npy")
    main(["retrieve", "--vectors", "pool.npy", "--seeds", "seeds.npy", "--out", "r", "--per-seed", "3"])
    expected = retrieve(pool, seeds, per_seed=3)
    run = workdir / "r"
    assert _read(run, "retrieved_ids").tolist() == expected[0].tolist()
    assert _read(run, "seed_ids").tolist() == expected[1].tolist()
    assert np.allclose(_read(run, "similarity"), expected[2])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["command"] == "retrieve" and summary["retrieved"] == len(expected[0]) and summary["seed_rows"] == 10
    assert summary["space"] == "whitened" and (run / "seeds").is_dir()
    assert {4, 150} <= set(expected[0].tolist())
    main(["retrieve", "--vectors", "pool.npy", "--seeds", "seeds.npy", "--out", "x", "--exclude-near-copies"])
    assert not {4, 150} & set(_read(workdir / "x", "retrieved_ids").tolist())
    main(
        ["retrieve", "--vectors", "pool.npy", "--seeds", "seeds.npy", "--out", "c", "--method", "clusters"]
        + ["--n-clusters", "5", "--metric", "l2"]
    )
    got = _read(workdir / "c", "retrieved_ids")
    assert got.tolist() == retrieve(pool, seeds, method="clusters", n_clusters=5, metric="l2")[0].tolist()


def test_seeds_described_by_the_same_model_and_the_paths_of_the_ids(workdir):
    (workdir / "letters.py").write_text(LETTERS)
    words = ["apple bread", "court judge", "wave boat", "soup apple", "verdict court", "harbour wave"]
    (workdir / "pool.txt").write_text("".join(f"{words[i % 6]} {i}\n" for i in range(24)))
    (workdir / "seeds.txt").write_text("judge court\nboat harbour\n")
    for name in ("pool", "seeds"):
        main(["describe", "--texts", f"{name}.txt", "--model", "letters:make", "--out", f"runs/{name}"])
    main(["retrieve", "--vectors", "runs/pool/vectors", "--seeds", "runs/seeds/vectors", "--out", "runs/r"]
         + ["--per-seed", "2", "--space", "raw"])  # fmt: skip
    run = workdir / "runs" / "r"
    ids = _read(run, "retrieved_ids")
    assert len(ids) == 4 and all(i % 6 in (1, 2, 4, 5) for i in ids.tolist())  # court/judge and wave/boat lines
    lines = (workdir / "pool.txt").resolve()
    assert (run / "retrieved.txt").read_text() == "".join(f"{lines}:{i + 1}\n" for i in ids.tolist())


def test_retrieve_bad_input_is_one_line(workdir, capsys):
    np.save(workdir / "narrow.npy", np.ones((3, 5), np.float32))
    assert command_line(["retrieve", "--vectors", "pool.npy", "--seeds", "narrow.npy", "--out", "d"]) == 2
    assert capsys.readouterr().err.strip() == (
        "curata: error: --seeds has dim 5, --vectors has dim 32: describe both with the same model"
    )
    with pytest.raises(FileNotFoundError, match="--seeds 'missing.npy' does not exist"):
        main(["retrieve", "--vectors", "pool.npy", "--seeds", "missing.npy", "--out", "d"])
    with pytest.raises(ValueError, match="--method clusters needs one of --n-clusters"):
        main(["retrieve", "--vectors", "pool.npy", "--seeds", "seeds.npy", "--out", "d", "--method", "clusters"])
    with pytest.raises(ValueError, match="--per-seed must be an int >= 1"):
        main(["retrieve", "--vectors", "pool.npy", "--seeds", "seeds.npy", "--out", "d", "--per-seed", "0"])
    with pytest.raises(ValueError, match="--threshold must be in"):
        main(["retrieve", "--vectors", "pool.npy", "--seeds", "seeds.npy", "--out", "d", "--threshold", "2"])
    assert not (workdir / "d").exists()
    model = {"embedder": {"weights": "a"}}
    VectorTable.from_arrays(workdir / "a", np.load(workdir / "pool.npy"), fingerprint=model)
    VectorTable.from_arrays(workdir / "b", np.load(workdir / "seeds.npy"), fingerprint={"embedder": {"weights": "b"}})
    assert command_line(["retrieve", "--vectors", "a", "--seeds", "b", "--out", "e"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "seeds were described with another model than pool" in err
