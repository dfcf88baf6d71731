"""TextFiles: texts from .txt files (one per line) or a column of JSONL, CSV or Parquet files, as a dataset.

Every file is read when the dataset is built, so an unreadable record (bad JSON, a missing column) stops the job
with its file and line before any sample is embedded; blank texts are skipped with one warning that counts them.
Sample ids are positions in the list of texts, in file order: the same files give the same ids on every run.
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from curata.sources.labels import labelled_item, numbered_labels
from curata.sources.locations import Locations
from curata.sources.text_paths import expand_text_paths

__all__ = ["TextFiles", "TEXT_SUFFIXES"]

TEXT_SUFFIXES = (".txt", ".jsonl", ".csv", ".parquet")


def _records(
    path: Path, column: str | None, label_column: str | None, separator: str | None = None
) -> Iterator[tuple[int, Any, Any]]:
    """(line or record number from 1, text, label or None) of every record of one file."""
    suffix = path.suffix.lower()
    if separator is not None:  # multi-line texts between separator lines (the first line of each is its number)
        with path.open(encoding="utf-8", errors="replace") as lines:
            held: list[str] = []
            first = 1
            for number, line in enumerate(lines, 1):
                if line.rstrip("\r\n") == separator:
                    yield first, "\n".join(held), None
                    held, first = [], number + 1
                else:
                    held.append(line.rstrip("\r\n"))
            if held:
                yield first, "\n".join(held), None
    elif suffix == ".txt":
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                yield number, line.rstrip("\r\n"), None
    elif suffix == ".jsonl":
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{str(path)!r} line {number} is not JSON: {error.msg}") from None
                yield number, *_fields(record, column, label_column, f"{str(path)!r} line {number}")
    elif suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            for number, record in enumerate(reader, 2):  # line 1 is the header
                yield number, *_fields(record, column, label_column, f"{str(path)!r} line {number}")
    else:
        import pyarrow.parquet as pq

        names = pq.ParquetFile(path).schema_arrow.names
        wanted = [c for c in (column, label_column) if c is not None]
        for name in wanted:
            if name not in names:
                raise ValueError(f"{str(path)!r} has no column {name!r}; its columns: {names}")
        data = pq.read_table(path, columns=wanted).to_pydict()
        labels = data[label_column] if label_column is not None else [None] * len(data[wanted[0]])
        for number, (text, label) in enumerate(zip(data[wanted[0]], labels), 1):
            yield number, text, label


def _fields(record: Any, column: str | None, label_column: str | None, where: str) -> tuple[Any, Any]:
    if not isinstance(record, dict):
        raise ValueError(f"{where} is not an object with a {column!r} field")
    for name in (column, label_column):
        if name is not None and name not in record:
            raise ValueError(f"{where} has no {name!r} field; its fields: {sorted(record)}")
    return record[column], (record[label_column] if label_column is not None else None)


class TextFiles(Dataset):
    """The texts of ``files`` as ``{"data": str}`` items (plus ``"label"`` with ``label_column`` or
    ``label_by_file``).

    Args:
        files: .txt (one text per line), .jsonl, .csv or .parquet files (the last three need ``column``),
            folders of them and glob patterns; each real file is read once (links to a listed file add nothing)
            and binary files are skipped with a warning naming them (``expand_text_paths``).
        column: the field or column holding the text.
        label_column: a field or column holding each text's label: ints are kept, other values (strings) are
            numbered in sorted order (``classes``).
        label_by_file: label each text with its file's position in ``files`` (``classes`` = the file names).
        separator: read plain text files (any name) whose texts span lines, separated by lines holding only
            this string (``"%"`` for fortune files).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "quotes.txt")
        >>> _ = open(path, "w").write("first quote\\n\\nsecond quote\\n")
        >>> texts = TextFiles([path], label_by_file=True)
        >>> len(texts), texts[1]["data"], int(texts[1]["label"])
        (2, 'second quote', 0)
    """

    def __init__(
        self,
        files: Sequence[str | os.PathLike[str]],
        *,
        column: str | None = None,
        label_column: str | None = None,
        label_by_file: bool = False,
        separator: str | None = None,
    ) -> None:
        if isinstance(files, (str, os.PathLike)) or not files:
            raise ValueError(f"files must be a non-empty list of paths, got {files!r}")
        if label_column is not None and label_by_file:
            raise ValueError("label_column and label_by_file both label the texts: pass one")
        paths = expand_text_paths(files, TEXT_SUFFIXES, separator)
        for path in paths:
            suffix = path.suffix.lower()
            if separator is not None:
                if column is not None or label_column is not None:
                    raise ValueError("separator reads plain text files: column and label_column do not apply")
                continue
            if suffix not in TEXT_SUFFIXES:
                raise ValueError(f"text files must end in one of {TEXT_SUFFIXES}, got {str(path)!r}")
            if suffix != ".txt" and column is None:
                raise ValueError(f"{str(path)!r}: {suffix} files need column= (the field holding the text)")
            if suffix == ".txt" and label_column is not None:
                raise ValueError(f"{str(path)!r}: .txt files have no label_column; use label_by_file")
        self.texts: list[str] = []
        self.origins: list[tuple[int, int]] = []  # (position in files, line or record number) of each text
        raw_labels: list[Any] = []
        blank = 0
        for position, path in enumerate(paths):
            for number, text, label in _records(path, column, label_column, separator):
                if text is None or (isinstance(text, str) and not text.strip()):
                    blank += 1
                    continue
                if not isinstance(text, str):
                    raise ValueError(f"{str(path)!r} record {number}: the text is {type(text).__name__}, not a string")
                self.texts.append(text)
                self.origins.append((position, number))
                raw_labels.append(position if label_by_file else label)
        if blank:
            warnings.warn(f"TextFiles: skipped {blank} blank texts", RuntimeWarning, stacklevel=2)
        if not self.texts:
            raise ValueError(f"no texts in {[str(p) for p in paths]}")
        self.skipped = blank
        self.paths = paths
        self._files = [[p.name, p.stat().st_size] for p in paths]
        self._settings = {"column": column, "label_column": label_column, "label_by_file": label_by_file}
        if separator is not None:
            self._settings["separator"] = separator
        self.classes: list[Any] = []
        self.labels: list[int] | None = None
        if label_by_file:
            self.classes = [p.name for p in paths]
            self.labels = raw_labels
        elif label_column is not None:
            self.labels, self.classes = numbered_labels(raw_labels)

    def fingerprint(self) -> dict[str, Any]:
        """The files (names and sizes), how they are read, and the number of texts."""
        return {"kind": "TextFiles", "files": self._files, **self._settings, "texts": len(self.texts)}

    def locations(self) -> Locations:
        """Each sample id's file (``file``, numbering ``files``) and ``record``: the line of a .txt or .jsonl file
        (from 1), the CSV record (the header is 1), the Parquet row (from 1), or the first line of a text split by
        ``separator``. ``describe`` records this with the table so that ids lead back to records later.

        Example:
            >>> import tempfile, os
            >>> path = os.path.join(tempfile.mkdtemp(), "quotes.txt")
            >>> _ = open(path, "w").write("first\\nsecond\\n")
            >>> TextFiles([path]).locations().where(1) == f"{path}:2"
            True
        """
        columns: dict[str, list[Any]] = {
            "file": [position for position, _ in self.origins],
            "record": [number for _, number in self.origins],
        }
        if self.labels is not None:
            columns["label"] = list(self.labels)
        named = bool(self.classes) and all(isinstance(c, str) for c in self.classes)
        files = [str(p.resolve()) for p in self.paths]
        return Locations("TextFiles", "", files, dict(self._settings), list(self.classes), named, columns)

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return labelled_item(self.texts[i], self.labels, i)
