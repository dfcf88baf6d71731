from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits
from torch import nn

from curata import Unreadable, VectorTable, WebDatasetShards, describe


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def write_shard(path, samples: list[dict[str, bytes]], first: int) -> None:
    with tarfile.open(path, "w") as tar:
        for n, members in enumerate(samples):
            for extension, content in members.items():
                info = tarfile.TarInfo(f"{first + n:06d}.{extension}")
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))


def digit_samples(count: int, start: int = 0) -> tuple[list[dict[str, bytes]], np.ndarray]:
    digits = load_digits()
    images = (digits.images[start : start + count] * 15).astype(np.uint8)
    labels = digits.target[start : start + count]
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    samples = [
        {
            "png": png(image),
            "cls": str(int(label)).encode(),
            "json": json.dumps({"name": names[int(label)]}).encode(),
            "txt": f"a handwritten {names[int(label)]}".encode(),
        }
        for image, label in zip(images, labels)
    ]
    return samples, labels


class Pooled(nn.Module):
    """A seeded conv net on uint8 images: (B, 3, H, W) -> (B, 6)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 3, padding=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.conv(images.float() / 255).mean(dim=(2, 3))


@pytest.fixture()
def shards(tmp_path):
    first, labels_a = digit_samples(30)
    second, labels_b = digit_samples(20, start=30)
    write_shard(tmp_path / "shard-000.tar", first, 0)
    write_shard(tmp_path / "shard-001.tar", second, 30)
    return tmp_path, np.concatenate([labels_a, labels_b])


def test_reads_images_labels_and_text_in_stable_order(shards):
    folder, labels = shards
    dataset = WebDatasetShards(str(folder / "shard-*.tar"), label="cls", size=16)
    assert len(dataset) == 50 and dataset.keys[:2] == ["000000", "000001"] and dataset.keys[-1] == "000049"
    assert [int(dataset[i]["label"]) for i in range(50)] == labels.tolist()
    item = dataset[7]
    assert item["data"].dtype == torch.uint8 and item["data"].shape == (3, 16, 16)
    by_name = WebDatasetShards([folder / "shard-000.tar", folder / "shard-001.tar"], label="name")
    assert by_name.classes[:3] == ["eight", "five", "four"]
    assert [by_name.classes[by_name.labels[i]] for i in range(3)] == ["zero", "one", "two"]
    texts = WebDatasetShards(str(folder / "*.tar"), data="text")
    assert texts[3] == {"data": "a handwritten three"}


def test_bad_arguments_are_named(shards, tmp_path):
    folder, _ = shards
    with pytest.raises(FileNotFoundError, match="matches no file"):
        WebDatasetShards(str(folder / "nothing-*.tar"))
    with pytest.raises(ValueError, match="data must be 'image' or 'text'"):
        WebDatasetShards(str(folder / "*.tar"), data="audio")
    with pytest.raises(ValueError, match=r"label='topic': .*000000.json has no 'topic' field \(\['name'\]\)"):
        WebDatasetShards(str(folder / "*.tar"), label="topic")
    (tmp_path / "plain.tar").write_bytes(b"\x1f\x8b" + bytes(600))
    with pytest.raises(ValueError, match="gzip-compressed"):
        WebDatasetShards(tmp_path / "plain.tar")
    (tmp_path / "junk.tar").write_bytes(b"junk" * 300)
    with pytest.raises(ValueError, match="is not a tar file"):
        WebDatasetShards(tmp_path / "junk.tar")


def test_damaged_shards_are_skipped_counted_and_reported(tmp_path):
    samples, labels = digit_samples(12)
    samples[4]["png"] = b"this is not an image at all" * 10
    del samples[6]["png"]
    write_shard(tmp_path / "a.tar", samples, 0)
    raw = bytearray((tmp_path / "a.tar").read_bytes())
    # junk over the header of sample 9's first member: the members after it must still be found
    with tarfile.open(tmp_path / "a.tar") as tar:
        hit = next(m for m in tar.getmembers() if m.name == "000009.png")
    raw[hit.offset : hit.offset + 512] = b"\xab" * 512
    (tmp_path / "a.tar").write_bytes(bytes(raw))
    cut, _ = digit_samples(3, start=12)
    write_shard(tmp_path / "b.tar", cut, 12)
    whole = (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "b.tar") as tar:
        last = next(m for m in tar.getmembers() if m.name == "000014.png")
    (tmp_path / "b.tar").write_bytes(whole[: last.offset_data + 40])  # the last image is cut short
    with pytest.warns(RuntimeWarning, match="2 damaged regions") as caught:
        dataset = WebDatasetShards([tmp_path / "a.tar", tmp_path / "b.tar"], size=8)
    message = str(caught[0].message)
    assert "a.tar: bytes" in message and "000014.png: cut short" in message
    assert dataset.keys == [f"{i:06d}" for i in range(15)]  # sample 9 keeps its other members
    assert isinstance(dataset[4], Unreadable) and "000004.png" in dataset[4].where
    assert isinstance(dataset[6], Unreadable) and "no .jpg member" in dataset[6].reason
    assert isinstance(dataset[9], Unreadable) and isinstance(dataset[14], Unreadable)
    assert "cut short" in dataset[14].reason

    with pytest.warns(RuntimeWarning, match="describe: skipped 4 unreadable samples"):
        table = describe(dataset, Pooled(), tmp_path / "v", batch_size=4, progress=False)
    assert sorted(table.sample_ids().tolist()) == [0, 1, 2, 3, 5, 7, 8, 10, 11, 12, 13]
    recorded = table.get_attr("unreadable")
    assert [r["idx"] for r in recorded] == [4, 6, 9, 14] and "not an image" not in recorded[0]["reason"]


class CrashAfter:
    """The Pooled net, raising after ``calls`` batches: a job that dies midway."""

    def __init__(self, calls: int) -> None:
        self.net, self.calls = Pooled(), calls

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.calls -= 1
        if self.calls < 0:
            raise RuntimeError("killed")
        return self.net(batch)

    def fingerprint(self) -> dict[str, str]:
        return {"kind": "pooled"}


def test_resume_after_a_crash_gives_the_uninterrupted_table(shards, tmp_path):
    folder, labels = shards
    dataset = WebDatasetShards(str(folder / "*.tar"), label="cls", size=8)
    whole = describe(
        dataset, CrashAfter(10**6), tmp_path / "whole", batch_size=4, commit_rows=4, label_key="label", progress=False
    )
    with pytest.raises(RuntimeError, match="killed"):
        describe(
            dataset, CrashAfter(5), tmp_path / "resumed", batch_size=4, commit_rows=4, label_key="label", progress=False
        )
    assert len(VectorTable.open(tmp_path / "resumed")) == 20
    again = WebDatasetShards(str(folder / "*.tar"), label="cls", size=8)  # a new process reads the shards again
    resumed = describe(
        again, CrashAfter(10**6), tmp_path / "resumed", batch_size=4, commit_rows=4, label_key="label", progress=False
    )
    order = np.argsort(resumed.sample_ids())
    assert np.array_equal(resumed.sample_ids()[order], whole.sample_ids())
    assert resumed.vectors()[order].tobytes() == whole.vectors().tobytes()
    assert np.array_equal(resumed.column("label")[order], labels)
    other = WebDatasetShards(str(folder / "shard-000.tar"), label="cls", size=8)
    with pytest.raises(ValueError, match="different job.*source"):
        describe(other, CrashAfter(10**6), tmp_path / "resumed", label_key="label", progress=False)


KILLED_JOB = """
import sys, time, torch
sys.path.insert(0, {tests!r})
from test_webdataset import Pooled
from curata import WebDatasetShards, describe

