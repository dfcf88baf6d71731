"""The `curata` command: describe, cluster, curate, select, split, dedup, exact, contamination, retrieve, report,
explore, export, info, demo.

Every command writes into a run directory (``--out``): sample ids (the table's ``idx``) as ``.npy``, beside them
the samples' paths as ``.txt`` when the table records its source, and a ``summary.json``; ``curata export`` turns
ids into files (path lists, CSV, folders, shards). ``--config run.toml`` supplies defaults per command (a
``[cluster]`` table for ``curata cluster``, ...), so a run can be repeated exactly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from curata._internal.atomic import write_atomically
from curata._internal.checks import check_int
from curata.cli.describe_command import add_describe_options, add_source_options, run_describe
from curata.cli.info import run_info
from curata.cli.run_files import finish as _finish
from curata.cli.run_files import path_lists, recorded_locations, recorded_parameters, writes_outputs
from curata.exporting.export import FORMATS
from curata.subsets.cosine_space import AUTO, SPACES
from curata.subsets.select import METHODS

__all__ = ["DEFAULT_LEVELS", "command_line", "main", "load_vectors", "sample_ids_of", "source_rows"]

DEFAULT_LEVELS = (100,)  # clusters per level of cluster and curate without --levels
FIT_PROGRESS_SECONDS = 5.0  # at most one progress line of a k-means fit this often


def _source_fingerprint(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"source_file": str(path.resolve()), "source_bytes": stat.st_size, "source_mtime_ns": stat.st_mtime_ns}


def source_rows(path: str | Path, flag: str = "--vectors") -> int:
    """The number of vectors in ``--vectors`` (a table, .npy or .parquet), read without loading them."""
    return _source_shape(path, flag, dim=False)[0]


def _source_shape(path: str | Path, flag: str, dim: bool = True) -> tuple[int, int]:
    """(rows, dim) of a table, .npy or .parquet of vectors, read without loading them (dim -1 unless asked)."""
    from curata.store.table import VectorTable

    path = Path(path)
    if path.is_dir():
        table = VectorTable.open(path)
        return len(table), table.dim
    if not path.exists():
        raise FileNotFoundError(f"{flag} {str(path)!r} does not exist")
    if path.suffix == ".npy":
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        if len(shape) != 2:
            raise ValueError(f"{flag} {str(path)!r} must hold a 2-D array (rows, dim), got shape {shape}")
        return int(shape[0]), int(shape[1])
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = int(pq.ParquetFile(path).metadata.num_rows)
        if not dim or rows == 0:
            return rows, -1
        head = pq.ParquetFile(path).read_row_group(0)
        column = next((c for c in ("vector", "embedding") if c in head.column_names), None)
        return rows, -1 if column is None else len(head.column(column)[0].as_py())
    raise ValueError(f"{flag} must be a VectorTable/Lance directory, a .npy or a .parquet file, got {str(path)!r}")


def load_vectors(path: str | Path, out: Path, name: str = "vectors") -> Any:
    """A VectorTable from a Lance/VectorTable directory, or one built in ``out / name`` from a .npy or
    Parquet file of embeddings (Parquet: a list column named ``vector`` or ``embedding``, optional ``label``).

    A table already in ``out / name`` is reused only when it was built from this same file, unchanged.
    """
    from curata.store.table import VectorTable

    path = Path(path)
    if path.is_dir():
        return VectorTable.open(path)
    source_rows(path, f"--{name}")  # says what is wrong with the file before anything is written
    target = out / name
    source = _source_fingerprint(path)
    if VectorTable.is_table(target):
        table = VectorTable.open(target)
        built_from = {key: table.fingerprint.get(key) for key in source}
        if built_from != source:
            raise ValueError(
                f"--out {str(out)!r} holds vectors built from {built_from['source_file']!r} "
                f"({built_from['source_bytes']} bytes), not from --{name} {str(path)!r} as it is now "
                f"({source['source_bytes']} bytes): its results would name rows of the other file. "
                f"Use another --out, or delete {str(target)!r} to rebuild it"
            )
        return table
    if path.suffix == ".npy":
        return VectorTable.from_arrays(target, np.load(path, allow_pickle=False), fingerprint=source)
    import pyarrow.parquet as pq

    data = pq.read_table(path)
    column = next((c for c in ("vector", "embedding") if c in data.column_names), None)
    if column is None:
        raise ValueError(f"{str(path)!r} has no 'vector' or 'embedding' column; columns: {data.column_names}")
    vectors = np.stack(data.column(column).to_numpy(zero_copy_only=False)).astype(np.float32)
    labels = data.column("label").to_numpy() if "label" in data.column_names else None
    return VectorTable.from_arrays(target, vectors, labels=labels, fingerprint=source)


def sample_ids_of(path: str | Path, flag: str = "--vectors") -> np.ndarray:
    """The sorted sample ids of ``--vectors``, read without building anything: a table's ``idx`` values, the row
    numbers of a .npy or .parquet file (the ids its table gets)."""
    from curata.store.table import VectorTable

    if Path(path).is_dir():
        return VectorTable.open(path).sample_ids()
    return np.arange(source_rows(path, flag))


def _id_file(file: str, flag: str, known: np.ndarray) -> np.ndarray:
    """The sample ids in ``file`` (.npy or one a line), each checked to be in ``known``."""
    from curata.exporting.export import read_ids

    ids = read_ids(file, flag)
    missing = np.setdiff1d(ids, known)
    if len(missing):
        raise ValueError(
            f"{flag} {file!r} holds {len(missing)} sample ids that are not in --vectors, e.g. {int(missing[0])}: pass "
            "ids a curata command wrote for this table"
        )
    return ids


def _checked_vectors(args: argparse.Namespace) -> Any:
    """Check every argument against the number of vectors, then load them (building ``RUN/vectors`` if needed):
    a refused run writes nothing."""
    rows = source_rows(args.vectors)
    pool = None
    args.within_ids = args.exclude_ids = None
    if any(getattr(args, name, None) is not None for name in ("within", "exclude", "n", "sizes")):
        known = sample_ids_of(args.vectors)
        args.within_ids = _id_file(args.within, "--within", known) if getattr(args, "within", None) else None
        args.exclude_ids = _id_file(args.exclude, "--exclude", known) if getattr(args, "exclude", None) else None
        pool = np.unique(args.within_ids) if args.within_ids is not None else known
    given = getattr(args, "levels", None) is not None
    if hasattr(args, "levels") and not given:  # cluster and curate without --levels
        args.levels = list(DEFAULT_LEVELS)
    levels = getattr(args, "levels", None)
    if levels is not None:
        if any(k < 1 for k in levels) or any(b >= a for a, b in zip(levels, levels[1:])):
            raise ValueError(f"--levels must be positive and decreasing, e.g. 500 50, got {levels}")
        if levels[0] > rows:
            what = f"--levels {levels[0]} is" if given else f"no --levels given: the default, {levels[0]} clusters, is"
            fewer = max(rows // 8, 1)
            raise ValueError(f"{what} more clusters than the {rows} vectors of --vectors; pass fewer: --levels {fewer}")
        if not given:
            print(f"{args.command}: no --levels given: {levels[0]} clusters (the default)", file=sys.stderr)
        check_int(args.resampling, "--resampling", minimum=0)
        check_int(args.n_iter, "--n-iter", minimum=1)
    if getattr(args, "n", None) is not None:
        assert pool is not None
        free = len(pool) - (len(np.intersect1d(pool, args.exclude_ids)) if args.exclude_ids is not None else 0)
        where = "in --within" if args.within_ids is not None else "in --vectors"
        if args.n > free:
            raise ValueError(f"--n {args.n} is more than the {free} samples {where} not excluded")
    if getattr(args, "sizes", None) is not None:
        from curata.subsets.split import _targets

        _targets(_split_sizes(args.sizes), len(pool) if pool is not None else len(sample_ids_of(args.vectors)))
    for flag in ("threshold", "max_removed", "thresholds"):
        values = getattr(args, flag, None)
        for value in values if isinstance(values, list) else [] if values is None else [values]:
            if not 0 < value <= 1:
                raise ValueError(f"--{flag.replace('_', '-')} must be in (0, 1], got {value}")
    if getattr(args, "curated", None):
        _id_file(args.curated, "--curated", sample_ids_of(args.vectors))
    check_int(getattr(args, "approx_chunk_rows", None), "--approx-chunk-rows", minimum=2, allow_none=True)
    if getattr(args, "by_label", False):
        if getattr(args, "mode", "coreset") != "coreset":
            raise ValueError(f"--by-label is for --mode coreset; --mode {args.mode} splits by clusters")
        if not _has_labels(Path(args.vectors)):
            raise ValueError(f"--by-label: --vectors {args.vectors!r} holds no labels (a 'label' column)")
    return load_vectors(args.vectors, args.out)


def _has_labels(path: Path) -> bool:
    if path.is_dir():
        from curata.store.table import VectorTable

        return "label" in VectorTable.open(path).columns
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return "label" in pq.read_schema(path).names
    return False


def _split_sizes(items: list[str]) -> dict[str, float | int]:
    sizes: dict[str, float | int] = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            sizes[name] = int(value) if value.isdigit() else float(value)
        except ValueError:
            raise ValueError(f"--sizes must be name=fraction or name=count, got {item!r}") from None
    return sizes


def _tree_or_kmeans(args: argparse.Namespace) -> Any:
    from curata.clustering.hierarchical import HierarchicalKMeans
    from curata.clustering.kmeans import KMeans

    options = {"n_iter": args.n_iter, "metric": args.metric, "device": args.device}
    if args.memory_budget is not None:
        options["memory_budget"] = args.memory_budget
    if len(args.levels) == 1 and args.resampling == 0 and not getattr(args, "checkpoint", None):
        return KMeans(args.levels[0], seed=args.seed, **options)
    return HierarchicalKMeans(args.levels, n_resampling_steps=args.resampling, seed=args.seed, **options)


def memory_bytes(text: str) -> int:
    """``--memory-budget`` as bytes: a number with an optional K, M, G or T (powers of 1024).

    Example:
        >>> memory_bytes("4G"), memory_bytes("512M"), memory_bytes("1048576")
        (4294967296, 536870912, 1048576)
    """
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    value = str(text).strip().upper().removesuffix("B").removesuffix("I")
    scale = units.get(value[-1:], 1)
    number = value[:-1] if value[-1:] in units else value
    try:
        amount = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be bytes like 4G, 512M or 1048576, got {text!r}") from None
    if amount <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return int(amount * scale)


def _cluster(args: argparse.Namespace) -> None:
    from curata.clustering.clusterize import cluster

    table = _checked_vectors(args)
    started = time.perf_counter()
    per_sample = cluster(table, _tree_or_kmeans(args), stratify_by_label=args.stratify_by_label, seed=args.seed)
    _finish(args.out, "cluster", started, {"clusters": per_sample}, clusters=int(per_sample.max()) + 1)


def _curate(args: argparse.Namespace) -> None:
    from curata.subsets.curate import curate

    if args.labels_from_table and not _has_labels(Path(args.vectors)):
        raise ValueError(f"--labels-from-table: --vectors {args.vectors!r} holds no labels (a 'label' column)")
    table = _checked_vectors(args)
    started = time.perf_counter()
    checkpoint = {"checkpoint": args.checkpoint} if args.checkpoint else {}
    tree = _tree_or_kmeans(args).fit(table, **checkpoint)
    by_label = {"labels": table.column("label")} if args.labels_from_table else {}
    ids, balance = curate(
        tree,
        args.target,
        strategy=args.strategy,
        seed=args.seed,
        label_shares=args.label_shares,
        within_label=args.within_label,
        report=True,
        **by_label,
        **_within(args),
    )
    if writes_outputs():  # rank 0 under torchrun
        print(balance)
    _finish(
        args.out,
        "curate",
        started,
        {"curated_ids": ids, "labels": tree.labels_},
        path_lists(table, {"curated": ids}),
        target=args.target,
        picked=len(ids),
        balance=balance.to_dict(),
    )


def _within(args: argparse.Namespace) -> dict[str, Any]:
    """``within=`` for the library call when ``--within`` was given (the checked ids), else nothing."""
    return {} if args.within_ids is None else {"within": args.within_ids}


def _table_labels(table: Any, by_label: bool) -> np.ndarray | None:
    return table.column("label") if by_label else None


def _select(args: argparse.Namespace) -> None:
    from curata.subsets.select import select

    table = _checked_vectors(args)
    started = time.perf_counter()
    ids = select(
        table,
        args.n,
        method=args.method,
        metric=args.metric,
        labels=_table_labels(table, args.by_label),
        exclude=args.exclude_ids,
        approx_chunk_rows=args.approx_chunk_rows,
        memory_budget=args.memory_budget,
        seed=args.seed,
        **_within(args),
    )
    texts = path_lists(table, {"selected": ids})
    _finish(args.out, "select", started, {"selected_ids": ids}, texts, method=args.method, n=args.n)


def _split(args: argparse.Namespace) -> None:
    from curata.subsets.split import split

    table = _checked_vectors(args)
    started = time.perf_counter()
    parts = split(
        table,
        _split_sizes(args.sizes),
        mode=args.mode,
        labels=_table_labels(table, args.by_label),
        method=args.method,
        metric=args.metric,
        seed=args.seed,
        **_within(args),
    )
    _finish(
        args.out,
        "split",
        started,
        {f"split_{name}": ids for name, ids in parts.items()},
        path_lists(table, {f"split_{name}": ids for name, ids in parts.items()}),
        mode=args.mode,
        sizes={name: len(ids) for name, ids in parts.items()},
    )


def _dedup(args: argparse.Namespace) -> None:
    from curata.subsets.dedup import dedup, dedup_curve, dedup_space

    table = _checked_vectors(args)
    started = time.perf_counter()
    space = dedup_space(table, args.space, **_within(args))  # "auto" resolved, for the summary
    common = {
        "keep": args.keep,
        "space": args.space,
        "margin": args.margin,
        "memory_budget": args.memory_budget,
        "seed": args.seed,
        **_within(args),
    }
    if args.dry_run:
        thresholds = {} if args.thresholds is None else {"thresholds": args.thresholds}
        curve = dedup_curve(table, **common, **thresholds)
        for point in curve:
            print(
                f"threshold {point['threshold']:.3f}: {point['removed']} rows would go ({point['share']:.1%}), "
                f"largest group {point['largest_group']}"
            )
        _finish(args.out, "dedup --dry-run", started, {}, curve=curve, space=space)
        return
    kept, groups = dedup(table, threshold=args.threshold, max_removed=args.max_removed, **common)
    texts = path_lists(table, {"kept": kept})
    texts["duplicates.jsonl"] = _duplicate_lines(table, kept, groups)
    _finish(
        args.out,
        "dedup",
        started,
        {"kept_ids": kept},
        texts,
        groups=len(groups),
        removed=int(sum(len(g) - 1 for g in groups)),
        space=space,
    )


def _duplicate_lines(table: Any, kept: np.ndarray, groups: list[np.ndarray]) -> str:
    """dedup's groups as JSON lines: the id kept, the ids removed for it, and their paths when the table records
    its source."""
    places = recorded_locations(table)
    lines = []
    for group in groups:
        keeper = np.intersect1d(group, kept)
        kept_id = int(keeper[0]) if len(keeper) else int(group[0])
        removed = [int(i) for i in group if i != kept_id]
        record: dict[str, Any] = {"kept": kept_id, "removed": removed}
        if places is not None:
            record["kept_path"] = places.where(kept_id)
            record["removed_paths"] = [places.where(i) for i in removed]
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    return "".join(lines)


def _exact(args: argparse.Namespace) -> None:
    from curata.subsets.exact_duplicates import exact_duplicates

    if (args.vectors is None) == (args.files is None):
        raise ValueError(
            "exact: pass --vectors (rows equal value for value) or --files (a folder: files equal byte "
            "for byte), one of them"
        )
    if args.files is not None:
        folder = Path(args.files)
        if not folder.is_dir():
            raise ValueError(f"--files {str(folder)!r} is not a folder")
        paths = sorted(
            p for p in folder.rglob("*") if p.is_file() and not p.resolve().is_relative_to(args.out.resolve())
        )
        started = time.perf_counter()
        kept, groups = exact_duplicates(paths)
        names = [str(p.relative_to(folder)) for p in paths]
        args.out.mkdir(parents=True, exist_ok=True)
        listing = json.dumps({"files": names, "groups": [[names[i] for i in g] for g in groups]}, indent=1)
        write_atomically(args.out / "files.json", lambda f: f.write_text(listing))
    else:
        table = _checked_vectors(args)
        started = time.perf_counter()
        kept, groups = exact_duplicates(table)
    removed = int(sum(len(g) - 1 for g in groups))
    _finish(args.out, "exact", started, {"kept_rows": kept}, groups=len(groups), removed=removed)


def _rows_of_both(vectors: Any, other: Any, flag: str, advice: str) -> tuple[int, int]:
    """The rows of --vectors and of a second source compared with it (``flag``), refused before any work when
    their dimensions differ (-1: not known before loading)."""
    rows, dim = _source_shape(vectors, "--vectors")
    other_rows, other_dim = _source_shape(other, flag)
    if -1 not in (dim, other_dim) and dim != other_dim:
        raise ValueError(f"{flag} has dim {other_dim}, --vectors has dim {dim}: {advice}")
    return rows, other_rows


def _contamination(args: argparse.Namespace) -> None:
    from curata.subsets.contamination import contamination, contamination_space

    rows, reference_rows = _rows_of_both(args.vectors, args.reference, "--reference", "describe both alike")
    table = _checked_vectors(args)
    reference = load_vectors(args.reference, args.out, "reference")
    started = time.perf_counter()
    hit, nearest, similarity = contamination(
        table,
        reference,
        threshold=args.threshold,
        space=args.space,
        reference_clusters=args.reference_clusters,
        probes=args.probes,
        seed=args.seed,
    )
    arrays = {"contaminated_ids": hit, "nearest_reference_ids": nearest, "similarity": similarity}
    _finish(
        args.out,
        "contamination",
        started,
        arrays,
        path_lists(table, {"contaminated": hit}),
        contaminated=len(hit),
        rows=rows,
        reference_rows=reference_rows,
        space=contamination_space(table, reference, args.space),
        scores={"contaminated_ids.npy": "similarity.npy"},
    )


def _retrieve(args: argparse.Namespace) -> None:
    from curata.subsets.retrieve import retrieve, retrieve_space

    rows, seed_rows = _rows_of_both(args.vectors, args.seeds, "--seeds", "describe both with the same model")
    if args.method == "clusters" and (args.n_clusters is None) == (args.clusters_column is None):
        raise ValueError("--method clusters needs one of --n-clusters K or --clusters-column NAME")
    if args.method != "clusters" and (args.n_clusters is not None or args.clusters_column is not None):
        raise ValueError("--n-clusters and --clusters-column are for --method clusters")
    for flag in ("per_seed", "probes", "n_clusters"):
        check_int(getattr(args, flag), f"--{flag.replace('_', '-')}", minimum=1, allow_none=True)
    if args.threshold is not None and not 0 < args.threshold <= 1:
        raise ValueError(f"--threshold must be in (0, 1], got {args.threshold}")
    table = _checked_vectors(args)
    seeds = load_vectors(args.seeds, args.out, "seeds")
    started = time.perf_counter()
    ids, seed_ids, similarity = retrieve(
        table,
        seeds,
        per_seed=args.per_seed,
        method=args.method,
        metric=args.metric,
        space=args.space,
        n_clusters=args.n_clusters,
        clusters=args.clusters_column,
        probes=args.probes,
        exclude_near_copies=args.exclude_near_copies,
        threshold=args.threshold,
        seed=args.seed,
    )
    arrays = {"retrieved_ids": ids, "seed_ids": seed_ids, "similarity": similarity}
    _finish(
        args.out,
        "retrieve",
        started,
        arrays,
        path_lists(table, {"retrieved": ids}),
        retrieved=len(ids),
        rows=rows,
        seed_rows=seed_rows,
        space=retrieve_space(table, seeds, args.space) if args.metric == "cosine" else None,
        scores={"retrieved_ids.npy": "similarity.npy"},
    )


def _report(args: argparse.Namespace) -> None:
    from curata.exploring.report import report

    table = _checked_vectors(args)
    started = time.perf_counter()
    curated = _rows_of(args.curated, "--curated", table.column("idx")) if args.curated else None
    index = report(table, args.out, curated=curated, seed=args.seed)  # --out/index.html, as explore writes
    _finish(args.out, "report", started, {}, report=str(index))


def _explore(args: argparse.Namespace) -> None:
    from curata.cli.describe_command import build_source
    from curata.exploring.explorer import explore

    sources = [flag for flag in ("images", "webdataset", "texts", "hf") if getattr(args, flag)]
    if len(sources) > 1:
        raise ValueError(f"explore takes at most one source of the samples, got {', '.join('--' + s for s in sources)}")
    table = _checked_vectors(args)
    known = table.sample_ids()
    tree = np.load(args.labels, allow_pickle=False) if args.labels else None
    curated = _id_file(args.curated, "--curated", known) if args.curated else None
    selected = _id_file(args.selected, "--selected", known) if args.selected else None
    splits = {}
    for item in args.splits or []:
        name, _, file = item.partition("=")
        if not name or not file:
            raise ValueError(f"--splits must be name=FILE.npy, got {item!r}")
        splits[name] = _id_file(file, f"--splits {name}", known)
    duplicates = _duplicate_groups(args.duplicates, known) if args.duplicates else None
    if sources:
        source = build_source(args, "text" if args.texts else "image")
    else:  # the source describe recorded with the table, when it did
        from curata.sources.locations import open_source, recorded_source

        try:
            places = recorded_source(table)
            source = None if places is None else open_source(places, size=args.size)
        except (OSError, ValueError) as error:  # the page works without pictures, and says so
            warnings.warn(
                f"explore: the source describe recorded cannot be read: {error}", RuntimeWarning, stacklevel=2
            )
            source = None
    started = time.perf_counter()
    page = explore(
        table,
        args.out,
        source=source,
        tree=tree,
        curated=curated,
        selected=selected,
        splits=splits or None,
        duplicates=duplicates,
        max_points=args.max_points,
        max_thumbnails=args.max_thumbnails,
        seed=args.seed,
    )
    _finish(args.out, "explore", started, {}, page=str(page))


def _rows_of(file: str, flag: str, idx: np.ndarray) -> np.ndarray:
    """The rows (vectors) of the sample ids in ``file``, every row of each sample: what ``report`` reads."""
    ids = _id_file(file, flag, np.unique(idx))
    return np.flatnonzero(np.isin(idx, ids))


def _duplicate_groups(file: str, known: np.ndarray) -> list[np.ndarray]:
    """dedup's duplicates.jsonl as groups of sample ids, the kept one first, each checked to be in the table."""
    path = Path(file)
    if not path.is_file():
        raise FileNotFoundError(f"--duplicates {file!r} does not exist")
    groups = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            members = np.array([record["kept"], *record["removed"]], dtype=np.int64)
        except (ValueError, KeyError, TypeError):
            raise ValueError(
                f'--duplicates {file!r} line {number} is not a dedup group ({{"kept": id, "removed": [ids]}})'
            ) from None
        missing = np.setdiff1d(members, known)
        if len(missing):
            raise ValueError(f"--duplicates {file!r} line {number} names sample {int(missing[0])}, not in --vectors")
        groups.append(members)
    return groups


