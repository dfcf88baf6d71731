"""`curata describe`: a source (images, WebDataset shards, texts, a saved Hugging Face dataset, embeddings already
computed, or a module:function) and a model (preset, folder, timm checkpoint, module:function) into RUN/vectors."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from curata.cli.run_files import finish

__all__ = ["Interrupted", "add_describe_options", "add_source_options", "build_source", "run_describe"]

_SOURCES = ("data", "images", "webdataset", "texts", "hf", "embeddings")


def add_source_options(sub: argparse.ArgumentParser, describing: bool = True) -> None:
    """The options naming a source of samples (describe embeds it; explore shows its samples)."""
    source = sub.add_argument_group("source (one of)")
    source.add_argument("--images", type=Path, help="a folder of images (subfolders are classes)")
    source.add_argument("--webdataset", nargs="+", help="WebDataset .tar shards or glob patterns ('shards/*.tar')")
    source.add_argument(
        "--texts",
        nargs="+",
        help=".txt (a text per line), .jsonl, .csv or .parquet files, folders of them or patterns ('docs/*.txt');"
        " binary files are skipped with a warning, links to a listed file read once",
    )
    source.add_argument("--hf", type=Path, help="a Hugging Face dataset folder written by save_to_disk")
    if describing:
        source.add_argument("--embeddings", nargs="+", help=".npy or .parquet files of vectors already computed")
        source.add_argument("--data", help="module:function returning (dataset, model)")
    sub.add_argument("--column", "--text-column", dest="column", help="--texts/--hf: the column holding the data")
    sub.add_argument("--label-column", help="--texts/--hf: a label column; --webdataset: 'cls' or a .json field")
    sub.add_argument("--label-by-file", action="store_true", help="--texts: label each text with its file")
    sub.add_argument("--separator", help="--texts: plain files of multi-line texts split by lines holding this ('%%')")
    sub.add_argument("--split", help="--hf: the split of a saved DatasetDict")


def add_describe_options(sub: argparse.ArgumentParser) -> None:
    """The options of ``curata describe``."""
    add_source_options(sub)
    model = sub.add_argument_group("model")
    model.add_argument(
        "--model", help="a preset (efficientnet-lite0, minilm), a Hugging Face folder, timm:NAME or module:function"
    )
    model.add_argument("--weights", help="a local checkpoint: for timm:NAME, or other efficientnet-lite0 weights")
    model.add_argument("--layers", nargs="*", default=[], help="layer names (default: the model's embedding)")
    model.add_argument("--size", type=int, default=224, help="image side")
    model.add_argument("--device", default=None, help="where the model runs: cpu, cuda, cuda:1, ...")
    sub.add_argument("--pool", choices=["mean", "max"], default="mean")
    sub.add_argument("--batch-size", type=int, default=64)
    sub.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    sub.add_argument("--dtype", choices=["float32", "float16"], default="float32", help="storage dtype")
    sub.add_argument(
        "--normalize", choices=["none", "l2", "center+l2"], default="none", help="how the table gives vectors back"
    )
    sub.add_argument("--label-key", default=None, help="--data: the key of the label in the dataset's items")


def build_source(args: argparse.Namespace, modality: str = "image") -> Any:
    """The dataset named by the source option (None when there is none)."""
    if args.images:
        from curata.sources.images import ImageFolder

        return ImageFolder(args.images, size=args.size)
    if args.webdataset:
        from curata.sources.webdataset import WebDatasetShards

        data = "text" if modality == "text" else "image"
        return WebDatasetShards(args.webdataset, data=data, label=args.label_column, size=args.size)
    if args.texts:
        from curata.sources.text_paths import expand_text_paths
        from curata.sources.texts import TEXT_SUFFIXES, TextFiles

        return TextFiles(
            expand_text_paths(args.texts, TEXT_SUFFIXES, args.separator, flag="--texts"),
            column=args.column,
            label_column=args.label_column,
            label_by_file=args.label_by_file,
            separator=args.separator,
        )
    if not args.hf:
        return None
    from curata.sources.huggingface import HuggingFaceDisk

    if not args.column:
        raise ValueError("--hf needs --column (the column holding the images or texts)")
    return HuggingFaceDisk(
        args.hf, column=args.column, label_column=args.label_column, split=args.split, size=args.size
    )


def _refuse_other_modality(args: argparse.Namespace, image_source: bool) -> None:
    """Refuse a preset of the other modality (a text model for images), before any file or weight is read."""
    known = {"efficientnet-lite0": "image", "minilm": "text"}.get(args.model)
    if known is not None and image_source != (known == "image"):
        flag = "--images/--webdataset/--hf" if image_source else "--texts"
        raise ValueError(f"--model {args.model!r} embeds {known}s; {flag} needs another model")


def _loaded_model(args: argparse.Namespace, image_source: bool) -> Any:
    from torch import nn

    from curata.models.images import ImagePreprocess
    from curata.models.presets import LoadedModel, load_model

    _refuse_other_modality(args, image_source)
    loaded = load_model(args.model, size=args.size, weights=args.weights)
    if loaded.modality == "any" and image_source and isinstance(loaded.model, nn.Module):
        # the image sources give uint8 pixels: a user's model gets the preprocessing the presets have
        return LoadedModel(nn.Sequential(ImagePreprocess(args.size), loaded.model), "image", None, "1.")
    wanted = "image" if image_source else "text" if args.texts else None
    if wanted is not None and loaded.modality not in (wanted, "any"):
        flag = "--images/--webdataset/--hf" if image_source else "--texts"
        kind = "an image" if wanted == "image" else "a text"
        raise ValueError(f"--model {args.model!r} embeds {loaded.modality}s; {flag} needs {kind} model")
    return loaded


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C that the command has handled: its message says what was kept (``curata`` prints it as one line,
    ``interrupted: ...``, and exits with status 130)."""


