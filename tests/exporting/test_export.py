"""export(): every format, from an image folder, WebDataset shards, text files and a saved dataset, on real files."""

from __future__ import annotations

import csv
import io
import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from curata import (
    HuggingFaceDisk,
    ImageFolder,
    KMeans,
    TextFiles,
    VectorTable,
    WebDatasetShards,
    cluster,
    describe,
    export,
    read_ids,
)


def mean_colour(images: torch.Tensor) -> torch.Tensor:
    return images.float().mean(dim=(2, 3))


def letter_counts(texts: list[str]) -> torch.Tensor:
    out = torch.zeros(len(texts), 26)
    for row, text in enumerate(texts):
        for char in text.lower():
            if "a" <= char <= "z":
                out[row, ord(char) - 97] += 1
    return out


def encoded(value: int, format: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((6, 6, 3), value, np.uint8)).save(out, format=format)
    return out.getvalue()


@pytest.fixture
def photos(tmp_path):
    """10 images in two class folders (one nested deeper, PNG and JPEG) and one corrupt file: 11 sample ids."""
    names = [f"cat/{i}.png" for i in range(4)] + [f"dog/{i}.jpg" for i in range(3)] + ["dog/old/7.png", "dog/8.png"]
    names += ["dog/9.png"]
    for n, name in enumerate(names):
        (tmp_path / "photos" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "photos" / name).write_bytes(encoded(20 * n, "JPEG" if name.endswith(".jpg") else "PNG"))
    (tmp_path / "photos" / "cat" / "broken.png").write_bytes(b"not an image")
    source = ImageFolder(tmp_path / "photos", size=4)
    with pytest.warns(RuntimeWarning, match="skipped 1 unreadable"):
        table = describe(source, mean_colour, tmp_path / "v", label_key="label", progress=False)
    cluster(table, KMeans(2, seed=0))
    return tmp_path, table, source


