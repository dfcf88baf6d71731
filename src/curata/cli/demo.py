"""The demo: Fashion-MNIST (Debian's ``dataset-fashion-mnist``) described with EfficientNet-Lite0.

Run it with ``make demo`` or ``python -m curata.cli.demo --out runs/demo``.
"""

from __future__ import annotations

import argparse
import gzip
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from curata.batching.sampler import ClusterBatchSampler
from curata.clustering.clusterize import cluster
from curata.clustering.hierarchical import HierarchicalKMeans
from curata.clustering.kmeans import KMeans
from curata.embedding.embed import TorchEmbedder
from curata.embedding.job import describe
from curata.embedding.vectorize import Vectorizer
from curata.exploring.explorer import explore
from curata.exploring.report import report
from curata.models.images import ImagePreprocess, efficientnet_lite0
from curata.store.table import VectorTable
from curata.subsets.curate import curate

__all__ = [
    "FASHION_MNIST_DIR",
    "FashionMNIST",
    "CLASSES",
    "long_tailed",
    "kl_to_uniform",
    "run_describe",
    "run_curation",
    "run_smart_batches",
    "main",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class FashionMNIST(Dataset):
    """Fashion-MNIST from the IDX files of Debian's ``dataset-fashion-mnist``; items are dicts of uint8 images.

    Example (needs the Debian package)::

        ds = FashionMNIST("train")
        ds[0]["data"].shape, ds[0]["label"]  # (torch.Size([1, 28, 28]), tensor(9))
    """

    def __init__(self, split: str = "train", root: str | os.PathLike[str] = FASHION_MNIST_DIR) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        prefix = "train" if split == "train" else "t10k"
        root = Path(root)
        images, labels = root / f"{prefix}-images-idx3-ubyte.gz", root / f"{prefix}-labels-idx1-ubyte.gz"
        if not images.exists():
            raise FileNotFoundError(f"{images} is missing: install it with `apt-get install dataset-fashion-mnist`")
        self.images = torch.from_numpy(_read_idx(images).copy()).unsqueeze(1)
        self.labels = torch.from_numpy(_read_idx(labels).astype(np.int64))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"data": self.images[i], "label": self.labels[i]}


def long_tailed(labels: np.ndarray, base: int = 6000, ratio: float = 0.6) -> np.ndarray:
    """Indices keeping the first floor(base * ratio^c) images of class c: a long-tailed pool."""
    keep = [np.flatnonzero(labels == c)[: int(base * ratio**c)] for c in range(int(labels.max()) + 1)]
    return np.sort(np.concatenate(keep))


def run_describe(out: Path, indices: np.ndarray, size: int, batch_size: int) -> VectorTable:
    """Describe the chosen training images into ``out / "pool"``; prints what and how fast."""
    dataset = torch.utils.data.Subset(FashionMNIST("train"), indices.tolist())
    model = nn.Sequential(ImagePreprocess(size), efficientnet_lite0())
    embedder = TorchEmbedder(model, ["1._avg_pooling"])
    path = out / "pool"
    already = len(VectorTable.open(path).sample_ids()) if VectorTable.is_table(path) else 0
    start = time.perf_counter()
    table = describe(dataset, embedder, path, vectorizer=Vectorizer("mean"), batch_size=batch_size, label_key="label")
    seconds = time.perf_counter() - start
    print(f"stored {len(table)} vectors of dimension {table.dim} ({table.dtype}) at {table.path}")
    embedded = len(indices) - already
    if already:
        print(f"resumed: {already} images were already in the table, {embedded} embedded now")
    if embedded:
        print(f"describe took {seconds:.1f} s for {embedded} images ({embedded / seconds:.0f} images/s)")
    return table


def kl_to_uniform(labels: np.ndarray, classes: int = 10) -> float:
    """KL(label histogram || uniform), 0 for a perfectly balanced set."""
    p = np.bincount(labels, minlength=classes) / len(labels)
    return float(np.sum(p[p > 0] * np.log(p[p > 0] * classes)))


