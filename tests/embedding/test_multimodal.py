from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from curata import MultimodalEmbedder, TorchEmbedder, Vectorizer, describe


def towers(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    image = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    text = nn.Sequential(nn.Embedding(20, 4), nn.Flatten(), nn.Linear(12, 4))
    return image.eval(), text.eval()


class Captioned(Dataset):
    """Images with a 3-token caption each: dict items whose data is itself a dict of modalities."""

    def __init__(self, count: int = 10) -> None:
        rng = np.random.default_rng(0)
        self.images = torch.from_numpy(rng.random((count, 1, 8, 8), dtype=np.float32))
        self.captions = torch.from_numpy(rng.integers(0, 20, (count, 3)))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"data": {"image": self.images[i], "text": self.captions[i]}, "label": i % 2}


@pytest.mark.parametrize("fusion", ["concat", "mean", "sum", "max"])
def test_fuses_each_modality_embedding(fusion):
    image, text = towers()
    data = Captioned()
    with torch.no_grad():
        a, b = image(data.images), text(data.captions)
    expected = {
        "concat": torch.cat([a, b], dim=1),
        "mean": (a + b) / 2,
        "sum": a + b,
        "max": torch.maximum(a, b),
    }[fusion]
    got = MultimodalEmbedder({"image": image, "text": text}, fusion=fusion)(
        {"image": data.images, "text": data.captions}
    )
    torch.testing.assert_close(got, expected)


def test_tokens_and_maps_are_fused_like_layers():
    tokens = MultimodalEmbedder({"a": lambda x: x, "b": lambda x: x * 2}, fusion="sum")
    torch.testing.assert_close(tokens({"a": torch.ones(2, 5, 3), "b": torch.ones(2, 5, 3)}), torch.full((2, 5, 3), 3.0))
    mixed = MultimodalEmbedder({"map": lambda x: x, "vector": lambda x: x})
    out = mixed({"map": torch.rand(2, 3, 4, 4), "vector": torch.rand(2, 5)})
    assert out.shape == (2, 8, 4, 4)  # the vector spread over every position of the map


def test_describe_stores_the_fused_vectors_and_refuses_a_changed_modality(tmp_path):
    image, text = towers()
    data = Captioned()
    embedder = MultimodalEmbedder({"image": TorchEmbedder(image), "text": text})
    table = describe(data, embedder, tmp_path / "v", batch_size=4, label_key="label", progress=False)
    with torch.no_grad():
        expected = torch.cat([image(data.images), text(data.captions)], dim=1).numpy()
    np.testing.assert_allclose(table.vectors(), expected, rtol=1e-5, atol=1e-6)
    assert table.column("label").tolist() == [i % 2 for i in range(10)]
    assert table.fingerprint["embedder"]["kind"] == "MultimodalEmbedder"
    _, other_text = towers(seed=1)
    with pytest.raises(ValueError, match=r"embedder\.embedders\.text\.weights"):
        describe(data, MultimodalEmbedder({"image": image, "text": other_text}), tmp_path / "v", progress=False)
    pooled = Vectorizer("mean")  # a vectorizer still applies to the fused output
    assert len(describe(data, embedder, tmp_path / "w", vectorizer=pooled, progress=False)) == 10


def test_bad_input():
    image, text = towers()
    both = MultimodalEmbedder({"image": image, "text": text})
    with pytest.raises(KeyError, match=r"lacks the modalities \['text'\]"):
        both({"image": torch.rand(2, 1, 8, 8)})
    with pytest.raises(TypeError, match="needs a dict batch"):
        both(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="non-empty dict"):
        MultimodalEmbedder({})
    with pytest.raises(ValueError, match="fusion must be one of"):
        MultimodalEmbedder({"image": image}, fusion="avg")
    with pytest.raises(TypeError, match="embedder must be"):
        MultimodalEmbedder({"image": 3})
    with pytest.raises(ValueError, match="same number of channels"):
        MultimodalEmbedder({"a": lambda x: x, "b": lambda x: x}, fusion="mean")(
            {"a": torch.ones(2, 3), "b": torch.ones(2, 4)}
        )
    with pytest.raises(ValueError, match="different batch sizes"):
        MultimodalEmbedder({"a": lambda x: x, "b": lambda x: x})({"a": torch.ones(2, 3), "b": torch.ones(3, 3)})
    with pytest.raises(TypeError, match="the 'a' embedder must return"):
        MultimodalEmbedder({"a": lambda x: x.tolist()})({"a": torch.ones(2, 3)})
