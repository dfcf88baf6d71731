"""export(): sample ids of a table written as files a person or another tool can use.

The table knows where its samples came from (``describe`` records the source's ``locations()``), so ids become a
list of paths, a CSV or JSONL of paths with labels, clusters and scores, a folder of links or copies laid out by
label, WebDataset shards, or a Hugging Face dataset saved to disk. Everything is checked before the first write,
and the output appears in one rename: a failed export leaves nothing at ``out``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curata._internal.atomic import staging_path, swap_in, write_atomically
from curata.sources.locations import Locations, recorded_source

__all__ = ["FORMATS", "export", "read_ids", "sample_records"]

FORMATS = ("txt", "csv", "jsonl", "links", "copies", "webdataset", "hf")
_SUFFIXES = {".txt": "txt", ".csv": "csv", ".jsonl": "jsonl"}
_CLUSTER_COLUMN = re.compile(r"^(cluster|level_(\d+))$")
_PIL_SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif"}


def read_ids(file: str | os.PathLike[str], flag: str = "ids") -> np.ndarray:
    """Sample ids from a ``.npy`` file of integers or a text file of one id a line (blank lines skipped).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "ids.txt")
        >>> _ = open(path, "w").write("3\\n\\n7\\n")
        >>> read_ids(path).tolist()
        [3, 7]
    """
    path = Path(file)
    if not path.is_file():
        raise FileNotFoundError(f"{flag} {str(path)!r} does not exist")
    if path.suffix == ".npy":
        ids = np.load(path, allow_pickle=False)
    else:
        try:
            ids = np.array([int(line) for line in path.read_text().split()], dtype=np.int64)
        except ValueError:
            raise ValueError(f"{flag} {str(path)!r} must hold one integer sample id a line (or be a .npy)") from None
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(
            f"{flag} {str(path)!r} must hold a 1-D array of integer sample ids, got {ids.dtype} {ids.shape}"
        )
    return ids.astype(np.int64)


def _check_ids(table: Any, ids: Any) -> np.ndarray:
    array = np.asarray(ids)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)) or array.dtype == bool:
        raise TypeError(
            f"ids must be a 1-D array of integer sample ids (the table's idx), got {array.dtype} {array.shape}"
        )
    array = array.astype(np.int64)
    unique, counts = np.unique(array, return_counts=True)
    if (counts > 1).any():
        raise ValueError(
            f"ids holds sample id {int(unique[counts > 1][0])} {int(counts[counts > 1][0])} times: pass each once"
        )
    missing = np.setdiff1d(unique, table.sample_ids(), assume_unique=True)
    if len(missing):
        raise ValueError(
            f"ids holds {len(missing)} sample ids that are not in table {str(table.path)!r}, e.g. {int(missing[0])}: "
            "pass sample ids (its idx column), as curata's commands write them"
        )
    return array


def _locations(table: Any, source: Any) -> Locations:
    if source is None:
        places = recorded_source(table)
        if places is None:
            raise ValueError(
                f"table {str(table.path)!r} records no source (it was not described from an ImageFolder, "
                "WebDatasetShards, TextFiles or HuggingFaceDisk by this curata): pass source= the dataset it was "
                "described from, or describe it again"
            )
        return places
    if isinstance(source, Locations):
        return source
    if not callable(getattr(source, "locations", None)):
        raise TypeError(f"source must be a curata source (with locations()) or Locations, got {type(source).__name__}")
    return source.locations()


def _cluster_columns(table: Any, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Each cluster column (``cluster``, ``level_1``, ...) as one cluster per id: the majority among its rows (ties:
    the smallest cluster id)."""
    names = [c for c in table.columns if _CLUSTER_COLUMN.match(c)]
    names.sort(key=lambda c: (c != "cluster", int(_CLUSTER_COLUMN.match(c).group(2) or 0)))  # type: ignore[union-attr]
    if not names:
        return {}
    idx = table.column("idx")
    keep = np.isin(idx, ids)
    out = {}
    for name in names:
        values = np.asarray(table.column(name))[keep].astype(np.int64)
        pairs, counts = np.unique(np.stack([idx[keep], values], axis=1), axis=0, return_counts=True)
        order = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))  # per sample: most rows first, then smallest id
        first = np.r_[True, pairs[order][1:, 0] != pairs[order][:-1, 0]]
        best = pairs[order][first]
        out[name] = best[np.searchsorted(best[:, 0], ids), 1]
    return out


