"""Class names and file names where a user looks for them: the report's label histogram, the explorer's legend,
default colouring and detail panel (checked in the data the page carries; test_explorer.py drives the page)."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curata import ImageFolder, KMeans, VectorTable, cluster, describe, explore, report
from curata.cli.main import main

report_module = importlib.import_module("curata.exploring.report")  # the package's `report` is the function

CLASSES = ["cat", "dog", "emu"]


@pytest.fixture
def pets(tmp_path):
    """24 tiny images in class folders, described (so the table records its ImageFolder source and class names)."""
    rng = np.random.default_rng(0)
    for n in range(24):
        folder = tmp_path / "photos" / CLASSES[n % 3]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).save(folder / f"{n:02d}.png")
    images = ImageFolder(tmp_path / "photos", size=4)
    table = describe(images, lambda x: x.float().flatten(1), tmp_path / "vectors", label_key="label", progress=False)
    return images, table


def page_data(page: Path) -> dict:
    found = re.search(r'<script id="curata-data" type="application/json">(.*?)</script>', page.read_text(), re.S)
    assert found, "no data in the page"
    return json.loads(found.group(1))  # "<\/" (escaped by render_page) is JSON for "</"


@pytest.fixture
def histogram_ticks(monkeypatch):
    """The tick labels under each label histogram report() draws, in order."""
    drawn: list[list[str]] = []
    save = report_module._save

    def spy(fig, out_dir, name, plt):
        if name == "labels.png":
            drawn.append([tick.get_text() for tick in fig.axes[0].get_xticklabels()])
        return save(fig, out_dir, name, plt)

    monkeypatch.setattr(report_module, "_save", spy)
    return drawn


def test_report_names_the_classes_of_the_recorded_source(tmp_path, pets, histogram_ticks):
    _, table = pets
    report(table, tmp_path / "r1")
    report(table, tmp_path / "r2", class_names=["chat", "chien", "emeu"])
    main(["report", "--vectors", str(table.path), "--out", str(tmp_path / "r3")])
    plain = VectorTable.from_arrays(tmp_path / "plain", np.eye(3, dtype=np.float32), labels=[0, 2, 1])
    report(plain, tmp_path / "r4")  # no recorded source: the numbers
    assert histogram_ticks == [CLASSES, ["chat", "chien", "emeu"], CLASSES, ["0", "1", "2"]]


def test_report_refuses_bad_class_names_before_writing(tmp_path, pets):
    _, table = pets
    with pytest.raises(ValueError, match="class_names has 2 names but the table's labels go up to 2"):
        report(table, tmp_path / "r", class_names=["cat", "dog"])
    with pytest.raises(TypeError, match="class_names must be a list of strings"):
        report(table, tmp_path / "r", class_names="cat dog emu")
    with pytest.raises(TypeError, match="class_names must be a list of strings"):
        explore(table, tmp_path / "r", class_names=[0, 1, 2])
    assert not (tmp_path / "r").exists()


def test_explorer_colours_by_label_and_knows_each_file(tmp_path, pets):
    images, table = pets
    for page in (explore(table, tmp_path / "recorded"), explore(table, tmp_path / "given", source=images)):
        data = page_data(page)
        assert data["colour"] == "label" and data["names"] == CLASSES
        points = data["points"]
        files = [Path(data["filePrefix"] + f) for f in points["file"]]
        assert len(files) == 24 and all(f.is_file() for f in files)
        assert [f.parent.name for f in files] == [CLASSES[v] for v in points["label"]]  # each file is its sample's
        assert [str(f) for f in files] == [images.locations().where(i) for i in points["idx"]]
    page = explore(table, tmp_path / "renamed", class_names=["chat", "chien", "emeu"])
    assert page_data(page)["names"] == ["chat", "chien", "emeu"]


def test_explorer_without_labels_or_source(tmp_path):
    table = VectorTable.from_arrays(tmp_path / "t", np.random.default_rng(0).random((40, 3), dtype=np.float32))
    data = page_data(explore(table, tmp_path / "bare"))
    assert data["colour"] == "none" and data["points"]["file"] is None and data["names"] is None
    cluster(table, KMeans(4, seed=0))
    data = page_data(explore(table, tmp_path / "clustered", curated=[1, 2, 3]))
    assert data["colour"] == "cluster0"
    flags = explore(table, tmp_path / "flags", curated=[1, 2, 3], cluster_column="none")
    assert page_data(flags)["colour"] == "curated"
