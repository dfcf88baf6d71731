"""describe() refuses a resume whose data, preprocessing or weights changed, and bad inputs before any write."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import torch
from conftest import DictImages, TupleImages
from torch import nn
from torch.utils.data import Dataset

from curata import TorchEmbedder, VectorTable, describe
from curata.embedding.content import CONTENT_SAMPLES
from curata.embedding.embed import embedder_fingerprint, reachable_weights


class Scaled(Dataset):
    """300 seeded rows, each multiplied by ``scale`` in __getitem__ (the dataset's transform); counts reads."""

    def __init__(self, scale: float = 1.0, n: int = 300) -> None:
        self.rows = torch.from_numpy(np.random.default_rng(0).random((n, 4), dtype=np.float32))
        self.scale = scale
        self.reads = 0

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        self.reads += 1
        return {"data": self.rows[i] * self.scale, "label": torch.tensor(i % 3)}


def stopping(model: nn.Module, batches: int):
    """An embedder that dies after ``batches`` batches: a job interrupted midway."""
    budget = [batches]

    def embed(batch: torch.Tensor) -> torch.Tensor:
        if budget[0] == 0:
            raise RuntimeError("killed")
        budget[0] -= 1
        return model(batch)

    return embed


def linear(seed: int = 0) -> nn.Linear:
    model = nn.Linear(4, 3)
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(np.random.default_rng(seed).normal(size=(3, 4)).astype(np.float32)))
        model.bias.zero_()
    return model


def interrupted(path, dataset: Dataset, model: nn.Module, **kwargs) -> VectorTable:
    with pytest.raises(RuntimeError, match="killed"):
        describe(dataset, stopping(model, 17), path, batch_size=10, commit_rows=10, progress=False, **kwargs)
    table = VectorTable.open(path)
    assert len(table) == 170
    return table


def test_resume_on_transformed_data_is_refused(tmp_path):
    model = linear()
    table = interrupted(tmp_path / "v", Scaled(1.0), model)
    version = table._dataset.version
    with pytest.raises(ValueError, match=r"the data's content changed \(sampled items differ.*delete this table"):
        describe(Scaled(1000.0), stopping(model, 10**6), tmp_path / "v", batch_size=10, progress=False)
    table = VectorTable.open(tmp_path / "v")
    assert len(table) == 170 and table._dataset.version == version  # nothing written
    resumed = describe(Scaled(1.0), stopping(model, 10**6), tmp_path / "v", batch_size=10, progress=False)
    whole = describe(Scaled(1.0), model, tmp_path / "whole", progress=False)
    order = np.argsort(resumed.column("idx"))
    np.testing.assert_allclose(resumed.vectors()[order], whole.vectors(), rtol=1e-6, atol=1e-6)
    assert resumed.fingerprint["content"]["sampled"] == CONTENT_SAMPLES


def test_retrained_model_behind_the_same_function_is_refused(tmp_path):
    model = linear()
    interrupted(tmp_path / "v", Scaled(), model)
    with torch.no_grad():
        model.weight.mul_(2)
    with pytest.raises(ValueError, match=r"the model's weights changed \(embedder.weights\)"):
        describe(Scaled(), stopping(model, 10**6), tmp_path / "v", batch_size=10, progress=False)
    assert len(VectorTable.open(tmp_path / "v")) == 170


def test_a_torch_embedder_reused_after_training_is_refused(tmp_path, cnn, images):
    embedder = TorchEmbedder(cnn)
    describe(torch.utils.data.Subset(images, range(20)), embedder, tmp_path / "v", progress=False)
    VectorTable.open(tmp_path / "v")._dataset.delete("idx >= 10")
    with torch.no_grad():
        cnn.head.bias.add_(1.0)  # the same TorchEmbedder instance, its model trained since
    with pytest.raises(ValueError, match="the model's weights changed"):
        describe(torch.utils.data.Subset(images, range(20)), embedder, tmp_path / "v", progress=False)


def test_a_torch_embedders_digest_follows_every_kind_of_weight_change():
    model = linear()
    embedder = TorchEmbedder(model)
    seen = [embedder.fingerprint()["weights"]]
    assert embedder.fingerprint()["weights"] == seen[0]
    for change in (
        lambda: model.load_state_dict({k: v + 1 for k, v in model.state_dict().items()}, assign=True),
        lambda: model.half(),
        lambda: setattr(model.weight, "data", model.weight.data * 2),
    ):
        change()
        seen.append(embedder.fingerprint()["weights"])
    assert len(set(seen)) == len(seen)


def test_weights_reachable_from_a_callable_are_hashed():
    model = linear()
    holder = type("Holder", (), {})()
    holder.net = model
    for embedder in (model.forward, functools.partial(lambda m, b: m(b), model), lambda b: holder.net(b)):
        before = embedder_fingerprint(embedder)
        assert before["weights"] is not None
        with torch.no_grad():
            model.bias.add_(1.0)
        assert embedder_fingerprint(embedder)["weights"] != before["weights"]
        assert embedder_fingerprint(embedder)["name"] == before["name"]
    assert [where for where, _ in reachable_weights(model.forward)] == ["__self__"]


GLOBAL_MODEL = linear()


def embed_with_global(batch: torch.Tensor) -> torch.Tensor:
    return GLOBAL_MODEL(batch)


def test_a_module_level_model_named_by_the_function_is_hashed():
    before = embedder_fingerprint(embed_with_global)["weights"]
    with torch.no_grad():
        GLOBAL_MODEL.bias.add_(1.0)
    try:
        assert embedder_fingerprint(embed_with_global)["weights"] != before
    finally:
        with torch.no_grad():
            GLOBAL_MODEL.bias.sub_(1.0)