def _export(args: argparse.Namespace) -> None:
    from curata.exporting.export import export
    from curata.store.table import VectorTable

    if not Path(args.vectors).is_dir():
        raise ValueError(f"--vectors must be the table describe wrote (it records the source), got {args.vectors!r}")
    table = VectorTable.open(args.vectors)
    ids = _id_file(args.ids, "--ids", table.sample_ids())
    command, scores = _chosen_by(Path(args.ids))
    started = time.perf_counter()
    written = export(table, ids, args.to, format=args.format, overwrite=args.overwrite, command=command, scores=scores)
    summary = {"command": "export", "seconds": round(time.perf_counter() - started, 3), "samples": len(ids)}
    print(json.dumps({**summary, "format": args.format or Path(args.to).suffix[1:], "to": str(written)}))


def _chosen_by(ids_file: Path) -> tuple[str | None, np.ndarray | None]:
    """The command that wrote ``ids_file`` (and its method) and the score of each id, from the summary.json of the
    run folder it lies in; (None, None) outside a run folder."""
    summary_file = ids_file.parent / "summary.json"
    if not summary_file.is_file():
        return None, None
    try:
        summary = json.loads(summary_file.read_text())
    except ValueError:
        return None, None
    if not isinstance(summary, dict) or ids_file.name not in summary.get("files", []):
        return None, None
    command = " ".join(str(summary[key]) for key in ("command", "method", "mode") if key in summary)
    scores_file = summary.get("scores", {}).get(ids_file.name)
    scores = np.load(ids_file.parent / scores_file, allow_pickle=False) if scores_file else None
    return command, scores


