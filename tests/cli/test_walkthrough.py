"""The README's "From ids to files" walk-through, run as written on a real folder of images.

describe -> dedup -> curate --within kept -> select 10 -> export: every path written exists and is the file of its
sample id in the source.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curata import ImageFolder, VectorTable, export, recorded_source
from curata.cli.main import command_line, main

CLASSES = ("cat", "dog", "fox")


def write_photos(root: Path) -> dict[str, str]:
    """60 images in 3 class folders: 18 distinct ones per class (PNG and JPEG) and 2 byte-identical copies; returns
    copy -> original (relative paths)."""
    rng = np.random.default_rng(0)
    copies = {}
    for c, name in enumerate(CLASSES):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(18):
            blocks = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
            blocks[..., c] = np.maximum(blocks[..., c], 150)  # each class leans to one colour
            pixels = np.asarray(Image.fromarray(blocks).resize((12, 12), Image.NEAREST))
            Image.fromarray(pixels).save(folder / f"{i:02d}.{'png' if i % 3 else 'jpg'}")
        for i in (1, 2):
            shutil.copyfile(folder / f"{i:02d}.png", folder / f"copy-of-{i:02d}.png")
            copies[f"{name}/copy-of-{i:02d}.png"] = f"{name}/{i:02d}.png"
    return copies


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tinynet.py").write_text(
        "import torch\n"
        "def pooled():\n"
        "    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),\n"
        "                               torch.nn.Flatten())\n"
    )
    return tmp_path


def test_describe_dedup_curate_select_export(workdir):
    copies = write_photos(workdir / "photos")
    files = [p.resolve() for p in ImageFolder(workdir / "photos").files]  # the source's sample ids, in order
    relative = [p.relative_to((workdir / "photos").resolve()).as_posix() for p in files]

    main(["describe", "--images", "photos", "--model", "tinynet:pooled", "--size", "16", "--out", "runs/p"])
    main(["dedup", "--vectors", "runs/p/vectors", "--threshold", "0.9", "--out", "runs/d"])
    main(["curate", "--vectors", "runs/p/vectors", "--within", "runs/d/kept_ids.npy", "--levels", "8", "3",
          "--target", "30", "--out", "runs/c"])  # fmt: skip
    main(["select", "--vectors", "runs/p/vectors", "--within", "runs/c/curated_ids.npy", "--n", "10",
          "--out", "runs/s"])  # fmt: skip
    main(["export", "--vectors", "runs/p/vectors", "--ids", "runs/s/selected_ids.npy", "--to", "to_annotate.txt"])

    # every copy is gone and each group keeps one of the pair
    kept = np.load(workdir / "runs" / "d" / "kept_ids.npy")
    groups = [json.loads(line) for line in (workdir / "runs" / "d" / "duplicates.jsonl").read_text().splitlines()]
    pairs = {frozenset((relative.index(c), relative.index(o))) for c, o in copies.items()}
    assert {frozenset([g["kept"], *g["removed"]]) for g in groups} == pairs
    assert all(g["kept"] in kept and not set(g["removed"]) & set(kept.tolist()) for g in groups)
    assert all(Path(g["kept_path"]) == files[g["kept"]] for g in groups)
    assert len(kept) == 54
    assert (workdir / "runs" / "d" / "kept.txt").read_text().split() == [str(files[i]) for i in kept]

    curated = np.load(workdir / "runs" / "c" / "curated_ids.npy")
    selected = np.load(workdir / "runs" / "s" / "selected_ids.npy")
    assert len(curated) == 30 and set(curated.tolist()) <= set(kept.tolist())
    assert len(selected) == 10 and set(selected.tolist()) <= set(curated.tolist())

    listed = (workdir / "to_annotate.txt").read_text().split("\n")[:-1]
    assert len(listed) == 10
    for sample, path in zip(selected.tolist(), listed):
        assert Path(path).is_file() and Path(path) == files[sample]
    assert (workdir / "runs" / "s" / "selected.txt").read_text().split("\n")[:-1] == listed

    # the CSV says which command chose each sample, its class and its file
    main(["export", "--vectors", "runs/p/vectors", "--rows", "runs/s/selected_ids.npy", "--to", "picked.csv"])
    with open(workdir / "picked.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["id"]) for r in rows] == selected.tolist()
    assert all(r["selected_by"] == "select kcenter" for r in rows)
    assert [r["label"] for r in rows] == [relative[i].split("/")[0] for i in selected]

    # the same in Python
    table = VectorTable.open(workdir / "runs" / "p" / "vectors")
    assert [recorded_source(table).where(i) for i in selected] == listed
    export(table, selected, workdir / "again.txt")
    assert (workdir / "again.txt").read_text() == (workdir / "to_annotate.txt").read_text()

    # an existing file is kept unless --overwrite; ids of another table are refused; nothing is written
    argv = ["export", "--vectors", "runs/p/vectors", "--ids", "runs/s/selected_ids.npy", "--to", "to_annotate.txt"]
    assert command_line(argv) == 2
    assert command_line([*argv, "--overwrite"]) == 0
    (workdir / "stranger.txt").write_text("3\n999\n")
    assert command_line(["export", "--vectors", "runs/p/vectors", "--ids", "stranger.txt", "--to", "x.txt"]) == 2
    assert not (workdir / "x.txt").exists()

    # explore finds the images describe recorded and shows dedup's groups
    main(["explore", "--vectors", "runs/p/vectors", "--duplicates", "runs/d/duplicates.jsonl",
          "--curated", "runs/c/curated_ids.npy", "--out", "runs/x"])  # fmt: skip
    html = (workdir / "runs" / "x" / "explorer.html").read_text()
    data = json.loads(html.split('type="application/json">')[1].split("</script>")[0])
    assert data["kind"] == "image" and sum(data["points"]["curated"]) == 30 and len(data["samples"]) == 60
    assert len(data["duplicates"]) == 6 and all(card["similarity"] == [1.0, 1.0] for card in data["duplicates"])
