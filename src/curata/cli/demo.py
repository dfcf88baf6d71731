"""The demo: Fashion-MNIST (Debian's ``dataset-fashion-mnist``) made long-tailed, written out as an image folder,
described with EfficientNet-Lite0, curated without and with labels, batched, and exported as a file list.

Run it with ``make demo`` or ``curata demo --out runs/demo``; ``--record FILE`` also writes what it prints to FILE,
headed by the date, the machine and the command (``docs/demo/fashion-mnist.txt`` is such a record).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gzip
import io
import os
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
from torch.utils.data import Dataset

from curata.batching.sampler import ClusterBatchSampler
from curata.clustering.clusterize import cluster
from curata.clustering.hierarchical import HierarchicalKMeans
from curata.clustering.kmeans import KMeans
from curata.embedding.job import describe
from curata.exploring.explorer import explore
from curata.exploring.report import report
from curata.exporting.export import export
from curata.models.presets import load_model
from curata.sources.images import ImageFolder
from curata.store.table import VectorTable
from curata.subsets.curate import curate
from curata.subsets.label_shares import BalanceReport, balance

__all__ = [
    "FASHION_MNIST_DIR",
    "FashionMNIST",
    "CLASSES",
    "FOLDERS",
    "long_tailed",
    "write_image_folder",
    "run_describe",
    "balance_table",
    "run_curation",
    "run_smart_batches",
    "run_export",
    "recorded_output",
    "main",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
# the tree the evidence chose: of l2 [300, 30], l2 [500, 50], cosine [500, 50] and cosine [1000, 100, 10], the
# last gave the highest rarest-5 accuracy without labels (docs/evidence.md, study 8, 6 paired seeds)
TREE_METRIC, TREE_LEVELS = "cosine", (1000, 100, 10)
TREE_WHY = "the tree of the highest rarest-5 probe accuracy without labels in docs/evidence.md, study 8"
BY_LABEL = "demo: curate by label (balanced shares, uniform within each)"  # what chose the exported subset
FOLDERS = [name.lower().replace("/", "-").replace(" ", "-") for name in CLASSES]  # a class folder per label


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


def write_image_folder(root: Path, images: FashionMNIST, indices: np.ndarray) -> Path:
    """Write the chosen images as PNGs into ``root/<class>/<index>.png`` (the layout users have); returns ``root``.

    Written into a folder beside ``root`` and renamed into place when complete, so a rerun finds either every
    image or none; an existing ``root`` is kept as it is.
    """
    from PIL import Image

    if root.is_dir():
        return root
    partial = root.with_name(root.name + ".partial")
    if partial.exists():
        import shutil

        shutil.rmtree(partial)
    for folder in FOLDERS:
        (partial / folder).mkdir(parents=True)
    labels = images.labels.numpy()
    for i in indices.tolist():
        Image.fromarray(images.images[i, 0].numpy(), mode="L").save(partial / FOLDERS[labels[i]] / f"{i:05d}.png")
    partial.rename(root)
    return root


def run_describe(out: Path, images: ImageFolder, size: int, batch_size: int) -> VectorTable:
    """Describe the image folder into ``out / "pool"`` with EfficientNet-Lite0, read back centred and L2-normalised
    (pooled CNN features are nearly parallel until centred: cosine needs it); prints what and how fast."""
    embedder = load_model("efficientnet-lite0", size=size).embedder()
    path = out / "pool"
    already = len(VectorTable.open(path).sample_ids()) if VectorTable.is_table(path) else 0
    start = time.perf_counter()
    try:
        table = describe(
            images, embedder, path, batch_size=batch_size, label_key="label", normalize="center+l2", progress=False
        )
    except ValueError as error:
        if "was made by a different job" not in str(error):
            raise
        raise ValueError(f"{str(out)!r} holds the run of another demo version: remove that folder, then run again "
                         f"({error})") from None  # fmt: skip
    seconds = time.perf_counter() - start
    print(f"stored {len(table)} vectors of dimension {table.dim} ({table.dtype}) at {table.path}")
    embedded = len(images) - already
    if already and not embedded:
        print(f"describe: all {already} images were already in the table")
    elif already:
        print(f"resumed: {already} images were already in the table, {embedded} embedded now")
    if embedded:
        print(f"describe took {seconds:.1f} s for {embedded} images ({embedded / seconds:.0f} images/s)")
    return table


def balance_table(reports: dict[str, BalanceReport], pool_label: str = "pool") -> str:
    """Reports of subsets of one pool side by side: rows, cluster KL per level, class KL and class counts (the
    classes in the pool's order, largest first).

    Example:
        >>> tree = np.array([0] * 90 + [1] * 10)
        >>> labels = np.array([0] * 50 + [1] * 50)
        >>> print(balance_table({"picked": balance(tree, [0, 1, 90, 91], labels)}))
                                  pool  picked
        samples                    100       4
        cluster KL, level 1 (2)  0.368   0.000
        class KL (2)             0.000   0.000
          0                         50       2
          1                         50       2
    """
    first = next(iter(reports.values()))
    header = ["", pool_label, *reports]
    rows = [["samples", str(first.pool_size), *(str(r.subset_size) for r in reports.values())]]
    for level, count in enumerate(first.clusters):
        cells = [f"{r.cluster_kl[level][1]:.3f}" for r in reports.values()]
        rows.append([f"cluster KL, level {level + 1} ({count})", f"{first.cluster_kl[level][0]:.3f}", *cells])
    if first.class_kl is not None:
        rows.append(
            [f"class KL ({len(first.label_names)})", f"{first.class_kl[0]:.3f}"]
            + [f"{r.class_kl[1]:.3f}" if r.class_kl else "" for r in reports.values()]
        )
        for i in np.argsort(-np.asarray(first.pool_counts), kind="stable").tolist():
            name = first.label_names[i]
            counts = [str(dict(zip(r.label_names, r.subset_counts)).get(name, 0)) for r in reports.values()]
            rows.append([f"  {name}", str(first.pool_counts[i]), *counts])
    width = max(len(r[0]) for r in rows)
    cells = [max(len(row[c]) for row in [header, *rows]) for c in range(1, len(header))]
    lines = [
        " ".join([f"{row[0]:<{width}}", *(f"{v:>{w + 1}}" for v, w in zip(row[1:], cells))]) for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def run_curation(
    table: VectorTable,
    out: Path,
    target: int,
    levels: Sequence[int] = (500, 50),
    label_names: Sequence[str] | None = None,
    seed: int = 0,
    metric: str = "l2",
) -> tuple[HierarchicalKMeans, dict[str, np.ndarray]]:
    """Hierarchical k-means with resampling, then two subsets of ``target`` samples: ``curate`` without labels
    (Vo et al.: balances the embedding's clusters) and with the table's labels (``label_shares="balanced"``:
    classes first, uniformly within each). Prints what each balanced; saves their ids into ``out`` as
    ``no_labels_ids.npy`` and ``by_label_ids.npy``."""
    start = time.perf_counter()
    checkpoint = out / "tree"
    resumed = checkpoint.exists()
    tree = HierarchicalKMeans(list(levels), n_resampling_steps=5, n_iter=20, metric=metric, seed=seed)
    tree.fit(table, checkpoint=checkpoint)
    labels = table.column("label")  # per row of the table, as the tree's rows
    named = np.asarray(label_names)[labels] if label_names is not None else labels
    subsets: dict[str, np.ndarray] = {}
    reports: dict[str, BalanceReport] = {}
    subsets["no labels"] = curate(tree, target, seed=seed)
    reports["no labels"] = balance(tree, subsets["no labels"], labels=named)
    subsets["by label"], reports["by label"] = curate(tree, target, labels=named, report=True, seed=seed)
    fitted = f"read from its checkpoint {checkpoint}" if resumed else "fitted"
    print(
        f"hierarchical k-means ({metric}) {list(levels)} with 5 resampling steps {fitted}, and two "
        f"curate({target}), in {time.perf_counter() - start:.1f} s"
    )
    print("what each subset balanced (KL to uniform, 0 is perfectly even; level 1 is the finest):")
    print("  no labels: clusters of the embedding (Vo et al.)")
    print(f"  by label:  {reports['by label'].balanced}")
    print(balance_table(reports))
    for name, ids in subsets.items():
        np.save(out / f"{name.replace(' ', '_')}_ids.npy", ids, allow_pickle=False)
    return tree, subsets


def _label_tv(labels: np.ndarray, batch: list[int], overall: np.ndarray) -> float:
    histogram = np.bincount(labels[batch], minlength=len(overall)) / len(batch)
    return 0.5 * float(np.abs(histogram - overall).sum())


def run_smart_batches(
    table: VectorTable, n_clusters: int = 64, batch_size: int = 64, shown: int = 3, classes: int = 10, seed: int = 0
) -> ClusterBatchSampler:
    """Cluster the vectors, build a ClusterBatchSampler (``pacing="proportional"``: every batch holds the clusters
    in proportion to their sizes) and print its first batches next to random ones."""
    start = time.perf_counter()
    clusters = cluster(table, KMeans(n_clusters, seed=seed))  # one cluster per sample id
    sampler = ClusterBatchSampler(clusters, batch_size, pacing="proportional", seed=seed)
    print(
        f"clustered {len(table)} vectors into {n_clusters} clusters in {time.perf_counter() - start:.1f} s; "
        f'the sampler (pacing="proportional") gives {len(sampler)} batches of {batch_size}'
    )
    labels = np.full(len(clusters), -1, dtype=np.int64)
    labels[table.column("idx")] = table.column("label")  # per sample id, as the sampler draws them
    overall = np.bincount(labels[labels >= 0], minlength=classes) / int((labels >= 0).sum())
    random_order = np.random.default_rng(seed).permutation(np.flatnonzero(clusters >= 0))
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
            for j in range(0, len(random_order), batch_size)
        ]
    )
    print(f"mean label TV over the epoch: smart {smart_tv:.3f}, random {random_tv:.3f}")
    return sampler


def run_export(table: VectorTable, ids: np.ndarray, out: Path, command: str, shown: int = 3) -> list[Path]:
    """Export the subset as a file list (``.txt``) and a CSV (id, path, label, clusters, what chose it);
    prints where and the list's first lines."""
    written = [
        export(table, ids, out.with_suffix(".txt"), overwrite=True),
        export(table, ids, out.with_suffix(".csv"), command=command, overwrite=True),
    ]
    lines = written[0].read_text().splitlines()
    print(f"exported {len(lines)} paths to {written[0]} and their records to {written[1]}; the first:")
    for line in lines[:shown]:
        print(f"  {line}")
    return written


class _Tee(io.TextIOBase):
    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def machine() -> str:
    """The machine in a few words: CPU model, cores, OS, Python, torch."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


@contextlib.contextmanager
def recorded_output(record: Path | None, command: str) -> Iterator[None]:
    """Within it, what is printed also goes to ``record`` (when given), after a header naming the date, the
    machine and ``command``; the file is written beside and renamed into place when the run completes."""
    if record is None:
        yield
        return
    from curata import __version__

    record.parent.mkdir(parents=True, exist_ok=True)
    partial = record.with_name(record.name + ".partial")
    try:
        with partial.open("w") as file:
            file.write(f"# recorded {datetime.date.today().isoformat()} by: {command}\n")
            file.write(f"# curata {__version__}; {machine()}\n")
            with contextlib.redirect_stdout(_Tee(sys.stdout, file)):
                yield
        partial.replace(record)
    finally:
        partial.unlink(missing_ok=True)  # a run that failed leaves the last complete record as it was


def main(argv: list[str] | None = None) -> None:
    """Command-line entry of the demo: images -> describe -> tree -> curate (without, with labels) -> smart
    batches -> export -> report and explorer."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="run directory")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels fed to the model")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--target", type=int, default=5000, help="size of the curated subsets")
    parser.add_argument("--text", action="store_true", help="the text demo: Debian's fortunes, with MiniLM")
    parser.add_argument("--record", type=Path, help="also write what the demo prints to this file")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clusterings, the draws and the batches")
    args = parser.parse_args(argv)
    command = "curata demo " + " ".join(argv if argv is not None else sys.argv[1:])
    with recorded_output(args.record, command.strip()):
        if args.text:
            from curata.cli.text_demo import run_text_demo

            run_text_demo(args.out, target=args.target, seed=args.seed)
            return
        _image_demo(args)


def _image_demo(args: argparse.Namespace) -> None:
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    train = FashionMNIST("train")
    indices = long_tailed(train.labels.numpy())
    args.out.mkdir(parents=True, exist_ok=True)
    root = write_image_folder(args.out / "images", train, indices)
    images = ImageFolder(root, size=args.size)
    print(
        f"long-tailed Fashion-MNIST pool: {len(images)} training images (class c keeps 6000 * 0.6^c) as PNGs in "
        f"{root}/<class>/"
    )
    table = run_describe(args.out, images, args.size, args.batch_size)
    print(f"tree: {TREE_METRIC} {list(TREE_LEVELS)}, {TREE_WHY}")
    tree, subsets = run_curation(
        table, args.out, args.target, TREE_LEVELS, label_names=images.classes, seed=args.seed, metric=TREE_METRIC
    )
    sampler = run_smart_batches(table, seed=args.seed)
    run_export(table, subsets["by label"], args.out / "by_label", BY_LABEL)
    index = report(table, args.out / "report", tree=tree, curated=subsets["by label"], sampler=sampler)
    print(f"report: {index}")
    page = explore(table, args.out / "explorer", source=images, tree=tree, curated=subsets["by label"], sampler=sampler)
    print(f"explorer: {page}")


if __name__ == "__main__":
    main()