def _texts(places: Locations, ids: Sequence[int]) -> dict[int, str]:
    """The texts of TextFiles samples, read again from their files (one pass over each file needed)."""
    from curata.sources.texts import _records

    settings = places.settings
    wanted: dict[tuple[int, int], int] = {}
    for i in ids:
        wanted[(places.columns["file"][i], places.columns["record"][i])] = int(i)
    out: dict[int, str] = {}
    for number in sorted({file for file, _ in wanted}):
        path = Path(places.files[number])
        for record, text, _ in _records(
            path, settings.get("column"), settings.get("label_column"), settings.get("separator")
        ):
            if (number, record) in wanted:
                out[wanted[(number, record)]] = text
    lost = [i for i in ids if int(i) not in out]
    if lost:
        raise ValueError(f"{places.where(lost[0])} no longer holds a text: the file changed since describe")
    return out


def _hf_rows(places: Locations) -> Any:
    try:
        import datasets
    except ImportError as exc:
        raise ImportError(
            "exporting a Hugging Face source needs the datasets package: pip install 'curata[hf]'"
        ) from exc
    loaded = datasets.load_from_disk(places.root)
    split = places.settings.get("split")
    return loaded[split] if split is not None else loaded


def _image_suffix(content: bytes) -> str:
    from PIL import Image

    with Image.open(io.BytesIO(content)) as image:
        return _PIL_SUFFIXES.get(image.format or "", ".png")


def sample_records(
    table: Any,
    ids: Any,
    *,
    source: Any = None,
    command: str | None = None,
    scores: Any = None,
) -> list[dict[str, Any]]:
    """What ``export`` writes per sample in CSV and JSONL: ``id``, ``path`` (the file, ``shard.tar:member``,
    ``file:line`` or ``folder[row]``), ``label`` (the class name when the source knows it), a cluster per cluster
    column of the table (``cluster``, ``level_1``, ...: the majority of the sample's rows), ``text`` for text
    files, and ``selected_by`` / ``score`` when given.

    Example:
        >>> import numpy as np, tempfile, os
        >>> from PIL import Image
        >>> from curata import ImageFolder, VectorTable
        >>> root = tempfile.mkdtemp()
        >>> for name in ("cat/a.png", "dog/b.png"):
        ...     os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
        ...     Image.new("RGB", (4, 4)).save(os.path.join(root, name))
        >>> table = VectorTable.from_arrays(os.path.join(root, "t"), np.eye(2), labels=[0, 1])
        >>> [(r["id"], r["label"]) for r in sample_records(table, [1], source=ImageFolder(root))]
        [(1, 'dog')]
    """
    table = _as_table(table)
    ids = _check_ids(table, ids)
    places = _checked_locations(table, ids, source)
    return _records_of(table, ids, places, command, _checked_scores(scores, ids))


def _records_of(
    table: Any, ids: np.ndarray, places: Locations, command: str | None, scores: np.ndarray | None
) -> list[dict[str, Any]]:
    clusters = _cluster_columns(table, ids)
    texts = _texts(places, ids.tolist()) if places.kind == "TextFiles" else {}
    records = []
    for n, i in enumerate(ids.tolist()):
        record: dict[str, Any] = {"id": i, "path": places.where(i), "label": places.label_name(i)}
        record.update({name: int(values[n]) for name, values in clusters.items()})
        if texts:
            record["text"] = texts[i]
        if command is not None:
            record["selected_by"] = command
        if scores is not None:
            record["score"] = None if np.isnan(scores[n]) else float(scores[n])
        records.append(record)
    return records


def _as_table(table: Any) -> Any:
    from curata.store.table import VectorTable

    if isinstance(table, VectorTable):
        return table
    if isinstance(table, (str, os.PathLike)):
        return VectorTable.open(table)
    raise TypeError(f"table must be a VectorTable or its path, got {type(table).__name__}")


def _checked_scores(scores: Any, ids: np.ndarray) -> np.ndarray | None:
    if scores is None:
        return None
    values = np.asarray(scores, dtype=np.float64)
    if values.shape != ids.shape:
        raise ValueError(f"scores must hold one value per id ({len(ids)}), got shape {values.shape}")
    return values