def test_image_folder_in_every_format(photos):
    tmp_path, table, source = photos
    ids = np.array([10, 0, 8])  # dog/old/7.png, cat/0.png, dog/8.png
    files = [p.resolve() for p in source.files]
    clusters = table.column("cluster")

    listing = export(table, ids, tmp_path / "out" / "picked.txt")
    assert listing.read_text().split("\n") == [*(str(files[i]) for i in ids), ""]

    export(table, ids, tmp_path / "picked.csv", command="select kcenter", scores=[0.5, np.nan, 2.0])
    with open(tmp_path / "picked.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == ["10", "0", "8"] and [r["label"] for r in rows] == ["dog", "cat", "dog"]
    assert [r["path"] for r in rows] == [str(files[i]) for i in ids] and [r["score"] for r in rows] == [
        "0.5",
        "",
        "2.0",
    ]
    row_of = {int(i): n for n, i in enumerate(table.column("idx"))}
    assert [int(r["cluster"]) for r in rows] == [clusters[row_of[i]] for i in ids]
    assert {r["selected_by"] for r in rows} == {"select kcenter"}

    export(table, ids, tmp_path / "picked.jsonl")
    records = [json.loads(line) for line in (tmp_path / "picked.jsonl").read_text().splitlines()]
    assert records[0] == {"id": 10, "path": str(files[10]), "label": "dog", "cluster": int(clusters[row_of[10]])}

    export(table, ids, tmp_path / "links", format="links")
    linked = sorted(p for p in (tmp_path / "links").rglob("*") if p.is_symlink())
    assert [p.relative_to(tmp_path / "links").as_posix() for p in linked] == ["cat/0.png", "dog/8.png", "dog/old/7.png"]
    assert {p.resolve() for p in linked} == {files[i] for i in ids}

    export(table, ids, tmp_path / "copies", format="copies")
    for i in ids:
        relative = files[i].relative_to((tmp_path / "photos").resolve())
        copy = tmp_path / "copies" / relative
        assert not copy.is_symlink() and copy.read_bytes() == files[i].read_bytes()

    export(table, ids, tmp_path / "shards", format="webdataset", shard_samples=2)
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["shard-000000.tar", "shard-000001.tar"]
    back = WebDatasetShards(tmp_path / "shards" / "*.tar", label="cls")
    assert back.keys == ["000010", "000000", "000008"] and back.labels == [1, 0, 1]
    with tarfile.open(tmp_path / "shards" / "shard-000000.tar") as tar:
        assert tar.getnames() == ["000010.png", "000010.cls", "000000.png", "000000.cls"]
        assert tar.extractfile("000000.png").read() == files[0].read_bytes()


def test_image_folder_as_a_saved_dataset(photos):
    datasets = pytest.importorskip("datasets")
    tmp_path, table, source = photos
    export(table, [2, 5], tmp_path / "hf", format="hf")
    saved = datasets.load_from_disk(str(tmp_path / "hf"))
    assert saved["id"] == [2, 5] and saved.features["label"].names == ["cat", "dog"] and saved["label"] == [0, 1]
    assert saved["path"] == [str(source.files[i].resolve()) for i in (2, 5)]
    assert saved[1]["image"].format == "JPEG" and saved[1]["image"].size == (6, 6)


def test_refused_before_anything_is_written(photos):
    tmp_path, table, source = photos
    broken = [p.name for p in source.files].index("broken.png")
    with pytest.raises(ValueError, match=f"1 sample ids that are not in table .*, e.g. {broken}: pass sample ids"):
        export(table, [0, broken], tmp_path / "a.txt")
    with pytest.raises(ValueError, match="ids holds sample id 3 2 times"):
        export(table, [3, 1, 3], tmp_path / "a.txt")
    with pytest.raises(TypeError, match="integer sample ids"):
        export(table, [0.5], tmp_path / "a.txt")
    with pytest.raises(ValueError, match="format must be one of .* got out"):
        export(table, [0], tmp_path / "a.tsv")
    with pytest.raises(ValueError, match="format must be one of"):
        export(table, [0], tmp_path / "a", format="zip")
    bare = VectorTable.from_arrays(tmp_path / "bare", np.ones((11, 3)))
    with pytest.raises(ValueError, match="records no source .*: pass source= the dataset it was described from"):
        export(bare, [0], tmp_path / "a.txt")
    assert not list(tmp_path.glob("a*")) and not list(tmp_path.glob(".a*"))
    export(bare, [10], tmp_path / "given.txt", source=source)  # the dataset given by hand
    assert (tmp_path / "given.txt").read_text() == f"{source.files[10].resolve()}\n"

    export(table, [0], tmp_path / "copies", format="copies")
    with pytest.raises(FileExistsError, match="exists: pass overwrite=True"):
        export(table, [1], tmp_path / "copies", format="copies")
    with pytest.raises(ValueError, match="is a folder; format='txt' writes a file"):
        export(table, [1], tmp_path / "copies", format="txt", overwrite=True)
    export(table, [1], tmp_path / "copies", format="copies", overwrite=True)
    assert [p.name for p in (tmp_path / "copies").rglob("*.png")] == ["1.png"]
    source.files[2].unlink()
    with pytest.raises(FileNotFoundError, match="sample 2's file .*2.png' no longer exists"):
        export(table, [1, 2], tmp_path / "b", format="copies")
    assert not (tmp_path / "b").exists() and not list(tmp_path.glob(".b.staging-*"))


def write_shard(path, first: int, count: int) -> None:
    with tarfile.open(path, "w") as tar:
        for n in range(first, first + count):
            members = {"png": encoded(10 * n), "cls": str(n % 3).encode(), "json": json.dumps({"n": n}).encode()}
            members["txt"] = f"sample {n}".encode()
            for extension, content in members.items():
                info = tarfile.TarInfo(f"{n:05d}.{extension}")
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))


def test_webdataset_shards(tmp_path):
    write_shard(tmp_path / "a.tar", 0, 4)
    write_shard(tmp_path / "b.tar", 4, 3)
    table = describe(
        WebDatasetShards(tmp_path / "*.tar", label="cls", size=4), mean_colour, tmp_path / "v", label_key="label",
        progress=False,
    )  # fmt: skip
    export(table, [5, 1], tmp_path / "list.txt")
    b, a = (str((tmp_path / name).resolve()) for name in ("b.tar", "a.tar"))
    assert (tmp_path / "list.txt").read_text() == f"{b}:00005.png\n{a}:00001.png\n"
    export(table, [5, 1], tmp_path / "copies", format="copies")
    assert (tmp_path / "copies" / "2" / "00005.png").read_bytes() == encoded(50)  # a folder per label
    assert (tmp_path / "copies" / "1" / "00001.png").read_bytes() == encoded(10)
    with pytest.raises(ValueError, match="format='links' needs a source of one file per sample"):
        export(table, [5], tmp_path / "links", format="links")
    export(table, [5, 1], tmp_path / "shards", format="webdataset")
    with tarfile.open(tmp_path / "shards" / "shard-000000.tar") as tar:
        assert tar.getnames() == [f"{k}.{e}" for k in ("000005", "000001") for e in ("png", "json", "txt", "cls")]
        assert json.loads(tar.extractfile("000005.json").read()) == {"n": 5}
        assert tar.extractfile("000001.cls").read() == b"1"
    export(table, [5, 1], tmp_path / "list.jsonl")
    first = json.loads((tmp_path / "list.jsonl").read_text().splitlines()[0])
    assert first == {"id": 5, "path": f"{b}:00005.png", "label": 2}