def _demo(args: argparse.Namespace) -> None:
    from curata.cli.demo import main as demo_main

    argv = ["--out", str(args.out), "--target", str(args.target), "--seed", str(args.seed)]
    demo_main([*argv, *(["--text"] if args.text else []), *(["--record", str(args.record)] if args.record else [])])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="curata", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, help="TOML file with defaults per command")
    parser.add_argument("--version", action="version", version=f"curata {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, run: Any, text: str, vectors: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument(
            "--out",
            type=Path,
            required=name != "demo",
            default=Path("runs/demo") if name == "demo" else None,
            help="run directory",
        )
        sub.add_argument("--seed", type=int, default=0)
        if vectors:
            sub.add_argument("--vectors", required=True, help="VectorTable directory, .npy or .parquet of embeddings")
        sub.set_defaults(run=run)
        return sub

    def clustering(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--levels",
            type=int,
            nargs="+",
            help=f"clusters per level, e.g. 500 50 (default: {' '.join(map(str, DEFAULT_LEVELS))})",
        )
        sub.add_argument("--resampling", type=int, default=0, help="resampling steps per level")
        sub.add_argument("--n-iter", type=int, default=20)
        sub.add_argument("--metric", choices=["l2", "cosine"], default="l2", help="k-means distance")
        sub.add_argument("--device", default="cpu", help="where k-means runs: cpu, cuda, cuda:1, ...")
        budget(sub)

    def within(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--within", help="only these sample ids (.npy or one a line), e.g. dedup's kept_ids.npy")

    def budget(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--memory-budget", type=memory_bytes, help="stream a table larger than this from disk, e.g. 4G"
        )

    sub = command("describe", run_describe, "embed a dataset into a VectorTable (resumable)", vectors=False)
    add_describe_options(sub)
    sub = command("cluster", _cluster, "cluster the vectors; writes one cluster id per sample")
    clustering(sub)
    sub.add_argument("--stratify-by-label", action="store_true")
    sub = command("curate", _curate, "hierarchical k-means, then a balanced subset (Vo et al. 2024)")
    clustering(sub)
    sub.add_argument("--target", type=int, required=True)
    sub.add_argument("--strategy", choices=["random", "closest"], default="random")
    sub.add_argument("--checkpoint", type=Path, help="save each finished level here; a rerun resumes from it")
    sub.add_argument("--labels-from-table", action="store_true", help="share the target over the table's labels")
    sub.add_argument("--label-shares", choices=["balanced", "proportional"], default="balanced")
    sub.add_argument(
        "--within-label",
        choices=["random", "coarse", "concepts"],
        default="random",
        help="how each label's share is drawn (random: measured best, docs/evidence.md study 7)",
    )
    within(sub)
    sub = command("select", _select, "pick rows to annotate")
    sub.add_argument("--n", type=int, required=True)
    sub.add_argument("--method", choices=list(METHODS), default="kcenter")
    sub.add_argument("--metric", choices=["l2", "cosine"], default="l2")
    sub.add_argument("--by-label", action="store_true", help="each label gets its share (the table's labels)")
    sub.add_argument(
        "--approx-chunk-rows",
        type=int,
        default=None,
        help="select in random chunks of this many rows (an approximation that bounds the cost)",
    )
    sub.add_argument("--exclude", help="sample ids already labelled (.npy, or a text file of one id a line)")
    within(sub)
    budget(sub)
    sub = command("split", _split, "cluster-aware splits")
    sub.add_argument("--sizes", nargs="+", required=True, help="name=fraction or name=count, e.g. train=0.8 val=0.2")
    sub.add_argument("--mode", choices=["stratified", "disjoint", "coreset"], default="stratified")
    sub.add_argument("--method", choices=list(METHODS), default="kcenter", help="selection of --mode coreset")
    sub.add_argument("--metric", choices=["l2", "cosine"], default="l2", help="distance of --mode coreset")
    sub.add_argument("--by-label", action="store_true", help="--mode coreset: each split takes each label's share")
    within(sub)
    sub = command("dedup", _dedup, "near-duplicate removal within clusters")
    sub.add_argument("--threshold", type=float, help="cosine from which rows are duplicates (default: the space's)")
    sub.add_argument("--keep", choices=["central", "random", "first"], default="central")
    sub.add_argument("--max-removed", type=float, default=0.5, help="refuse when a larger share of rows would go")
    sub.add_argument(
        "--space",
        choices=[AUTO, *SPACES],
        default=AUTO,
        help="vectors the cosine is taken between (auto: whitened from 1.5 rows per dimension, centred below)",
    )
    sub.add_argument(
        "--margin", type=float, help="how far above a row's 11th-nearest neighbour a duplicate must be (0: off)"
    )
    sub.add_argument("--dry-run", action="store_true", help="print how many rows each of --thresholds would remove")
    sub.add_argument("--thresholds", type=float, nargs="+", help="--dry-run: thresholds (default 0.5 to 0.99)")
    within(sub)
    budget(sub)
    sub = command("exact", _exact, "identical rows (--vectors) or identical files (--files FOLDER)", vectors=False)
    sub.add_argument("--vectors", help="VectorTable directory, .npy or .parquet of embeddings")
    sub.add_argument("--files", help="a folder whose files are compared byte for byte (subfolders included)")
    sub = command("contamination", _contamination, "rows of --vectors within the threshold of a --reference row")
    sub.add_argument("--reference", required=True, help="the set to protect (e.g. test): table, .npy or .parquet")
    sub.add_argument("--threshold", type=float, help="cosine from which rows are duplicates (default: the space's)")
    sub.add_argument(
        "--space",
        choices=[AUTO, *SPACES],
        default=AUTO,
        help="vectors the cosine is taken between (auto: whitened from 1.5 rows per dimension, centred below)",
    )
    sub.add_argument(
        "--reference-clusters", type=int, help="compare only within the nearest of this many reference clusters"
    )
    sub.add_argument("--probes", type=int, default=2, help="--reference-clusters: clusters each row is compared with")
    sub = command("retrieve", _retrieve, "the --vectors samples nearest each of --seeds (retrieval toward a target)")
    sub.add_argument("--seeds", required=True, help="samples that stand for the target: table, .npy or .parquet")
    sub.add_argument("--per-seed", type=int, default=4, help="samples retrieved per seed (--method neighbours)")
    sub.add_argument(
        "--method",
        choices=["neighbours", "clusters"],
        default="neighbours",
        help="neighbours: each seed's nearest samples; clusters: every sample of the clusters nearest the seeds",
    )
    sub.add_argument("--metric", choices=["cosine", "l2"], default="cosine")
    sub.add_argument(
        "--space",
        choices=[AUTO, *SPACES],
        default=AUTO,
        help="vectors the cosine is taken between (auto: whitened from 1.5 rows per dimension, centred below)",
    )
    sub.add_argument("--n-clusters", type=int, help="--method clusters: k-means on --vectors with this many clusters")
    sub.add_argument("--clusters-column", help="--method clusters: a column of the --vectors table, e.g. level_1")
    sub.add_argument("--probes", type=int, default=1, help="--method clusters: clusters each seed picks")
    sub.add_argument(
        "--exclude-near-copies", action="store_true", help="leave out near-copies of a seed (contamination's rule)"
    )
    sub.add_argument("--threshold", type=float, help="--exclude-near-copies: cosine of a copy (default: the space's)")
    sub = command("report", _report, "plots and an HTML report")
    sub.add_argument("--curated", help="curated sample ids to compare with the pool: curate's curated_ids.npy")
    sub = command("explore", _explore, "an interactive HTML page of the map, clusters, subsets and samples")
    sub.add_argument("--labels", help="cluster ids per row, (rows,) or (rows, levels): curate's labels.npy")
    sub.add_argument("--curated", help="curated sample ids: curate's curated_ids.npy")
    sub.add_argument("--selected", help="selected sample ids: select's selected_ids.npy")
    sub.add_argument("--splits", nargs="+", help="name=FILE of sample ids, e.g. train=runs/a/split_train.npy")
    sub.add_argument("--duplicates", help="dedup's duplicates.jsonl: the groups side by side")
    sub.add_argument("--max-points", type=int, default=20_000, help="rows drawn on the map")
    sub.add_argument("--max-thumbnails", type=int, default=3_000, help="map points that carry a thumbnail")
    sub.add_argument("--size", type=int, default=64, help="image side read from the source")
    add_source_options(sub, describing=False)
    text = "write sample ids as files: a path list, CSV, JSONL, a folder of links or copies, shards, a dataset"
    sub = commands.add_parser("export", help=text, description=text)
    sub.add_argument("--vectors", required=True, help="the VectorTable describe wrote (it records the source)")
    sub.add_argument(
        "--ids",
        "--rows",
        dest="ids",
        required=True,
        help="sample ids: a command's .npy (e.g. selected_ids.npy) or .txt",
    )
    sub.add_argument("--to", required=True, help="the file or folder to write")
    sub.add_argument("--format", choices=list(FORMATS), help="default: from --to's suffix (.txt, .csv, .jsonl)")
    sub.add_argument("--overwrite", action="store_true", help="replace --to when it exists")
    sub.set_defaults(run=_export, out=None)
    sub = commands.add_parser("info", help="what a VectorTable holds", description="what a VectorTable holds")
    sub.add_argument("table", type=Path, help="a VectorTable directory (e.g. RUN/vectors)")
    sub.add_argument("--json", action="store_true", help="print it as JSON")
    sub.set_defaults(run=run_info, out=None)
    sub = command("demo", _demo, "the long-tailed Fashion-MNIST demo (what `make demo` runs)", vectors=False)
    sub.add_argument("--target", type=int, default=5000)
    sub.add_argument("--text", action="store_true", help="the text demo: Debian's fortunes described with MiniLM")
    sub.add_argument("--record", type=Path, help="also write what the demo prints to this file, dated")
    for sub in _commands(parser).values():
        _show_defaults(sub)
    return parser


def _version() -> str:
    from curata import __version__

    return __version__


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Name each option's default in ``--help`` (``(default: 20)``), for the options that have one."""
    for action in parser._actions:
        if not action.option_strings or any(action.default is no for no in (None, False, argparse.SUPPRESS)):
            continue
        if action.help is argparse.SUPPRESS or "%(default)" in (action.help or ""):
            continue
        action.help = f"{action.help} (default: %(default)s)" if action.help else "default: %(default)s"


def _config_defaults(argv: list[str], parser: argparse.ArgumentParser) -> dict[str, dict[str, Any]]:
    """The ``--config`` file's tables, each key checked against its command's options."""
    if "--config" not in argv:
        return {}
    position = argv.index("--config") + 1
    if position >= len(argv):
        raise ValueError("--config needs a TOML file")
    path = Path(argv[position])
    if not path.is_file():
        raise FileNotFoundError(f"--config {str(path)!r} does not exist")
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        config = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"--config {str(path)!r} is not valid TOML: {error}") from None
    commands = _commands(parser)
    for name, table in config.items():
        if name not in commands:
            raise ValueError(f"--config {str(path)!r}: [{name}] is not a command; commands: {sorted(commands)}")
        if not isinstance(table, dict):
            raise ValueError(f"--config {str(path)!r}: {name} must be a table ([{name}]) of options")
        options = {a.dest for a in commands[name]._actions if a.dest not in ("help", "run")}
        for key in table:
            if key.replace("-", "_") not in options:
                known = sorted(o.replace("_", "-") for o in options)
                raise ValueError(f"--config {str(path)!r}: [{name}] has no option {key!r}; its options: {known}")
    return config


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return dict(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


# what a user's input can raise (argument checks, missing files, a locked or damaged table): one line, no traceback
def _user_errors() -> tuple[type[BaseException], ...]:
    from curata.store.locking import TableLockedError
    from curata.store.table import DamagedTableError

    return (ValueError, TypeError, KeyError, OSError, TableLockedError, DamagedTableError)


def _one_line_warning(message: Warning | str, *_: Any, **__: Any) -> None:
    """A warning of the ``curata`` command as one line, ``warning: ...``, without the Python source line."""
    print(f"warning: {message}", file=sys.stderr)


def command_line(argv: list[str] | None = None) -> int:
    """The installed ``curata`` command: ``main``, with a user error printed as one line (``curata: error: ...``)
    and exit status 2 instead of a traceback (set ``CURATA_TRACEBACK=1`` to see it); a Ctrl-C as one line too
    (``interrupted: ...``, status 130), and each warning (``warning: ...``, no source line)."""
    import os

    try:
        with warnings.catch_warnings():
            if not os.environ.get("CURATA_TRACEBACK"):
                warnings.showwarning = _one_line_warning
            main(argv)
    except KeyboardInterrupt as interrupt:  # Ctrl-C: what was kept, in one line (describe says how many rows)
        if os.environ.get("CURATA_TRACEBACK"):
            raise
        print(f"interrupted{': ' + str(interrupt) if str(interrupt) else ''}", file=sys.stderr)
        return 130
    except _user_errors() as error:
        if os.environ.get("CURATA_TRACEBACK"):
            raise
        text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        print(f"curata: error: {text}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``curata`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    config = _config_defaults(argv, parser)
    for name, sub in _commands(parser).items():
        defaults = {key.replace("-", "_"): value for key, value in config.get(name, {}).items()}
        if "out" in defaults:
            defaults["out"] = Path(defaults["out"])
        sub.set_defaults(**defaults)
        for sub_action in sub._actions:
            if sub_action.dest in defaults:
                sub_action.required = False
    args = parser.parse_args(argv)
    parsed = [key for key in vars(args) if key != "run"]  # summary.json's parameters, as the command used them
    for name in ("n", "target", "batch_size"):
        if getattr(args, name, None) is not None:
            check_int(getattr(args, name), f"--{name.replace('_', '-')}", minimum=1)
    if args.out is None:  # curata info: reads only
        args.run(args)
        return
    from curata.clustering.progress import fit_progress
    from curata.store.locking import write_lock

    with _process_group(args), recorded_parameters(args, parsed):
        if not writes_outputs():
            args.run(args)
            return
        # long k-means fits say where they are on stderr, one line every few seconds; one command at a time per run
        # directory, its lock file inside it (the run directory is never replaced whole: nothing beside --out)
        with fit_progress(args.command, FIT_PROGRESS_SECONDS), write_lock(args.out, wait=0, inside=True):
            args.run(args)


@contextlib.contextmanager
def _process_group(args: argparse.Namespace) -> Iterator[None]:
    """Under torchrun (WORLD_SIZE > 1), a process group for the command: NCCL when it runs on CUDA, else gloo.
    describe shards the samples and k-means the rows over the ranks; rank 0 writes the run's files."""
    import os

    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        yield
        return
    device = str(getattr(args, "device", None) or "cpu")
    if device.startswith("cuda"):
        import torch

        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        if device == "cuda":
            args.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    try:
        yield
        dist.barrier()  # rank 0 has written everything before any rank exits
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(command_line())