def _checked_locations(table: Any, ids: np.ndarray, source: Any) -> Locations:
    places = _locations(table, source)
    if len(ids) and int(ids.max()) >= len(places):
        raise ValueError(
            f"the table's source holds {len(places)} samples but ids reach {int(ids.max())}: it is not the source "
            "these ids were described from"
        )
    if places.kind == "ImageFolder":
        for i in ids.tolist():
            file = places.file(i)
            if file is None or not file.is_file():
                raise FileNotFoundError(f"sample {i}'s file {str(file)!r} no longer exists")
    else:
        for path in (
            [places.root] if places.root else sorted({places.files[places.columns["file"][i]] for i in ids.tolist()})
        ):
            if not os.path.exists(path):
                raise FileNotFoundError(f"the source {path!r} of these samples no longer exists")
    return places


def _format(format: str | None, out: Path) -> str:
    if format is None:
        if out.suffix.lower() not in _SUFFIXES:
            raise ValueError(
                f"format must be one of {FORMATS} (or out ending in .txt, .csv, .jsonl), got out {str(out)!r}"
            )
        return _SUFFIXES[out.suffix.lower()]
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    return format


def _check_fits(fmt: str, places: Locations) -> None:
    if fmt == "links" and places.kind != "ImageFolder":
        raise ValueError(
            f"format='links' needs a source of one file per sample (an image folder); a {places.kind} sample lies "
            "inside a bigger file: use format='copies'"
        )
    if fmt in ("copies", "webdataset") and places.kind == "HuggingFaceDisk":
        rows = _hf_rows(places)
        import datasets

        feature = rows.features[places.settings["column"]]
        if not isinstance(feature, datasets.Image) and getattr(feature, "dtype", None) not in (
            "string",
            "large_string",
        ):
            raise ValueError(
                f"format={fmt!r} writes image or text files; column {places.settings['column']!r} holds neither: use "
                "format='hf'"
            )


def export(
    table: Any,
    ids: Any,
    out: str | os.PathLike[str],
    *,
    format: str | None = None,
    overwrite: bool = False,
    source: Any = None,
    command: str | None = None,
    scores: Any = None,
    shard_samples: int = 10_000,
) -> Path:
    """Write the samples ``ids`` of ``table`` to ``out`` as files; returns ``out``.

    Formats: ``"txt"`` (one path a line), ``"csv"`` and ``"jsonl"`` (a record per sample: see ``sample_records``),
    ``"links"`` (a folder of symbolic links to the image files, a subfolder per class), ``"copies"`` (the same
    with copies; tar members and texts are written out as files), ``"webdataset"`` (tar shards of
    ``shard_samples`` samples: the original file(s) of each sample under its id as key, and its label as
    ``.cls``) and ``"hf"`` (a Hugging Face dataset saved with ``save_to_disk``: id, path, label, clusters and the
    image or text; needs ``datasets``). Without ``format``, the suffix of ``out`` (.txt, .csv, .jsonl) says it.
    Rows come in the order of ``ids``.

    Args:
        table: a VectorTable (or its path) that ``describe`` wrote from a curata source, which it records.
        ids: sample ids (the table's ``idx`` values), as every curata command writes them.
        out: the file or folder to write; refused when it exists, unless ``overwrite``.
        source: the dataset the table was described from (or its ``locations()``), for a table that records
            none.
        command: what chose these ids (e.g. "select kcenter"), written as ``selected_by`` in CSV and JSONL.
        scores: one number per id (e.g. a similarity), written as ``score`` in CSV and JSONL.
        shard_samples: samples per WebDataset shard.

    Ids not in the table, a table without a source, a missing file or an ``out`` that exists are refused before
    anything is written; the file, or folder, is written beside ``out`` and renamed into place when complete.

    Example:
        >>> import numpy as np, tempfile, os
        >>> from PIL import Image
        >>> from curata import ImageFolder, describe
        >>> root = tempfile.mkdtemp()
        >>> for name in ("cat/a.png", "cat/b.png", "dog/c.png"):
        ...     os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
        ...     Image.new("RGB", (4, 4)).save(os.path.join(root, name))
        >>> table = describe(ImageFolder(root, size=4), lambda x: x.float().mean(dim=(2, 3)),
        ...                  os.path.join(root, "v"), progress=False)
        >>> listing = export(table, [2, 0], os.path.join(root, "picked.txt"))
        >>> [os.path.relpath(line, root) for line in listing.read_text().split()]
        ['dog/c.png', 'cat/a.png']
    """
    from curata._internal.checks import check_int

    out = Path(out)
    fmt = _format(format, out)
    check_int(shard_samples, "shard_samples", minimum=1)
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise FileExistsError(f"out {str(out)!r} exists: pass overwrite=True (--overwrite) to replace it")
        folder = fmt not in _SUFFIXES.values()
        if out.is_dir() != folder:
            kind = "a folder" if out.is_dir() else "a file"
            raise ValueError(f"out {str(out)!r} is {kind}; format={fmt!r} writes {'a folder' if folder else 'a file'}")
    table = _as_table(table)
    ids = _check_ids(table, ids)
    values = _checked_scores(scores, ids)
    places = _checked_locations(table, ids, source)
    _check_fits(fmt, places)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "txt":
        paths = "".join(f"{places.where(i)}\n" for i in ids.tolist())
        return write_atomically(out, lambda staging: staging.write_text(paths))
    if fmt in ("csv", "jsonl"):
        records = _records_of(table, ids, places, command, values)
        return write_atomically(out, lambda staging: _write_records(staging, records, fmt))
    staging = staging_path(out)
    try:
        if fmt == "hf":
            _write_hf(staging, table, ids, places, command, values)
        else:
            staging.mkdir()
            if fmt == "webdataset":
                _write_shards(staging, ids, places, shard_samples)
            else:
                _write_files(staging, ids, places, link=fmt == "links")
        if out.exists() or out.is_symlink():
            swap_in(staging, out)
        else:
            os.rename(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out


def _write_records(file: Path, records: list[dict[str, Any]], fmt: str) -> None:
    with file.open("w", encoding="utf-8", newline="") as handle:
        if fmt == "jsonl":
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            return
        fields = list(records[0]) if records else ["id", "path", "label"]
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in records)


