"""What a new user hits first: a Ctrl-C, a killed job, directories of texts, a run folder for its table, warnings,
output folders, --version, --help (issue 32)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from curata import VectorTable
from curata.cli.main import command_line, main

SLOW_JOB = """
import os, time
import numpy as np, torch

class Slow(torch.utils.data.Dataset):
    def __len__(self):
        return 400
    def __getitem__(self, i):
        time.sleep(0.005 if os.environ.get("SLOW_JOB") else 0)
        return torch.full((4,), float(i))

def make():
    torch.manual_seed(0)
    return Slow(), torch.nn.Linear(4, 3)
"""


def test_ctrl_c_in_describe_prints_one_line_and_the_rerun_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "slowjob.py").write_text(SLOW_JOB)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "SLOW_JOB": "1"}
    env.pop("CURATA_TRACEBACK", None)
    argv = ["describe", "--data", "slowjob:make", "--out", "d", "--batch-size", "8"]
    job = subprocess.Popen(
        [sys.executable, "-m", "curata.cli", *argv], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    vectors = tmp_path / "d" / "vectors"
    while time.monotonic() < deadline and not (VectorTable.is_table(vectors) and len(VectorTable.open(vectors))):
        time.sleep(0.02)
    job.send_signal(signal.SIGINT)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 130, err
    assert "Traceback" not in err
    kept = len(VectorTable.open(vectors))
    assert 0 < kept < 400
    last = err.strip().splitlines()[-1]
    assert last == f"interrupted: {kept} rows kept; run the same command to resume"
    main(argv)  # in process, at full speed
    assert f"resuming: {kept} of 400 samples already in the table" in capsys.readouterr().err
    assert len(VectorTable.open(vectors)) == 400


def test_info_marks_an_incomplete_table(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    from curata import describe

    data = np.random.default_rng(0).random((30, 4), dtype=np.float32)
    describe(data, lambda batch: batch, tmp_path / "v", batch_size=8, progress=False)
    main(["info", "v"])
    assert "INCOMPLETE" not in capsys.readouterr().out
    VectorTable.open(tmp_path / "v")._dataset.delete("idx >= 20")  # as a job killed after 20 samples leaves it
    main(["info", "v"])
    out = capsys.readouterr().out
    assert "INCOMPLETE: 10 of 30 samples not embedded yet" in out
    main(["info", "v", "--json"])
    assert json.loads(capsys.readouterr().out)["incomplete"] == "10 of 30 samples not embedded yet"
    shards = tmp_path / "v" / "_curata_shards"  # a sharded job's fragments that nobody committed
    shards.mkdir()
    (shards / "r0.json").write_text(json.dumps({"first_idx": 20, "last_idx": 24, "fragments": []}))
    main(["info", "v"])
    assert "INCOMPLETE: 5 samples in fragments not committed yet" in capsys.readouterr().out


COUNTING_MODEL = """
import pathlib, torch
def embedder():
    pathlib.Path("model_loaded").touch()
    return lambda texts: torch.tensor([[float(len(t)), float(t.count(" "))] for t in texts])
