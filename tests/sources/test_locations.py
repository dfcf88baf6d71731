"""Each source says where its samples lie, and describe records it with the table."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from curata import HuggingFaceDisk, ImageFolder, TextFiles, VectorTable, WebDatasetShards, describe, recorded_source
from curata.sources.locations import SAMPLES_FILE, Locations, open_source, record_source


def mean_colour(images: torch.Tensor) -> torch.Tensor:
    return images.float().mean(dim=(2, 3))


def letter_counts(texts: list[str]) -> torch.Tensor:
    out = torch.zeros(len(texts), 26)
    for row, text in enumerate(texts):
        for char in text.lower():
            if "a" <= char <= "z":
                out[row, ord(char) - 97] += 1
    return out


def png(value: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((5, 5, 3), value, np.uint8)).save(out, format="PNG")
    return out.getvalue()


def test_image_folder_files_and_classes_are_recorded_by_describe(tmp_path):
    for n, name in enumerate(["cat/b.png", "cat/a.jpg", "dog/deep/c.png"]):
        (tmp_path / "photos" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((6, 6, 3), 40 * n, np.uint8)).save(tmp_path / "photos" / name)
    source = ImageFolder(tmp_path / "photos", size=4)
    places = source.locations()
    assert places.columns["path"] == ["cat/a.jpg", "cat/b.png", "dog/deep/c.png"]
    assert [places.label_name(i) for i in range(3)] == ["cat", "cat", "dog"]
    assert [places.where(i) for i in range(3)] == [str(p.resolve()) for p in source.files]
    table = describe(source, mean_colour, tmp_path / "v", label_key="label", progress=False)
    recorded = recorded_source(table)
    assert recorded == places and (tmp_path / "v" / SAMPLES_FILE).is_file()
    assert VectorTable.open(tmp_path / "v").get_attr("source")["kind"] == "ImageFolder"
    rebuilt = open_source(recorded, size=8)
    assert isinstance(rebuilt, ImageFolder) and rebuilt.size == 8 and rebuilt.files == source.files
    flat = ImageFolder(tmp_path / "photos" / "cat").locations()
    assert flat.columns["path"] == ["a.jpg", "b.png"] and flat.label_name(0) is None and "label" not in flat.columns


def test_webdataset_members_lead_back_to_their_bytes(tmp_path):
    with tarfile.open(tmp_path / "shard-0.tar", "w") as tar:
        for n in range(3):
            for extension, content in {"png": png(n * 50), "cls": str(n % 2).encode(), "json": b'{"a": 1}'}.items():
                info = tarfile.TarInfo(f"sub/{n:04d}.{extension}")
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    places = WebDatasetShards(tmp_path / "shard-*.tar", label="cls").locations()
    shard = str((tmp_path / "shard-0.tar").resolve())
    assert places.files == [shard] and places.columns["key"] == ["sub/0000", "sub/0001", "sub/0002"]
    assert places.where(2) == f"{shard}:sub/0002.png" and places.label_name(2) == 0 and not places.named
    offset, size = json.loads(places.columns["members"][1])["png"]
    with open(shard, "rb") as handle:
        handle.seek(offset)
        assert handle.read(size) == png(50)
    texts = WebDatasetShards(tmp_path / "shard-0.tar", data="text").locations()
    assert texts.columns["member"] == ["", "", ""]  # no .txt members: nothing to point at


def test_text_records_are_numbered_as_in_their_files(tmp_path):
    (tmp_path / "a.txt").write_text("alpha\n\nbeta\n")
    (tmp_path / "r.csv").write_text('text,topic\n"two\nlines",x\nthree,y\n')
    (tmp_path / "r.jsonl").write_text('{"text": "four", "topic": "y"}\n\n{"text": "five", "topic": "x"}\n')
    pq.write_table(pa.table({"text": ["six"], "topic": ["x"]}), tmp_path / "r.parquet")
    (tmp_path / "quotes").write_text("one\n%\ntwo\nmore\n%\n")
    with pytest.warns(RuntimeWarning, match="skipped 1 blank"):
        plain = TextFiles([tmp_path / "a.txt"]).locations()
    assert [plain.where(i) for i in range(2)] == [f"{(tmp_path / 'a.txt').resolve()}:{n}" for n in (1, 3)]
    mixed = TextFiles(
        [tmp_path / f"r.{s}" for s in ("csv", "jsonl", "parquet")], column="text", label_column="topic"
    ).locations()
    assert mixed.columns["file"] == [0, 0, 1, 1, 2] and mixed.columns["record"] == [2, 3, 1, 3, 1]
    assert [mixed.label_name(i) for i in range(5)] == ["x", "y", "y", "x", "x"] and mixed.named
    split = TextFiles([tmp_path / "quotes"], separator="%", label_by_file=True).locations()
    assert split.columns["record"] == [1, 3] and split.label_name(1) == "quotes"
    rebuilt = open_source(split)
    assert rebuilt.texts == ["one", "two\nmore"] and rebuilt.origins == [(0, 1), (0, 3)]
    table = describe(TextFiles([tmp_path / "quotes"], separator="%"), letter_counts, tmp_path / "v", progress=False)
    assert recorded_source(table).where(1) == f"{(tmp_path / 'quotes').resolve()}:3"


def test_a_saved_dataset_is_located_by_row(tmp_path):
    datasets = pytest.importorskip("datasets")
    saved = datasets.Dataset.from_dict({"text": ["a b", "c", "d e f"], "topic": ["x", "y", "x"]})
    saved.save_to_disk(str(tmp_path / "saved"))
    source = HuggingFaceDisk(tmp_path / "saved", column="text", label_column="topic")
    places = source.locations()
    assert places.columns["row"] == [0, 1, 2] and places.where(2) == f"{(tmp_path / 'saved').resolve()}[2]"
    assert places.label_name(1) == "y"
    table = describe(source, letter_counts, tmp_path / "v", label_key="label", progress=False)
    assert open_source(recorded_source(table))[2] == source[2]


def test_what_is_not_recorded_and_what_is_refused(tmp_path):
    table = VectorTable.from_arrays(tmp_path / "t", np.ones((3, 2)))
    assert recorded_source(table) is None
    assert record_source(table, np.zeros((3, 2))) is False and table.get_attr("source") is None
    (tmp_path / "a.txt").write_text("x\ny\n")
    with pytest.raises(ValueError, match="dataset holds 2 samples but table .* has sample id 2: it was not described"):
        record_source(table, TextFiles([tmp_path / "a.txt"]))
    assert table.get_attr("source") is None and not (tmp_path / "t" / SAMPLES_FILE).exists()
    (tmp_path / "b.txt").write_text("x\ny\nz\n")
    assert record_source(table, TextFiles([tmp_path / "b.txt"])) is True
    (tmp_path / "t" / SAMPLES_FILE).unlink()
    with pytest.raises(ValueError, match="source_samples.parquet is missing: describe the source again"):
        recorded_source(table)
    with pytest.raises(ValueError, match="kind must be one of"):
        Locations("Folder", "", [], {})
    with pytest.raises(ValueError, match="a value per sample each"):
        Locations("TextFiles", "", [], {}, columns={"file": [0], "record": [1, 2]})
