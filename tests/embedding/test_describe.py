from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DictImages, TupleImages
from torch import nn

from curata import TorchEmbedder, Vectorizer, VectorTable, describe


def sorted_rows(table: VectorTable) -> tuple[np.ndarray, np.ndarray]:
    keys = np.stack([table.column("idx"), table.column("idx_vector")], axis=1)
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    return keys[order], table.vectors()[order]


def test_dict_dataset_with_labels(tmp_path, cnn, images):
    table = describe(images, TorchEmbedder(cnn), tmp_path / "v", batch_size=6, label_key="label", progress=False)
    assert len(table) == 20 and table.dim == 5
    assert np.array_equal(table.column("idx"), np.arange(20))
    assert np.array_equal(table.column("label"), images.labels.numpy())
    expected = cnn.eval()(images.images).detach().numpy()
    np.testing.assert_allclose(table.vectors(), expected, rtol=1e-5, atol=1e-6)
    assert table.fingerprint["dataset_length"] == 20


def test_tuple_dataset_takes_labels(tmp_path, cnn):
    table = describe(TupleImages(), cnn, tmp_path / "v", progress=False)
    assert table.has_labels
    assert np.array_equal(table.column("label"), np.arange(20) % 3)


def test_array_dataset_and_callable_embedder(tmp_path, rng):
    data = rng.random((30, 4), dtype=np.float32)
    table = describe(data, lambda batch: batch * 2, tmp_path / "v", batch_size=7, progress=False)
    np.testing.assert_array_equal(table.vectors(), data * 2)
    assert not table.has_labels


def test_multi_vector_with_mask(tmp_path, cnn, images):
    vectorizer = Vectorizer(mask_key="mask")
    table = describe(images, TorchEmbedder(cnn, ["stem"]), tmp_path / "v", vectorizer=vectorizer, progress=False)
    assert len(table) == int(images.masks.sum())
    keys, _ = sorted_rows(table)
    assert len(np.unique(keys, axis=0)) == len(keys)
    first = keys[keys[:, 0] == 0, 1]
    assert np.array_equal(first, np.flatnonzero(images.masks[0].reshape(-1).numpy()))


def test_max_vectors_and_float16(tmp_path, cnn, images):
    table = describe(
        images,
        TorchEmbedder(cnn, ["stage"]),
        tmp_path / "v",
        vectorizer=Vectorizer(max_vectors=3),
        dtype="float16",
        progress=False,
    )
    assert len(table) == 60 and table.dtype == "float16" and table.dim == 6
    assert np.bincount(table.column("idx")).tolist() == [3] * 20


def test_custom_collate(tmp_path, rng):
    items = [{"x": rng.random(3, dtype=np.float32)} for _ in range(9)]

    def collate(batch):
        return {"data": torch.as_tensor(np.stack([b["x"] for b in batch]))}

    table = describe(items, nn.Identity(), tmp_path / "v", collate_fn=collate, batch_size=4, progress=False)
    np.testing.assert_array_equal(table.vectors(), np.stack([i["x"] for i in items]))


def test_rerun_with_same_settings_does_nothing(tmp_path, cnn, images):
    describe(images, cnn, tmp_path / "v", progress=False)
    version = VectorTable.open(tmp_path / "v")._dataset.version
    table = describe(images, cnn, tmp_path / "v", progress=False)
    assert len(table) == 20 and table._dataset.version == version


def test_resume_embeds_only_missing(tmp_path, cnn, images):
    part = torch.utils.data.Subset(images, range(20))
    describe(part, cnn, tmp_path / "v", batch_size=4, progress=False)
    table = VectorTable.open(tmp_path / "v")
    # drop the rows of some samples, as if their commits never happened
    table._dataset.delete("idx >= 13")
    seen = []

    def counting(batch):
        seen.extend([1] * len(batch))
        return cnn(batch)

    counting.fingerprint = lambda: table.fingerprint["embedder"]
    describe(part, counting, tmp_path / "v", batch_size=4, progress=False)
    assert len(seen) == 7
    assert np.array_equal(np.sort(VectorTable.open(tmp_path / "v").column("idx")), np.arange(20))


def test_fingerprint_mismatch_says_what_differs(tmp_path, cnn, images):
    describe(images, TorchEmbedder(cnn, ["stem"]), tmp_path / "v", vectorizer=Vectorizer("mean"), progress=False)
    with pytest.raises(ValueError, match=r"embedder.layers.*vectorizer.pool"):
        describe(images, TorchEmbedder(cnn, ["stage"]), tmp_path / "v", vectorizer=Vectorizer("max"), progress=False)
    with pytest.raises(ValueError, match="dataset_length: table has 20, this run has 10"):
        describe(
            DictImages(10), TorchEmbedder(cnn, ["stem"]), tmp_path / "v", vectorizer=Vectorizer("mean"), progress=False
        )
    with torch.no_grad():
        cnn.stem[0].bias.add_(1)
    with pytest.raises(ValueError, match="embedder.weights"):
        describe(images, TorchEmbedder(cnn, ["stem"]), tmp_path / "v", vectorizer=Vectorizer("mean"), progress=False)
    assert len(VectorTable.open(tmp_path / "v")) == 20