def _folder_name(value: Any) -> str:
    name = str(value).replace(os.sep, "_").strip() or "_"
    return "_" + name if name in (".", "..") else name


def _sample_files(ids: np.ndarray, places: Locations) -> Iterator[tuple[int, str, bytes | Path]]:
    """(id, file name, the file or its bytes) of each sample, the name without a class folder."""
    if places.kind == "ImageFolder":
        for i in ids.tolist():
            relative = Path(places.columns["path"][i])
            inside = Path(*relative.parts[1:]) if places.label(i) is not None and len(relative.parts) > 1 else relative
            yield i, inside.as_posix(), places.file(i)  # type: ignore[misc]
    elif places.kind == "WebDatasetShards":
        for i in ids.tolist():
            member = places.columns["member"][i]
            if not member:
                raise ValueError(f"sample {i} ({places.where(i)}) has no data member to write")
            content = _member(places, i, member.rpartition(".")[2])
            yield i, member.replace("/", "_"), content
    elif places.kind == "TextFiles":
        texts = _texts(places, ids.tolist())
        for i in ids.tolist():
            yield i, f"{i}.txt", texts[i].encode("utf-8")
    else:
        for i, content in _hf_contents(places, ids):
            yield (
                i,
                (f"{i}.txt" if isinstance(content, str) else f"{i}{_image_suffix(content)}"),
                (content.encode("utf-8") if isinstance(content, str) else content),
            )


def _member(places: Locations, i: int, extension: str) -> bytes:
    parts = json.loads(places.columns["members"][i])
    if extension not in parts:
        raise ValueError(f"sample {i} ({places.where(i)}) has no .{extension} member")
    offset, size = parts[extension]
    with open(places.files[places.columns["file"][i]], "rb") as handle:
        handle.seek(offset)
        content = handle.read(size)
    if len(content) != size:
        raise ValueError(f"{places.where(i)} is cut short: the shard changed since describe")
    return content