model = Pooled()
model.register_forward_pre_hook(lambda *_: time.sleep(0.2))  # time for the test to see a commit and kill it
dataset = WebDatasetShards({pattern!r}, label="cls", size=8)
describe(dataset, model, {path!r}, batch_size=4, commit_rows=4, label_key="label", progress=False)
"""


def test_resume_after_sigkill(shards, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    folder, labels = shards
    pattern, path = str(folder / "*.tar"), str(tmp_path / "killed")
    script = KILLED_JOB.format(tests=os.path.dirname(__file__), pattern=pattern, path=path)
    child = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if VectorTable.is_table(path) and len(VectorTable.open(path)) >= 12:
            break
        time.sleep(0.05)
    assert child.poll() is None, child.stderr.read().decode()[-2000:]
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    stored = len(VectorTable.open(path))
    assert 12 <= stored < 50
    dataset = WebDatasetShards(pattern, label="cls", size=8)
    resumed = describe(dataset, Pooled(), path, batch_size=4, commit_rows=4, label_key="label", progress=False)
    whole = describe(dataset, Pooled(), tmp_path / "whole", batch_size=4, label_key="label", progress=False)
    order = np.argsort(resumed.sample_ids())
    assert len(resumed) == 50 and np.array_equal(resumed.sample_ids()[order], whole.sample_ids())
    assert np.allclose(resumed.vectors()[order], whole.vectors(), atol=1e-6)
    assert np.array_equal(resumed.column("label")[order], labels)