def test_text_files(tmp_path):
    (tmp_path / "r.jsonl").write_text(
        "\n".join(json.dumps({"text": t, "topic": k}) for t, k in [("apple pie", "food"), ("a/b law", "law")]) + "\n"
    )
    (tmp_path / "s.jsonl").write_text('{"text": "bread", "topic": "food"}\n\n{"text": "courts", "topic": "law"}\n')
    source = TextFiles([tmp_path / "r.jsonl", tmp_path / "s.jsonl"], column="text", label_column="topic")
    table = describe(source, letter_counts, tmp_path / "v", label_key="label", progress=False)
    r, s = (str((tmp_path / name).resolve()) for name in ("r.jsonl", "s.jsonl"))
    export(table, [3, 1], tmp_path / "list.txt")
    assert (tmp_path / "list.txt").read_text() == f"{s}:3\n{r}:2\n"
    export(table, [3, 1], tmp_path / "list.jsonl")
    records = [json.loads(line) for line in (tmp_path / "list.jsonl").read_text().splitlines()]
    assert records == [
        {"id": 3, "path": f"{s}:3", "label": "law", "text": "courts"},
        {"id": 1, "path": f"{r}:2", "label": "law", "text": "a/b law"},
    ]
    export(table, [3, 0], tmp_path / "copies", format="copies")
    assert (tmp_path / "copies" / "law" / "3.txt").read_text() == "courts"
    assert (tmp_path / "copies" / "food" / "0.txt").read_text() == "apple pie"
    export(table, [2], tmp_path / "shards", format="webdataset")
    back = WebDatasetShards(tmp_path / "shards" / "*.tar", data="text", label="cls")
    assert back[0]["data"] == "bread" and back.labels == [0]
    datasets = pytest.importorskip("datasets")
    export(table, [1, 2], tmp_path / "hf", format="hf")
    saved = datasets.load_from_disk(str(tmp_path / "hf"))
    assert saved["text"] == ["a/b law", "bread"] and saved.features["label"].names == ["food", "law"]
    (tmp_path / "s.jsonl").write_text('{"text": "bread", "topic": "food"}\n')  # the file changed since describe
    with pytest.raises(ValueError, match="s.jsonl:3 no longer holds a text"):
        export(table, [3], tmp_path / "late.jsonl")
    assert not (tmp_path / "late.jsonl").exists()


def test_a_saved_hugging_face_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    images = [Image.fromarray(np.full((6, 6, 3), 30 * n, np.uint8)) for n in range(5)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    saved = datasets.Dataset.from_dict({"image": images, "label": [0, 1, 0, 1, 1]}, features=features)
    datasets.DatasetDict({"train": saved}).save_to_disk(str(tmp_path / "saved"))
    source = HuggingFaceDisk(tmp_path / "saved", column="image", label_column="label", split="train", size=4)
    table = describe(source, mean_colour, tmp_path / "v", label_key="label", progress=False)
    export(table, [4, 0], tmp_path / "list.txt")
    assert (tmp_path / "list.txt").read_text().split() == [f"{(tmp_path / 'saved').resolve()}[{i}]" for i in (4, 0)]
    export(table, [4, 0], tmp_path / "hf", format="hf")
    back = datasets.load_from_disk(str(tmp_path / "hf"))
    assert back["id"] == [4, 0] and back["label"] == [1, 0] and back.features["label"].names == ["a", "b"]
    assert np.asarray(back[0]["image"])[0, 0].tolist() == [120, 120, 120]
    export(table, [4], tmp_path / "copies", format="copies")
    (copy,) = (tmp_path / "copies" / "b").iterdir()
    assert copy.name == "4.png" and np.asarray(Image.open(copy))[0, 0].tolist() == [120, 120, 120]


def test_ids_from_files(tmp_path):
    np.save(tmp_path / "ids.npy", np.array([4, 2]))
    (tmp_path / "ids.txt").write_text("4\n2\n")
    assert read_ids(tmp_path / "ids.npy").tolist() == read_ids(tmp_path / "ids.txt").tolist() == [4, 2]
    (tmp_path / "bad.txt").write_text("4\nfour\n")
    with pytest.raises(ValueError, match="must hold one integer sample id a line"):
        read_ids(tmp_path / "bad.txt")
    np.save(tmp_path / "floats.npy", np.array([0.5]))
    with pytest.raises(ValueError, match="1-D array of integer sample ids"):
        read_ids(tmp_path / "floats.npy")
