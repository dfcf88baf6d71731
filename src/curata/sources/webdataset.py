"""WebDatasetShards: the samples of WebDataset tar shards (``{key}.jpg`` + ``{key}.cls``/``.json``/``.txt``).

The tars are read with the standard library: one pass over their headers when the dataset is built records where
each member's bytes lie, and items are then read by seeking, so the dataset is map-style (``describe`` resumes by
sample id) and needs no extraction. Sample ids are positions in (shard order, member order): the same shards give
the same ids on every run.
"""

from __future__ import annotations

import glob
import json
import os
import tarfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from curata.sources.images import decode_image
from curata.sources.labels import labelled_item, numbered_labels
from curata.sources.locations import Locations
from curata.sources.unreadable import Unreadable

__all__ = ["WebDatasetShards", "WEBDATASET_IMAGE_EXTENSIONS"]

WEBDATASET_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff")
_BLOCK = tarfile.BLOCKSIZE


def _shard_paths(shards: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    patterns = [shards] if isinstance(shards, (str, os.PathLike)) else list(shards)
    if not patterns:
        raise ValueError("shards must name at least one .tar file or glob pattern")
    paths: list[Path] = []
    for pattern in patterns:
        text = os.fspath(pattern)
        matched = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
        if not matched:
            raise FileNotFoundError(f"shards pattern {text!r} matches no file")
        for name in matched:
            if not os.path.isfile(name):
                raise FileNotFoundError(f"shard {name!r} does not exist")
            paths.append(Path(name))
    return paths


def _split_name(name: str) -> tuple[str, str]:
    """WebDataset's convention: the key is the path up to the first dot of the file name, the rest the extension."""
    folder, _, base = name.rpartition("/")
    stem, dot, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), (extension.lower() if dot else "")


def _nonzero_between(handle: Any, start: int, stop: int) -> bool:
    handle.seek(start)
    while start < stop:
        chunk = handle.read(min(1 << 20, stop - start))
        if not chunk:
            return False
        if chunk.count(0) != len(chunk):
            return True
        start += len(chunk)
    return False