def test_a_stated_fingerprint_replaces_the_content_hash(tmp_path):
    model = linear()
    data = Scaled()
    interrupted(tmp_path / "v", data, model, fingerprint={"version": 3})
    assert VectorTable.open(tmp_path / "v").fingerprint["content"] == {"stated": {"version": 3}}
    fresh = Scaled(1000.0)  # the user vouches for the data: its content is not read for a hash
    with pytest.raises(ValueError, match=r"stated fingerprint changed: table has \{'version': 3\}, this run has"):
        describe(fresh, stopping(model, 10**6), tmp_path / "v", fingerprint={"version": 4}, progress=False)
    assert fresh.reads == 1  # one item read, for the key checks
    with pytest.raises(ValueError, match="identified by fingerprint=.*passes none"):
        describe(Scaled(), stopping(model, 10**6), tmp_path / "v", progress=False)
    with torch.no_grad():
        model.bias.add_(1.0)
    with pytest.raises(ValueError, match="the model's weights changed"):  # weights are hashed all the same
        describe(Scaled(), stopping(model, 10**6), tmp_path / "v", fingerprint={"version": 3}, progress=False)
    with torch.no_grad():
        model.bias.sub_(1.0)
    table = describe(Scaled(), stopping(model, 10**6), tmp_path / "v", fingerprint={"version": 3}, progress=False)
    assert len(table) == 300


def test_a_random_transform_is_refused_unless_a_fingerprint_is_stated(tmp_path):
    class Noisy(Scaled):
        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            item = super().__getitem__(i)
            return {**item, "data": item["data"] + torch.rand(4)}  # an unseeded augmentation

    model = linear()
    interrupted(tmp_path / "v", Noisy(), model)
    with pytest.raises(ValueError, match="change from read to read needs fingerprint="):
        describe(Noisy(), stopping(model, 10**6), tmp_path / "v", progress=False)
    interrupted(tmp_path / "stated", Noisy(), model, fingerprint="noisy-v1")
    table = describe(Noisy(), stopping(model, 10**6), tmp_path / "stated", fingerprint="noisy-v1", progress=False)
    assert len(table) == 300


def test_a_table_of_an_older_curata_resumes_with_a_warning(tmp_path):
    model = linear()
    embed = stopping(model, 10**6)
    done = describe(Scaled(), embed, tmp_path / "new", batch_size=10, progress=False)
    old_fingerprint = {k: v for k, v in done.fingerprint.items() if k != "content"}
    old_fingerprint["embedder"] = {k: v for k, v in old_fingerprint["embedder"].items() if k != "weights"}
    old = VectorTable.create(tmp_path / "old", dim=3, fingerprint=old_fingerprint)
    keep = done.column("idx") < 170
    old.append(done.column("idx")[keep], done.column("idx_vector")[keep], done.vectors()[keep])
    with pytest.warns(RuntimeWarning, match="older curata.*the data's content nor a plain callable"):
        resumed = describe(Scaled(), embed, tmp_path / "old", batch_size=10, progress=False)
    order = np.argsort(resumed.column("idx"))
    np.testing.assert_allclose(resumed.vectors()[order], done.vectors(), rtol=1e-6, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a table of this curata resumes silently
        describe(Scaled(), embed, tmp_path / "new", batch_size=10, progress=False)


def test_a_label_key_the_items_lack_fails_before_writing(tmp_path):
    with pytest.raises(ValueError, match="label_key 'label' needs dict items; this dataset gives tuples"):
        describe(TupleImages(), nn.Flatten(), tmp_path / "v", label_key="label", progress=False)
    with pytest.raises(KeyError, match="label_key 'cls' is not in the dataset's items"):
        describe(DictImages(), nn.Flatten(), tmp_path / "v", label_key="cls", progress=False)
    with pytest.raises(ValueError, match="label_key 'label' needs dict items; this dataset gives Tensor"):
        describe(np.ones((5, 3), np.float32), nn.Identity(), tmp_path / "v", label_key="label", progress=False)
    assert not (tmp_path / "v").exists()


def test_meta_tensors_fail_before_writing(tmp_path, cnn, images):
    with pytest.raises(ValueError, match=r"^embedder: the model's weight 'stem.0.weight' is on the 'meta' device"):
        describe(images, cnn.to("meta"), tmp_path / "v", progress=False)
    real = linear()
    with pytest.raises(ValueError, match=r"^embedder: it runs on the 'meta' device \(device\)"):
        describe(Scaled(), TorchEmbedder(real, device="meta"), tmp_path / "v", progress=False)
    meta_model = linear().to("meta")
    with pytest.raises(ValueError, match=r"^embedder: the model's weight 'meta_model.weight' is on the 'meta'"):
        describe(Scaled(), lambda batch: meta_model(batch), tmp_path / "v", progress=False)

    class MetaItems(Scaled):
        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {**super().__getitem__(i), "data": torch.empty(4, device="meta")}

    with pytest.raises(ValueError, match=r"^dataset: item \d+ holds a tensor on the 'meta' device"):
        describe(MetaItems(), real, tmp_path / "v", progress=False)
    with pytest.raises(ValueError, match=r"^dataset: item 0 holds a tensor on the 'meta' device"):
        describe(MetaItems(), real, tmp_path / "v", fingerprint="v1", progress=False)
    with pytest.raises(TypeError, match="fingerprint must be a JSON value"):
        describe(Scaled(), real, tmp_path / "v", fingerprint=object(), progress=False)
    assert not (tmp_path / "v").exists()