def test_bad_input_fails_before_writing(tmp_path, cnn, images):
    path = tmp_path / "v"
    with pytest.raises(ValueError, match="dataset is empty"):
        describe(DictImages(0), cnn, path, progress=False)
    with pytest.raises(ValueError, match="not in the model"):
        describe(images, TorchEmbedder(cnn, ["stemm"]), path, progress=False)
    with pytest.raises(TypeError, match="not a torch.Tensor"):
        describe(images, lambda batch: batch.numpy(), path, progress=False)

    def poisoned(batch):
        out = batch.flatten(1).clone()
        out[batch.flatten(1)[:, 0] == images.images[13].flatten()[0]] = float("nan")
        return out

    with pytest.raises(ValueError, match="sample idx 13 holds NaN or inf"):
        describe(images, poisoned, path, batch_size=20, progress=False)
    with pytest.raises(KeyError, match="data_key 'image'"):
        describe(images, cnn, path, data_key="image", progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        describe(images, cnn, path, batch_size=0, progress=False)
    with pytest.raises(TypeError, match="embedder"):
        describe(images, 42, path, progress=False)
    assert not path.exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not a VectorTable"):
        describe(images, cnn, tmp_path / "mine", progress=False)
    assert os.listdir(tmp_path / "mine") == ["keep.txt"]


def test_dimension_change_is_refused(tmp_path, rng):
    data = rng.random((10, 4), dtype=np.float32)

    def widening(batch):
        return batch if batch.shape[0] > 3 else torch.cat([batch, batch], dim=1)

    with pytest.raises(ValueError, match="dimension 8, the table holds 4"):
        describe(data, widening, tmp_path / "v", batch_size=4, commit_rows=4, progress=False)
    assert len(VectorTable.open(tmp_path / "v")) == 8  # the good batches before it stay, nothing else


JOB = """
import sys, time, torch
sys.path.insert(0, {tests!r})
from conftest import DictImages, TinyCNN
from curata import TorchEmbedder, Vectorizer, describe
torch.manual_seed(0)
model = TinyCNN()
model.stem.register_forward_pre_hook(lambda m, i: time.sleep({delay}))
describe(DictImages(120), TorchEmbedder(model, ["stem"]), {path!r}, vectorizer=Vectorizer(max_vectors=3, seed=5),
         batch_size=8, commit_rows=16, label_key="label", progress=False)
"""


def run_job(path: Path, delay: float) -> subprocess.Popen:
    code = textwrap.dedent(JOB.format(tests=str(Path(__file__).parents[1]), delay=delay, path=str(path)))
    return subprocess.Popen([sys.executable, "-c", code])


def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path):
    reference = tmp_path / "reference"
    assert run_job(reference, 0.0).wait(timeout=120) == 0
    crashed = tmp_path / "crashed"
    job = run_job(crashed, 0.05)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if VectorTable.is_table(crashed) and len(VectorTable.open(crashed)) >= 48:
            break
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)
    job.wait()
    partial = len(VectorTable.open(crashed))
    assert 0 < partial < 360, "the kill must land mid-run"
    assert run_job(crashed, 0.0).wait(timeout=120) == 0
    want_keys, want_vectors = sorted_rows(VectorTable.open(reference))
    got_keys, got_vectors = sorted_rows(VectorTable.open(crashed))
    assert len(got_keys) == 360
    assert len(np.unique(got_keys, axis=0)) == 360
    assert np.array_equal(got_keys, want_keys)
    np.testing.assert_allclose(got_vectors, want_vectors, rtol=1e-6, atol=1e-6)


def test_hugging_face_dataset(tmp_path, rng, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    pixels = rng.random((12, 4), dtype=np.float32)
    hf = datasets.Dataset.from_dict({"pixels": pixels.tolist(), "label": [i % 2 for i in range(12)]})
    table = describe(
        hf, nn.Identity(), tmp_path / "v", data_key="pixels", label_key="label", batch_size=5, progress=False
    )
    np.testing.assert_array_equal(table.vectors(), pixels)
    assert table.column("label").tolist() == [i % 2 for i in range(12)]


def test_worker_processes_give_the_same_table(tmp_path, cnn, images):
    one = describe(images, cnn, tmp_path / "one", batch_size=4, label_key="label", progress=False)
    two = describe(images, cnn, tmp_path / "two", batch_size=4, num_workers=2, label_key="label", progress=False)
    np.testing.assert_allclose(two.vectors(), one.vectors(), rtol=1e-6, atol=1e-6)
    assert np.array_equal(two.column("idx"), one.column("idx"))


def test_the_first_batch_is_committed_at_once(tmp_path, rng):
    """A job stopped after its first batches (here: failing at the third) leaves a table to resume from, even
    with a commit interval far beyond what it embedded."""
    data = rng.random((40, 4), dtype=np.float32)
    path = tmp_path / "v"
    seen = []

    def embed(batch):
        seen.append(len(VectorTable.open(path)) if VectorTable.is_table(path) else None)
        if len(seen) == 3:
            raise RuntimeError("stopped")
        return batch

    with pytest.raises(RuntimeError, match="stopped"):
        describe(data, embed, path, batch_size=8, commit_rows=10**6, progress=False)
    assert seen == [None, 8, 8]  # committed before the second batch was embedded
    assert len(VectorTable.open(path)) == 16  # the second batch was kept as the job stopped


def test_a_resume_says_how_many_samples_it_found(tmp_path, rng, capsys):
    data = rng.random((12, 4), dtype=np.float32)
    describe(data, nn.Identity(), tmp_path / "v", progress=True)
    assert "resuming" not in capsys.readouterr().err
    VectorTable.open(tmp_path / "v")._dataset.delete("idx >= 7")  # as if the job had stopped there
    describe(data, nn.Identity(), tmp_path / "v", progress=False)
    assert "resuming" not in capsys.readouterr().err  # quiet without progress
    VectorTable.open(tmp_path / "v")._dataset.delete("idx >= 7")
    describe(data, nn.Identity(), tmp_path / "v", progress=True)
    assert "resuming: 7 of 12 samples already in the table" in capsys.readouterr().err