def _rows_kept(path: Path) -> int:
    """The rows committed to the table at ``path`` (0 when there is none yet)."""
    from curata.store.table import VectorTable

    return len(VectorTable.open(path)) if VectorTable.is_table(path) else 0


def run_describe(args: argparse.Namespace) -> None:
    """Run ``curata describe``: everything is checked before the first sample is embedded."""
    from curata.embedding.job import describe
    from curata.embedding.vectorize import Vectorizer

    chosen = [name for name in _SOURCES if getattr(args, name)]
    if len(chosen) != 1:
        named = ", ".join(f"--{name}" for name in _SOURCES)
        raise ValueError(f"describe takes one source of {named}; got {len(chosen) or 'none'}")
    for name in ("batch_size", "size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive int, got {getattr(args, name)}")
    if args.num_workers < 0:
        raise ValueError(f"--num-workers must be >= 0, got {args.num_workers}")
    started = time.perf_counter()
    if args.embeddings:
        from curata.embedding.loop import record_normalization
        from curata.sources.embeddings import table_from_embeddings

        table = table_from_embeddings(args.embeddings, args.out / "vectors")
        record_normalization(table, args.normalize)
        finish(args.out, "describe", started, {}, rows=len(table), dim=table.dim, table=str(table.path))
        return
    label_key = args.label_key
    if args.data:
        from torch import nn

        from curata.embedding.embed import TorchEmbedder
        from curata.models.presets import call_target

        dataset, model = call_target(args.data, "--data")
        if args.device is not None and isinstance(model, nn.Module):
            model.to(args.device)
        uses_hooks = isinstance(model, nn.Module) or args.layers
        embedder = TorchEmbedder(model, args.layers or None, device=args.device) if uses_hooks else model
    else:
        if not args.model:
            raise ValueError(f"--{chosen[0]} needs --model (a preset, a folder, timm:NAME or module:function)")
        # every source but WebDataset shards (read as the model's modality) is built, and its files checked,
        # before the model loads; a saved dataset says whether it holds images
        if not args.hf:
            _refuse_other_modality(args, bool(args.images or args.webdataset))
        early = None if args.webdataset else build_source(args, "any")
        image_source = bool(args.images or args.webdataset or (args.hf and early.image))
        loaded = _loaded_model(args, image_source)
        dataset = early if early is not None else build_source(args, loaded.modality)
        embedder = loaded.embedder(args.layers or None, args.device)
        label_key = "label" if getattr(dataset, "labels", None) is not None else None
    try:
        table = describe(
            dataset,
            embedder,
            args.out / "vectors",
            vectorizer=Vectorizer(args.pool),
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            label_key=label_key,
            dtype=args.dtype,
            normalize=args.normalize,
        )
    except KeyboardInterrupt:
        raise Interrupted(f"{_rows_kept(args.out / 'vectors')} rows kept; run the same command to resume") from None
    unreadable = len(table.get_attr("unreadable", []))
    finish(
        args.out,
        "describe",
        started,
        {"sample_ids": table.sample_ids()},
        rows=len(table),
        dim=table.dim,
        table=str(table.path),
        samples=len(dataset),
        unreadable=unreadable,
        normalize=args.normalize,
    )