def _scan(path: Path) -> tuple[list[tuple[str, dict[str, tuple[int, int]]]], list[str]]:
    """The samples of one shard in order, as (key, {extension: (data offset, size)}), and its damaged regions.

    Headers that cannot be parsed are stepped over (``ignore_zeros``) so that members after a damaged one are still
    found; the bytes skipped that way, and members cut short by the end of the file, are reported.
    """
    size = path.stat().st_size
    with path.open("rb") as head:
        magic = head.read(6)
    for prefix, kind in ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ", "xz"), (b"\x28\xb5\x2f\xfd", "zstd")):
        if magic.startswith(prefix):
            raise ValueError(
                f"shard {str(path)!r} is {kind}-compressed: WebDatasetShards reads uncompressed .tar shards"
            )
    samples: dict[str, dict[str, tuple[int, int]]] = {}
    damaged: list[str] = []
    expected = 0
    try:
        tar = tarfile.open(path, mode="r:", ignore_zeros=True)
    except tarfile.ReadError as error:
        raise ValueError(f"shard {str(path)!r} is not an uncompressed tar file: {error}") from None
    with tar, path.open("rb") as raw:
        while True:
            try:
                member = tar.next()
            except tarfile.ReadError as error:  # the file ends inside a member: that member was reported
                if expected <= size:
                    damaged.append(f"{path}: {error} after byte {expected}")
                break
            if member is None:
                break
            if member.offset > expected and _nonzero_between(raw, expected, member.offset):
                damaged.append(f"{path}: bytes {expected}-{member.offset} are not a tar member (skipped)")
            expected = member.offset_data + -(-member.size // _BLOCK) * _BLOCK
            if not member.isfile():
                continue
            key, extension = _split_name(member.name)
            if member.offset_data + member.size > size:
                damaged.append(f"{path}:{member.name}: cut short by the end of the file")
                extension = f"{extension}!truncated"
            samples.setdefault(key, {})[extension] = (member.offset_data, member.size)
        if expected == 0 and size and _nonzero_between(raw, 0, size):
            raise ValueError(f"shard {str(path)!r} is not a tar file: no member could be read")
        if expected < size and _nonzero_between(raw, expected, size):
            damaged.append(f"{path}: bytes {expected}-{size} after the last member are not a tar member (skipped)")
    return list(samples.items()), damaged


class WebDatasetShards(Dataset):
    """The samples of WebDataset tar shards as ``{"data": ..., "label": ...}`` items, read without extracting.

    Args:
        shards: .tar files or glob patterns (``"shards/*.tar"``), read in the order given (each pattern sorted).
        data: ``"image"`` (the first of ``{key}.jpg|jpeg|png|webp|...``, decoded to uint8 (3, size, size) RGB) or
            ``"text"`` (the ``{key}.txt`` member, as a string).
        label: ``"cls"`` (the integer in ``{key}.cls``), a field of ``{key}.json`` (ints kept, other values
            numbered in sorted order: ``classes``), or None.
        size: image side.

    A sample whose data cannot be decoded or is missing, or whose tar member is cut short, is an ``Unreadable``
    item (``describe`` skips it, warns and counts it); bytes of a shard that are not tar members are reported once
    when the dataset is built (``damaged``). Only the label members are read up front.

    Example::

        dataset = WebDatasetShards("shards/*.tar", label="cls", size=224)
        dataset.keys[0], dataset[0]["data"].shape  # ('000000', torch.Size([3, 224, 224]))
    """

    def __init__(
        self,
        shards: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        data: str = "image",
        label: str | None = None,
        size: int = 224,
    ) -> None:
        if data not in ("image", "text"):
            raise ValueError(f"data must be 'image' or 'text', got {data!r}")
        if label is not None and (not isinstance(label, str) or not label):
            raise ValueError(f"label must be 'cls', a field of the .json members, or None, got {label!r}")
        if data == "image":
            try:
                from PIL import Image  # noqa: F401 - checked here so the error comes before any work
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise ImportError("WebDatasetShards needs Pillow for images: pip install 'curata[images]'") from exc
        self.paths = _shard_paths(shards)
        self.data, self.label, self.size = data, label, size
        self.samples: list[tuple[int, str, dict[str, tuple[int, int]]]] = []
        self.damaged: list[str] = []
        for number, path in enumerate(self.paths):
            members, damaged = _scan(path)
            self.samples += [(number, key, parts) for key, parts in members]
            self.damaged += damaged
        if self.damaged:
            shown = "; ".join(self.damaged[:3]) + (
                f" and {len(self.damaged) - 3} more" if len(self.damaged) > 3 else ""
            )
            warnings.warn(
                f"WebDatasetShards: {len(self.damaged)} damaged regions: {shown}", RuntimeWarning, stacklevel=2
            )
        if not self.samples:
            raise ValueError(f"no samples in the shards {[str(p) for p in self.paths]}")
        self.keys = [key for _, key, _ in self.samples]
        self.classes: list[Any] = []
        self.labels: list[int | None] | None = None
        if label is not None:
            self._read_labels(label)

    def _read(self, i: int, extension: str) -> bytes | Unreadable:
        shard, _, parts = self.samples[i]
        where = self._where(i, extension)
        if f"{extension}!truncated" in parts:
            return Unreadable(where, "the tar member is cut short by the end of the shard")
        if extension not in parts:
            return Unreadable(where, f"no .{extension} member (the sample has {sorted(parts)})")
        offset, length = parts[extension]
        with self.paths[shard].open("rb") as handle:
            handle.seek(offset)
            return handle.read(length)

    def _read_labels(self, label: str) -> None:
        extension = "cls" if label == "cls" else "json"
        raw: list[Any] = []
        for i in range(len(self.samples)):
            content = self._read(i, extension)
            if isinstance(content, Unreadable):
                raise ValueError(f"label={label!r}: {content.where}: {content.reason}")
            try:
                if extension == "cls":
                    raw.append(int(content.decode("utf-8").strip()))
                    continue
                record = json.loads(content)
            except (UnicodeDecodeError, ValueError) as error:
                raise ValueError(f"label={label!r}: {self._where(i, extension)} cannot be read: {error}") from None
            if not isinstance(record, dict) or label not in record:
                fields = sorted(record) if isinstance(record, dict) else type(record).__name__
                raise ValueError(f"label={label!r}: {self._where(i, extension)} has no {label!r} field ({fields})")
            raw.append(record[label])
        self.labels, self.classes = numbered_labels(raw)

    def _where(self, i: int, extension: str) -> str:
        shard, key, _ = self.samples[i]
        return f"{self.paths[shard]}:{key}.{extension}"

    def fingerprint(self) -> dict[str, Any]:
        """The shards (names and sizes), what is read from them and the sample count: what a resume must match."""
        return {
            "kind": "WebDatasetShards",
            "shards": [[p.name, p.stat().st_size] for p in self.paths],
            "data": self.data,
            "label": self.label,
            "size": self.size,
            "samples": len(self.samples),
        }

    def locations(self) -> Locations:
        """Each sample id's shard (``file``, numbering ``files``), ``key``, data ``member`` (its image or .txt; ""
        when it has none) and every member's (offset, size) as JSON: ``describe`` records this with the table so
        that ids lead back to tar members later.

        Example::

            places = WebDatasetShards("shards/*.tar").locations()
            places.where(0)  # '/data/shards/shard-000.tar:000000.png'
        """
        data: list[str] = []
        for _, key, parts in self.samples:
            wanted = WEBDATASET_IMAGE_EXTENSIONS if self.data == "image" else ("txt",)
            extension = next((e for e in wanted if e in parts), None)
            data.append("" if extension is None else f"{key}.{extension}")
        columns: dict[str, list[Any]] = {
            "file": [number for number, _, _ in self.samples],
            "key": list(self.keys),
            "member": data,
            "members": [json.dumps({e: list(place) for e, place in parts.items()}) for _, _, parts in self.samples],
        }
        if self.labels is not None:
            columns["label"] = list(self.labels)
        named = bool(self.classes) and all(isinstance(c, str) for c in self.classes)
        settings = {"data": self.data, "label": self.label, "size": self.size}
        files = [str(p.resolve()) for p in self.paths]
        return Locations("WebDatasetShards", "", files, settings, list(self.classes), named, columns)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any] | Unreadable:
        _, _, parts = self.samples[i]
        if self.data == "text":
            content = self._read(i, "txt")
            if isinstance(content, Unreadable):
                return content
            try:
                value: Any = content.decode("utf-8")
            except UnicodeDecodeError as error:
                return Unreadable(self._where(i, "txt"), f"not UTF-8: {error}")
        else:
            extension = next((e for e in WEBDATASET_IMAGE_EXTENSIONS if e in parts or f"{e}!truncated" in parts), "jpg")
            content = self._read(i, extension)
            if isinstance(content, Unreadable):
                return content
            value = decode_image(content, self.size, self._where(i, extension))
            if isinstance(value, Unreadable):
                return value
        return labelled_item(value, self.labels, i)
