from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from curata import dedup
from curata.cli.main import main


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, _ = make_blobs(400, n_features=6, centers=5, random_state=0)
    np.save(tmp_path / "x.npy", X.astype(np.float32))
    (tmp_path / "job.py").write_text(
        "import numpy as np, torch\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    data = np.random.default_rng(0).random((50, 4), dtype=np.float32)\n"
        "    return data, torch.nn.Linear(4, 3)\n"
    )
    return tmp_path


def summary(run):
    return json.loads((run / "summary.json").read_text())


def test_every_command_end_to_end(workdir):
    main(["describe", "--data", "job:make", "--out", "d"])
    assert summary(workdir / "d")["rows"] == 50 and (workdir / "d" / "vectors").is_dir()
    main(["cluster", "--vectors", "x.npy", "--out", "r", "--levels", "5"])
    assert np.load(workdir / "r" / "clusters.npy").shape == (400,)
    main(
        ["curate", "--vectors", "r/vectors", "--out", "r", "--levels", "30", "5", "--resampling", "1", "--target", "60"]
    )
    assert len(np.load(workdir / "r" / "curated_ids.npy")) == 60
    main(["select", "--vectors", "x.npy", "--out", "r", "--n", "7"])
    assert len(np.load(workdir / "r" / "selected_ids.npy")) == 7
    main(["select", "--vectors", "r/vectors", "--out", "b", "--n", "7", "--memory-budget", "1M"])
    assert np.array_equal(np.load(workdir / "b" / "selected_ids.npy"), np.load(workdir / "r" / "selected_ids.npy"))
    main(["split", "--vectors", "x.npy", "--out", "r", "--sizes", "train=300", "val=100", "--mode", "disjoint"])
    assert summary(workdir / "r")["sizes"]["train"] + summary(workdir / "r")["sizes"]["val"] == 400
    main(["dedup", "--vectors", "x.npy", "--out", "r", "--threshold", "0.999"])
    assert summary(workdir / "r")["command"] == "dedup"
    import pyarrow as pa
    import pyarrow.parquet as pq

    X = np.load(workdir / "x.npy")
    labels = np.arange(400) % 4
    pq.write_table(pa.table({"vector": list(X), "label": labels}), workdir / "l.parquet")
    main(["select", "--vectors", "l.parquet", "--out", "l", "--n", "40", "--method", "zcore", "--by-label"])
    assert np.bincount(labels[np.load(workdir / "l" / "selected_ids.npy")]).tolist() == [10] * 4
    main(
        [
            "split",
            "--vectors",
            "l.parquet",
            "--out",
            "l",
            "--sizes",
            "train=0.7",
            "val=0.3",
            "--mode",
            "coreset",
            "--by-label",
            "--metric",
            "cosine",
        ]
    )
    assert np.bincount(labels[np.load(workdir / "l" / "split_train.npy")]).tolist() == [70] * 4
    main(["report", "--vectors", "x.npy", "--out", "r", "--curated", "r/curated_ids.npy"])
    assert (workdir / "r" / "index.html").exists() and not (workdir / "r" / "report").exists()  # no nested folder


def test_config_file_supplies_the_arguments(workdir):
    (workdir / "run.toml").write_text('[curate]\nout = "c"\nvectors = "x.npy"\nlevels = [20, 4]\ntarget = 40\n')
    main(["--config", "run.toml", "curate"])
    assert summary(workdir / "c")["picked"] == 40