def _hf_contents(places: Locations, ids: np.ndarray) -> Iterator[tuple[int, bytes | str]]:
    """Each sample's image bytes (as saved) or text, from the saved dataset."""
    import datasets

    column = places.settings["column"]
    with _quiet(datasets):
        rows = _hf_rows(places).select([places.columns["row"][i] for i in ids.tolist()])
        if isinstance(rows.features[column], datasets.Image):
            rows = rows.cast_column(column, datasets.Image(decode=False))
    for i, value in zip(ids.tolist(), rows[column]):
        if isinstance(value, dict):  # an image: its bytes, or the file it was saved from
            value = value["bytes"] if value.get("bytes") is not None else Path(value["path"]).read_bytes()
        yield i, value


def _write_files(folder: Path, ids: np.ndarray, places: Locations, link: bool) -> None:
    taken: set[Path] = set()
    for i, name, content in _sample_files(ids, places):
        label = places.label_name(i)
        target = folder / name if label is None else folder / _folder_name(label) / name
        if target in taken:  # two shards with the same key, say: the id tells them apart
            target = target.with_name(f"{i}-{target.name}")
        taken.add(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            if link:
                os.symlink(content, target)
            else:
                shutil.copy2(content, target)
        else:
            target.write_bytes(content)


def _write_shards(folder: Path, ids: np.ndarray, places: Locations, per_shard: int) -> None:
    width = max(6, len(str(int(ids.max())))) if len(ids) else 6
    files = None if places.kind == "WebDatasetShards" else _sample_files(ids, places)
    tar: tarfile.TarFile | None = None
    try:
        for n, i in enumerate(ids.tolist()):
            if n % per_shard == 0:
                if tar is not None:
                    tar.close()
                tar = tarfile.open(folder / f"shard-{n // per_shard:06d}.tar", "w", format=tarfile.USTAR_FORMAT)
            assert tar is not None
            label = places.label(i)
            if files is None:  # every original member of the sample but a .cls the label replaces
                parts = json.loads(places.columns["members"][i])
                wanted = [e for e in parts if "!" not in e and not (e == "cls" and label is not None)]
                members = [(e, _member(places, i, e)) for e in wanted]
            else:
                _, name, content = next(files)
                data = content.read_bytes() if isinstance(content, Path) else content
                members = [(Path(name).suffix.lstrip(".").lower() or "bin", data)]
            if label is not None:
                members.append(("cls", str(label).encode()))
            for extension, data in members:
                info = tarfile.TarInfo(f"{i:0{width}d}.{extension}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    finally:
        if tar is not None:
            tar.close()


def _write_hf(
    folder: Path, table: Any, ids: np.ndarray, places: Locations, command: str | None, scores: np.ndarray | None
) -> None:
    try:
        import datasets
    except ImportError as exc:
        raise ImportError("format='hf' needs the datasets package: pip install 'curata[hf]'") from exc
    records = _records_of(table, ids, places, command, scores)
    names = list(records[0]) if records else ["id", "path", "label"]
    columns: dict[str, list[Any]] = {key: [r.get(key) for r in records] for key in names}
    labels = [places.label(i) for i in ids.tolist()]
    features: dict[str, Any] = {}
    if places.named and labels and all(label is not None for label in labels):
        columns["label"] = labels
        features["label"] = datasets.ClassLabel(names=[str(c) for c in places.classes])
    with _quiet(datasets):
        if places.kind == "HuggingFaceDisk":  # the saved rows, every column kept, with ours beside them
            rows = _hf_rows(places).select([places.columns["row"][i] for i in ids.tolist()])
            rows = rows.select_columns([c for c in rows.column_names if c not in columns])
            for name, values in columns.items():
                rows = rows.add_column(name, values, feature=features.get(name))
            rows.save_to_disk(str(folder))
            return
        if places.kind == "WebDatasetShards" and places.settings.get("data") == "text":
            columns["text"] = [_member(places, i, "txt").decode("utf-8") for i in ids.tolist()]
        elif places.kind != "TextFiles":
            columns["image"] = [
                {"bytes": c.read_bytes() if isinstance(c, Path) else c, "path": name}
                for _, name, c in _sample_files(ids, places)
            ]
            features["image"] = datasets.Image()
        built = datasets.Dataset.from_dict(columns)
        for name, feature in features.items():
            built = built.cast_column(name, feature)
        built.save_to_disk(str(folder))


@contextlib.contextmanager
def _quiet(datasets: Any) -> Iterator[None]:
    """``datasets`` without its progress bars for a moment (an export prints one summary line)."""
    enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if enabled:
            datasets.enable_progress_bars()
