"""A short quickstart that `make wheel-check` runs with an installed wheel, from outside the source tree: describe
an array of images with a tiny torch model, fit KMeans, curate and select, and check the answers.

    python quickstart.py compiled|plain   (the path the installed package must report)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

import curata
from curata import KMeans, TorchEmbedder, curate, describe, select
from curata.clustering.score_scan import scan_path


def main(expected: str) -> None:
    """Runs the steps and exits with an error message at the first wrong answer."""
    installed = Path(curata.__file__).resolve()
    if "site-packages" not in installed.parts:
        raise SystemExit(f"curata was imported from {installed}, not from an installed wheel")
    path = scan_path()
    if (path == "plain") != (expected == "plain"):
        raise SystemExit(f"the installed package runs the {path} path, {expected} was expected")
    # four groups of 8x8 images, each around its own pattern, so that the clusters are plain to see
    g = torch.Generator().manual_seed(0)
    patterns = torch.rand(4, 1, 8, 8, generator=g) * 4
    group = torch.arange(400) % 4
    images = (patterns[group] + 0.1 * torch.rand(400, 1, 8, 8, generator=g)).numpy()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with tempfile.TemporaryDirectory() as tmp:
        table = describe(images, TorchEmbedder(model, ["3"]), Path(tmp) / "vectors", batch_size=64, progress=False)
        X = table.vectors()
        if X.shape != (400, 6) or not np.isfinite(X).all():
            raise SystemExit(f"describe gave {X.shape} vectors")
        km = KMeans(4, seed=0).fit(table)
        # every group lands in one cluster of its own
        pairs = set(zip(group.tolist(), np.asarray(km.labels_).tolist()))
        if len(pairs) != 4 or len({label for _, label in pairs}) != 4:
            raise SystemExit(f"KMeans split the four groups as {sorted(pairs)}")
        picked = np.asarray(curate(np.asarray(km.labels_), 40, seed=0))
        if len(picked) != 40 or np.bincount(group.numpy()[picked], minlength=4).tolist() != [10, 10, 10, 10]:
            raise SystemExit(f"curate picked {len(picked)} rows, per group {np.bincount(group.numpy()[picked])}")
        chosen = np.asarray(select(table, 8))
        if len(chosen) != 8 or len(set(group.numpy()[chosen].tolist())) != 4:
            raise SystemExit(f"select's 8 rows cover groups {sorted(set(group.numpy()[chosen].tolist()))}")
    print(f"quickstart ok: curata {installed.parent}, {path} path, torch {torch.__version__}")


if __name__ == "__main__":
    main(sys.argv[1])
