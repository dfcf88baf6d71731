from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from curata import HierarchicalKMeans, KMeans, VectorTable, dedup, leakage, select
from curata.store.cosine_check import cosine_spread, warn_if_degenerate


@pytest.fixture(scope="module")
def pooled_features() -> np.ndarray:
    """300 real digits through EfficientNet-Lite0 (ImageNet weights), its 4th block average-pooled: all-positive
    features whose median pairwise cosine is 0.98."""
    pytest.importorskip("efficientnet_lite_pytorch", reason="efficientnet-lite-pytorch is not installed")
    from sklearn.datasets import load_digits

    from curata.models import load_model

    images = torch.from_numpy((load_digits().images[:300] * 15).astype(np.uint8)).unsqueeze(1)
    embedder = load_model("efficientnet-lite0", size=64).embedder(["_blocks.3"])
    with torch.no_grad():
        return torch.cat([embedder(images[i : i + 100]).mean(dim=(2, 3)) for i in range(0, 300, 100)]).numpy()


def test_fires_on_raw_pooled_cnn_features_and_not_on_centred_ones(pooled_features, tmp_path):
    features = pooled_features
    median, low, rows = cosine_spread(features)
    assert median > 0.95 and rows == 300
    with pytest.warns(RuntimeWarning, match=r"KMeans\(metric='cosine'\): the rows are nearly parallel: the median"):
        KMeans(5, metric="cosine", seed=0, n_iter=3).fit(features)
    centred = features - features.mean(axis=0)
    assert abs(cosine_spread(centred)[0]) < 0.2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KMeans(5, metric="cosine", seed=0, n_iter=3).fit(centred)
        HierarchicalKMeans([20, 4], n_iter=3, seed=0, metric="cosine").fit(centred)
        select(centred, 10, method="kcenter", metric="cosine")
        dedup(features)  # whitened space by default: no warning
    table = VectorTable.from_arrays(tmp_path / "t", features)
    with pytest.warns(RuntimeWarning, match="nearly parallel") as caught:
        HierarchicalKMeans([20, 4], n_iter=3, seed=0, metric="cosine").fit(table)
    assert len([w for w in caught if "nearly parallel" in str(w.message)]) == 1  # once, not once per level
    for run in (
        lambda: select(features, 10, method="kcenter", metric="cosine"),
        lambda: leakage({"a": np.arange(10), "b": np.arange(10, 20)}, features, space="raw"),
        lambda: dedup(features, space="raw", max_removed=1.0),
    ):
        with pytest.warns(RuntimeWarning, match="nearly parallel"):
            run()


def test_the_spread_is_seeded_and_sampled():
    X = np.random.default_rng(1).random((3000, 8)) + 2
    assert cosine_spread(X, seed=3) == cosine_spread(X, seed=3)
    assert cosine_spread(X)[2] == 1000
    assert warn_if_degenerate(np.eye(4), "identity") == 0.0