def run_curation(
    table: VectorTable, out: Path, target: int, levels: tuple[int, ...] = (500, 50), classes: int = 10
) -> tuple[HierarchicalKMeans, np.ndarray]:
    """Hierarchical k-means with resampling, then a balanced subset of ``target`` rows; prints the class balance."""
    start = time.perf_counter()
    tree = HierarchicalKMeans(list(levels), n_resampling_steps=5, n_iter=20, seed=0).fit(table, checkpoint=out / "tree")
    curated = curate(tree, target, seed=0)
    np.save(out / "curated_ids.npy", curated, allow_pickle=False)
    labels = table.column("label")
    print(
        f"hierarchical k-means {list(levels)} with 5 resampling steps and curate({target}) took "
        f"{time.perf_counter() - start:.1f} s"
    )
    for name, part in (("pool:   ", labels), ("curated:", labels[curated])):
        counts = np.bincount(part, minlength=classes).tolist()
        print(f"{name} {counts}  KL to uniform {kl_to_uniform(part, classes):.3f}")
    return tree, curated


def _label_tv(labels: np.ndarray, batch: list[int], overall: np.ndarray) -> float:
    histogram = np.bincount(labels[batch], minlength=len(overall)) / len(batch)
    return 0.5 * float(np.abs(histogram - overall).sum())


def run_smart_batches(
    table: VectorTable, n_clusters: int = 64, batch_size: int = 64, shown: int = 3, classes: int = 10
) -> ClusterBatchSampler:
    """Cluster the vectors, build a ClusterBatchSampler and print its first batches next to random ones."""
    start = time.perf_counter()
    clusters = cluster(table, KMeans(n_clusters, seed=0))
    sampler = ClusterBatchSampler(clusters, batch_size, seed=0)
    print(
        f"clustered {len(table)} vectors into {n_clusters} clusters in {time.perf_counter() - start:.1f} s; "
        f"the sampler gives {len(sampler)} batches of {batch_size}"
    )
    labels = table.column("label")
    overall = np.bincount(labels, minlength=classes) / len(labels)
    random_order = np.random.default_rng(0).permutation(len(labels))
    smart = list(sampler)
    for i in range(shown):
        batch, rand = smart[i], random_order[i * batch_size : (i + 1) * batch_size].tolist()
        print(
            f"batch {i}: smart: {len(set(clusters[batch].tolist()))} distinct clusters, label TV to the data "
            f"{_label_tv(labels, batch, overall):.3f}; random: {len(set(clusters[rand].tolist()))} clusters, "
            f"TV {_label_tv(labels, rand, overall):.3f}"
        )
    smart_tv = np.mean([_label_tv(labels, b, overall) for b in smart])
    random_tv = np.mean(
        [
            _label_tv(labels, random_order[j : j + batch_size].tolist(), overall)
            for j in range(0, len(labels), batch_size)
        ]
    )
    print(f"mean label TV over the epoch: smart {smart_tv:.3f}, random {random_tv:.3f}")
    return sampler


def main(argv: list[str] | None = None) -> None:
    """Command-line entry of the demo: describe -> hierarchical k-means -> curate -> smart batches -> report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="run directory")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels fed to the model")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--target", type=int, default=5000, help="size of the curated subset")
    parser.add_argument("--text", action="store_true", help="the text demo: Debian's fortunes, with MiniLM")
    args = parser.parse_args(argv)
    if args.text:
        from curata.cli.text_demo import run_text_demo

        run_text_demo(args.out, target=args.target)
        return
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    indices = long_tailed(FashionMNIST("train").labels.numpy())
    print(f"long-tailed Fashion-MNIST pool: {len(indices)} training images (class c keeps 6000 * 0.6^c)")
    table = run_describe(args.out, indices, args.size, args.batch_size)
    tree, curated = run_curation(table, args.out, args.target)
    sampler = run_smart_batches(table)
    index = report(table, args.out / "report", tree=tree, curated=curated, sampler=sampler)
    print(f"report: {index}")
    pool = torch.utils.data.Subset(FashionMNIST("train"), indices.tolist())
    page = explore(
        table, args.out / "explorer", source=pool, tree=tree, curated=curated, sampler=sampler, class_names=CLASSES
    )
    print(f"explorer: {page}")


if __name__ == "__main__":
    main()