"""


def test_texts_from_folders_and_patterns_errors_before_the_model_loads(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "countmodel.py").write_text(COUNTING_MODEL)
    (tmp_path / "quotes").mkdir()
    (tmp_path / "quotes" / "a.txt").write_text("one quote\ntwo quotes here\n")
    (tmp_path / "quotes" / "index.txt").write_bytes(b"\x00\x01\x02")
    (tmp_path / "quotes" / "same.txt").symlink_to(tmp_path / "quotes" / "a.txt")
    model = ["--model", "countmodel:embedder"]
    for wrong, error in (("nowhere", "--texts: 'nowhere' does not exist"), ("quotes/*.csv", "no file matches")):
        assert command_line(["describe", "--texts", wrong, *model, "--out", "r"]) == 2
        assert error in capsys.readouterr().err
    assert command_line(["describe", "--texts", "quotes/index.txt", *model, "--out", "r"]) == 2
    assert "--texts: every file is binary (NUL bytes), none holds text: quotes/index.txt" in capsys.readouterr().err
    assert not (tmp_path / "model_loaded").exists() and not (tmp_path / "r").exists()
    for texts in (["quotes"], ["quotes/*"]):
        assert command_line(["describe", "--texts", *texts, *model, "--out", "r", "--batch-size", "1"]) == 0
        err = capsys.readouterr().err
        assert "warning: --texts: skipped 1 binary files (NUL bytes): quotes/index.txt" in err
        assert json.loads((tmp_path / "r" / "summary.json").read_text())["samples"] == 2  # the link read once


def test_a_run_folder_for_its_table_is_named_and_no_phantom_levels(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((56, 3), dtype=np.float32))
    main(["select", "--vectors", "x.npy", "--out", "run", "--n", "3"])  # builds run/vectors
    capsys.readouterr()
    assert command_line(["select", "--vectors", "run", "--out", "s", "--n", "3"]) == 2
    assert "did you mean 'run/vectors' (a run folder holds its table in RUN/vectors)" in capsys.readouterr().err
    assert command_line(["info", "run"]) == 2
    assert "did you mean 'run/vectors'" in capsys.readouterr().err
    assert command_line(["curate", "--vectors", "x.npy", "--out", "c", "--target", "10"]) == 2
    err = capsys.readouterr().err
    assert "--levels 100" not in err
    assert "no --levels given: the default, 100 clusters, is more clusters than the 56 vectors" in err
    assert "pass fewer: --levels 7" in err
    with pytest.raises(ValueError, match=r"^--levels 80 is more clusters than the 56 vectors"):
        main(["curate", "--vectors", "x.npy", "--out", "c", "--target", "10", "--levels", "80"])
    np.save(tmp_path / "y.npy", np.random.default_rng(0).random((300, 3), dtype=np.float32))
    main(["cluster", "--vectors", "y.npy", "--out", "k", "--n-iter", "2"])
    assert "cluster: no --levels given: 100 clusters (the default)" in capsys.readouterr().err


def test_summary_holds_the_parameters_version_and_help_show_defaults(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "y.npy", np.random.default_rng(0).random((300, 3), dtype=np.float32))
    main(["curate", "--vectors", "y.npy", "--out", "c", "--target", "50", "--n-iter", "3"])
    parameters = json.loads((tmp_path / "c" / "summary.json").read_text())["parameters"]
    assert parameters["levels"] == [100] and parameters["target"] == 50 and parameters["n_iter"] == 3
    assert parameters["vectors"] == "y.npy" and parameters["out"] == "c" and parameters["command"] == "curate"
    main(["report", "--vectors", "y.npy", "--out", "c/report", "--curated", "c/curated_ids.npy"])
    assert (tmp_path / "c" / "report" / "index.html").is_file() and not (tmp_path / "c" / "report" / "report").exists()
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    from curata import __version__

    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"curata {__version__}"
    with pytest.raises(SystemExit):
        main(["curate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("--n-iter N_ITER default: 20", "--seed SEED default: 0", "(default: random)", "default: 100)"):
        assert shown in text, shown
    assert "default: None" not in text and "default: False" not in text


def test_long_fits_say_where_they_are_on_stderr(tmp_path, monkeypatch, capsys):
    import importlib

    cli = importlib.import_module("curata.cli.main")
    from curata import HierarchicalKMeans

    monkeypatch.chdir(tmp_path)
    x = np.random.default_rng(0).random((400, 3), dtype=np.float32)
    np.save(tmp_path / "y.npy", x)
    monkeypatch.setattr(cli, "FIT_PROGRESS_SECONDS", 0.0)  # every step prints
    main(
        [
            "curate",
            "--vectors",
            "y.npy",
            "--out",
            "c",
            "--target",
            "50",
            "--levels",
            "20",
            "4",
            "--n-iter",
            "3",
            "--resampling",
            "2",
        ]
    )
    err = capsys.readouterr().err.splitlines()
    progress = [line for line in err if line.startswith("curate: level")]
    assert progress[0].startswith("curate: level 1 of 2 (20 clusters)")
    assert any("level 2 of 2 (4 clusters), resampling step" in line for line in progress)
    assert any("k-means of 20 clusters: iteration 3 of 3" in line for line in progress)
    # the library stays quiet, and the progress changes nothing in the answer
    tree = HierarchicalKMeans([20, 4], n_iter=3, seed=0).fit(x)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(cli, "FIT_PROGRESS_SECONDS", 1e9)  # never due: nothing printed
    main(["cluster", "--vectors", "y.npy", "--out", "k", "--levels", "20", "4", "--n-iter", "3", "--resampling", "2"])
    assert not [line for line in capsys.readouterr().err.splitlines() if "iteration" in line]
    assert tree.labels_.shape == (400, 2)
