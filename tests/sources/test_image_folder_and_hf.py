from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from curata import HuggingFaceDisk, ImageFolder, Unreadable, describe


def mean_colour(images: torch.Tensor) -> torch.Tensor:
    return images.float().mean(dim=(2, 3))


def test_a_corrupt_image_is_skipped_warned_and_recorded(tmp_path):
    digits = load_digits()
    for n in range(6):
        folder = tmp_path / "photos" / f"class{digits.target[n]}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((digits.images[n] * 15).astype(np.uint8)).save(folder / f"{n}.png")
    (tmp_path / "photos" / "class3" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    dataset = ImageFolder(tmp_path / "photos", size=8)
    broken = dataset.files.index(tmp_path / "photos" / "class3" / "broken.png")
    assert isinstance(dataset[broken], Unreadable) and "broken.png" in dataset[broken].where
    with pytest.warns(RuntimeWarning, match=r"skipped 1 unreadable samples \(.*broken.png: "):
        table = describe(dataset, mean_colour, tmp_path / "v", label_key="label", batch_size=3, progress=False)
    assert len(table) == 6 and broken not in table.sample_ids()
    assert [r["idx"] for r in table.get_attr("unreadable")] == [broken]


def test_hugging_face_dataset_from_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    digits = load_digits()
    images = [Image.fromarray((im * 15).astype(np.uint8)) for im in digits.images[:12]]
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=[str(d) for d in range(10)]),
            "text": datasets.Value("string"),
        }
    )
    saved = datasets.Dataset.from_dict(
        {"image": images, "label": digits.target[:12].tolist(), "text": [f"digit {d}" for d in digits.target[:12]]},
        features=features,
    )
    datasets.DatasetDict({"train": saved}).save_to_disk(str(tmp_path / "saved"))
    pictures = HuggingFaceDisk(tmp_path / "saved", column="image", label_column="label", split="train", size=8)
    assert len(pictures) == 12 and pictures.classes[:2] == ["0", "1"]
    item = pictures[5]
    assert (
        item["data"].shape == (3, 8, 8) and item["data"].dtype == torch.uint8 and int(item["label"]) == digits.target[5]
    )
    table = describe(pictures, mean_colour, tmp_path / "v", label_key="label", progress=False)
    assert np.array_equal(table.column("label"), digits.target[:12])
    texts = HuggingFaceDisk(tmp_path / "saved", column="text", split="train")
    assert texts[2] == {"data": "digit 2"}
    with pytest.raises(ValueError, match=r"holds the splits \['train'\]: pass split="):
        HuggingFaceDisk(tmp_path / "saved", column="image")
    with pytest.raises(ValueError, match="has no column 'img'"):
        HuggingFaceDisk(tmp_path / "saved", column="img", split="train")
    with pytest.raises(NotADirectoryError, match="not a folder written by save_to_disk"):
        HuggingFaceDisk(tmp_path / "missing", column="image")