def test_installed_command_and_bad_input(workdir):
    result = subprocess.run([sys.executable, "-m", "curata.cli", "select", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--method" in result.stdout
    with pytest.raises(ValueError, match="--n must be an int >= 1"):
        main(["select", "--vectors", "x.npy", "--out", "r", "--n", "0"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        main(["select", "--vectors", "missing.npy", "--out", "r", "--n", "3"])
    with pytest.raises(ValueError, match="must be module:function"):
        main(["describe", "--data", "job", "--out", "d"])
    with pytest.raises(SystemExit):
        main(["cluster", "--out", "r"])  # --vectors is required


def test_describe_a_folder_of_images(workdir):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, name in enumerate(("cats", "dogs")):
        (workdir / "photos" / name).mkdir(parents=True)
        for i in range(3 + label):
            pixels = rng.integers(0, 255, (10 + i, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(workdir / "photos" / name / f"{i}.png")
    (workdir / "net.py").write_text(
        "import torch\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),"
        " torch.nn.Flatten())\n"
    )
    main(["describe", "--images", "photos", "--model", "net:make", "--size", "16", "--out", "i"])
    from curata import VectorTable

    table = VectorTable.open(workdir / "i" / "vectors")
    assert len(table) == 7 and table.dim == 4
    assert table.column("label").tolist() == [0, 0, 0, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="needs --model"):
        main(["describe", "--images", "photos", "--out", "j"])


def test_refused_arguments_write_nothing(workdir):
    """`select --n 10000` used to build RUN/vectors before refusing n; every refusal now comes first."""
    np.save(workdir / "few.npy", np.array([1, 400, 2]))
    np.save(workdir / "floats.npy", np.array([0.5]))
    (workdir / "three.txt").write_text("4\n8\n15\n")
    refused = [
        (["select", "--n", "10000"], "--n 10000 is more than the 400"),
        (["select", "--n", "398", "--exclude", "few.npy"], "--exclude 'few.npy' holds 1 sample ids that are not in"),
        (["select", "--n", "5", "--within", "few.npy"], "--within 'few.npy' holds 1 sample ids that are not in"),
        (["select", "--n", "5", "--within", "three.txt"], "--n 5 is more than the 3 samples in --within"),
        (["split", "--sizes", "a=2", "b=2", "--within", "three.txt"], "sum to <= the 3"),
        (["cluster", "--levels", "401"], "--levels 401 is more clusters than the 400"),
        (["curate", "--levels", "5", "10", "--target", "9"], "--levels must be positive and decreasing"),
        (["split", "--sizes", "train=300", "val=200"], "sizes as counts must be >= 0 and sum to <= the 400"),
        (["split", "--sizes", "train=abc"], "--sizes must be name=fraction or name=count"),
        (["dedup", "--threshold", "1.5"], "--threshold must be in"),
        (["select", "--n", "5", "--by-label"], "--by-label: --vectors 'x.npy' holds no labels"),
        (["select", "--n", "5", "--approx-chunk-rows", "1"], "--approx-chunk-rows must be an int >= 2"),
        (["split", "--sizes", "train=0.5", "--by-label"], "--by-label is for --mode coreset"),
        (["report", "--curated", "floats.npy"], "--curated 'floats.npy' must hold a 1-D array of integer sample ids"),
    ]
    for arguments, match in refused:
        with pytest.raises((ValueError, TypeError), match=match):
            main([arguments[0], "--vectors", "x.npy", "--out", "r", *arguments[1:]])
        assert not (workdir / "r").exists(), arguments


def test_run_directory_built_from_another_file_is_refused(workdir):
    """`select --vectors b.npy --out r` after a run on a.npy used to answer with row ids of a.npy."""
    np.save(workdir / "b.npy", np.random.default_rng(1).random((300, 6), dtype=np.float32))
    main(["cluster", "--vectors", "x.npy", "--out", "r", "--levels", "5"])
    before = {p.name: p.read_bytes() for p in (workdir / "r").glob("*.*")}
    with pytest.raises(ValueError, match="holds vectors built from .*x.npy.*not from --vectors 'b.npy'"):
        main(["select", "--vectors", "b.npy", "--out", "r", "--n", "5"])
    np.save(workdir / "x.npy", np.random.default_rng(2).random((400, 6), dtype=np.float32))  # same name, new data
    with pytest.raises(ValueError, match="Use another --out, or delete"):
        main(["select", "--vectors", "x.npy", "--out", "r", "--n", "5"])
    assert {p.name: p.read_bytes() for p in (workdir / "r").glob("*.*")} == before
    main(["select", "--vectors", "b.npy", "--out", "s", "--n", "5"])
    assert np.load(workdir / "s" / "selected_ids.npy").max() < 300


def test_dedup_dry_run_prints_the_curve_and_removes_nothing(workdir, capsys):
    main(["dedup", "--vectors", "x.npy", "--out", "r", "--dry-run", "--thresholds", "0.5", "0.99"])
    out = capsys.readouterr().out
    assert "threshold 0.500:" in out and "threshold 0.990:" in out
    curve = summary(workdir / "r")["curve"]
    assert [point["threshold"] for point in curve] == [0.5, 0.99] and not (workdir / "r" / "kept_ids.npy").exists()
    with pytest.raises(ValueError, match="more than max_removed=0.01"):
        main(["dedup", "--vectors", "x.npy", "--out", "r", "--threshold", "0.5", "--max-removed", "0.01"])
    with pytest.raises(ValueError, match="--max-removed must be in"):
        main(["dedup", "--vectors", "x.npy", "--out", "r", "--max-removed", "0"])
    main(["dedup", "--vectors", "x.npy", "--out", "d", "--dry-run"])  # the default grid, whitened
    assert [p["threshold"] for p in summary(workdir / "d")["curve"]] == [0.5, 0.6, 0.65, 0.7, 0.8, 0.9, 0.95, 0.99]
    X = np.load(workdir / "x.npy")
    for space in ("whitened", "raw"):
        main(["dedup", "--vectors", "x.npy", "--out", space, "--space", space, "--max-removed", "1"])
        kept = np.load(workdir / space / "kept_ids.npy")
        assert np.array_equal(kept, dedup(X, space=space, max_removed=1.0)[0])
    main(["dedup", "--vectors", "x.npy", "--out", "m", "--margin", "0", "--threshold", "0.5", "--max-removed", "1"])
    kept = np.load(workdir / "m" / "kept_ids.npy")
    assert np.array_equal(kept, dedup(X, threshold=0.5, margin=0, max_removed=1.0)[0])


def test_exact_duplicates_of_vectors_and_of_files(workdir):
    X = np.load(workdir / "x.npy")
    np.save(workdir / "dup.npy", np.concatenate([X[:50], X[[3, 7, 3]]]))
    main(["exact", "--vectors", "dup.npy", "--out", "e"])
    kept = np.load(workdir / "e" / "kept_rows.npy")
    assert len(kept) == 50 and summary(workdir / "e")["groups"] == 2 and summary(workdir / "e")["removed"] == 3
    images = workdir / "images" / "cats"
    images.mkdir(parents=True)
    for name, content in {"a.png": b"one", "b.png": b"two", "c.png": b"one"}.items():
        (images / name).write_bytes(content)
    (workdir / "images" / "copy.png").write_bytes(b"two")
    main(["exact", "--files", "images", "--out", "images/run"])  # its own output folder is not scanned
    listing = json.loads((workdir / "images" / "run" / "files.json").read_text())
    assert listing["groups"] == [["cats/a.png", "cats/c.png"], ["cats/b.png", "copy.png"]]
    main(["exact", "--files", "images", "--out", "images/run"])  # a rerun sees the same files
    assert json.loads((workdir / "images" / "run" / "files.json").read_text()) == listing
    with pytest.raises(ValueError, match="pass --vectors .* or --files"):
        main(["exact", "--out", "f"])
    with pytest.raises(ValueError, match="--files 'nowhere' is not a folder"):
        main(["exact", "--files", "nowhere", "--out", "f"])
    assert not (workdir / "f").exists()


def test_contamination_of_train_by_test_rows(workdir):
    rng = np.random.default_rng(0)
    train = rng.normal(size=(500, 128)).astype(np.float32)
    test = rng.normal(size=(100, 128)).astype(np.float32)
    train[[10, 200]] = test[[5, 60]] + 0.01 * rng.normal(size=(2, 128)).astype(np.float32)
    np.save(workdir / "train.npy", train)
    np.save(workdir / "test.npy", test)
    main(["contamination", "--vectors", "train.npy", "--reference", "test.npy", "--out", "c"])
    assert np.load(workdir / "c" / "contaminated_ids.npy").tolist() == [10, 200]
    assert np.load(workdir / "c" / "nearest_reference_ids.npy").tolist() == [5, 60]
    assert summary(workdir / "c")["contaminated"] == 2 and (workdir / "c" / "reference").is_dir()
    clustered = ["--reference-clusters", "4", "--probes", "4"]  # every cluster probed: the exact answer
    main(["contamination", "--vectors", "train.npy", "--reference", "test.npy", "--out", "k", *clustered])
    assert np.load(workdir / "k" / "contaminated_ids.npy").tolist() == [10, 200]
    with pytest.raises(ValueError, match="--reference has dim 6, --vectors has dim 128"):
        main(["contamination", "--vectors", "train.npy", "--reference", "x.npy", "--out", "d"])
    with pytest.raises(FileNotFoundError, match="--reference 'missing.npy' does not exist"):
        main(["contamination", "--vectors", "train.npy", "--reference", "missing.npy", "--out", "d"])
    with pytest.raises(ValueError, match="--threshold must be in"):
        main(["contamination", "--vectors", "train.npy", "--reference", "test.npy", "--out", "d", "--threshold", "2"])
    assert not (workdir / "d").exists()


def test_user_errors_are_one_line_without_a_traceback(workdir, capsys):
    from curata.cli import command_line

    result = subprocess.run(
        [sys.executable, "-m", "curata.cli", "select", "--vectors", "missing.npy", "--out", "r", "--n", "3"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "curata: error: --vectors 'missing.npy' does not exist"
    cases = [
        (["select", "--vectors", "x.npy", "--out", "r", "--n", "0"], "--n must be an int >= 1"),
        (["dedup", "--vectors", "x.npy", "--out", "r", "--threshold", "1.5"], "--threshold must be in (0, 1]"),
        (["exact", "--out", "r"], "pass --vectors"),
    ]
    for argv, message in cases:
        assert command_line(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("curata: error: ") and message in err and err.count("\n") == 1
    assert command_line(["select", "--vectors", "x.npy", "--out", "ok", "--n", "3"]) == 0


def test_config_keys_are_checked(workdir, capsys):
    from curata.cli import command_line

    def refused(text: str) -> str:
        (workdir / "run.toml").write_text(text)
        with pytest.raises(ValueError) as error:
            main(["--config", "run.toml", "curate"])
        return str(error.value)

    assert "[curate] has no option 'taget'" in refused('[curate]\nvectors = "x.npy"\ntaget = 40\n')
    assert "[curation] is not a command" in refused("[curation]\ntarget = 40\n")
    assert "line 2" in refused("[curate]\ntarget = = 40\n")
    assert "must be a table" in refused("curate = 3\n")
    assert command_line(["--config", "nowhere.toml", "curate"]) == 2
    assert "--config 'nowhere.toml' does not exist" in capsys.readouterr().err


def test_describe_from_embeddings_already_computed(workdir):
    X = np.load(workdir / "x.npy")
    np.save(workdir / "a.npy", X[:150])
    np.save(workdir / "b.npy", X[150:])
    main(["describe", "--embeddings", "a.npy", "b.npy", "--out", "e"])
    assert summary(workdir / "e")["rows"] == 400
    main(["cluster", "--vectors", "e/vectors", "--out", "e", "--levels", "5"])
    assert np.load(workdir / "e" / "clusters.npy").shape == (400,)
    with pytest.raises(ValueError, match="describe takes one source of --data, --images, .*; got 2"):
        main(["describe", "--embeddings", "a.npy", "--data", "job:make", "--out", "f"])


def test_describe_texts_from_the_command_line(workdir):
    (workdir / "textjob.py").write_text(
        "import torch\n"
        "def counts(texts):\n"
        "    return torch.tensor([[t.count(c) for c in 'aeiou'] for t in texts], dtype=torch.float32)\n"
        "def embedder():\n"
        "    return counts\n"
    )
    (workdir / "a.txt").write_text("an apple\nan orange\n")
    (workdir / "b.jsonl").write_text('{"body": "a banana"}\n{"body": "kiwi"}\n{"body": "figs"}\n')
    main(["describe", "--texts", "a.txt", "--model", "textjob:embedder", "--label-by-file", "--out", "t"])
    assert summary(workdir / "t")["rows"] == 2
    with pytest.raises(ValueError, match="need column="):
        main(["describe", "--texts", "a.txt", "b.jsonl", "--model", "textjob:embedder", "--out", "u"])
    main(["describe", "--texts", "b.jsonl", "--text-column", "body", "--model", "textjob:embedder", "--out", "u"])
    from curata import VectorTable

    vectors = VectorTable.open(workdir / "u" / "vectors").vectors()
    assert vectors.tolist() == [[4, 0, 0, 0, 0], [0, 0, 2, 0, 0], [0, 0, 1, 0, 0]]
    with pytest.raises(ValueError, match="--texts needs --model"):
        main(["describe", "--texts", "a.txt", "--out", "v"])
