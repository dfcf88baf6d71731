"""Where each sample of a source lies (its file, tar member or record), kept with the table ``describe`` writes.

A curata source's ``locations()`` says, for every sample id (a position in the source), where its data is: the
image file, the shard and tar member, the text file and line, or the row of a saved dataset. ``describe`` records
it with the table (``record_source``): the small part as the table's ``source`` attribute, the per-sample columns
in ``source_samples.parquet`` inside the table's directory (a list of millions of paths does not belong in the
table's manifest, which every commit rewrites). ``recorded_source(table)`` reads it back, so that sample ids
lead to files later without rebuilding the source.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["KINDS", "Locations", "open_source", "record_source", "recorded_classes", "recorded_source", "SAMPLES_FILE"]

KINDS = ("ImageFolder", "WebDatasetShards", "TextFiles", "HuggingFaceDisk")
SAMPLES_FILE = "source_samples.parquet"


@dataclass(frozen=True)
class Locations:
    """Where each sample of a source lies, by sample id.

    Attributes:
        kind: the source's class name, one of ``KINDS``.
        root: the image folder or saved dataset, absolute ("" for shards and text files).
        files: the shards or text files, absolute, that the ``file`` column numbers.
        settings: how the source read its samples (image side, text column, separator, split, ...): enough to
            build it again (``open_source``).
        classes: the class of each label: a name when ``named`` (labels index it), else the label values.
        named: whether a label is a position in ``classes`` (class folders, file names, strings numbered).
        columns: one list per field, a value per sample id: ``path`` (ImageFolder, relative to ``root``);
            ``file``, ``key``, ``member``, ``members`` (WebDatasetShards: the data member's name and every
            member's (offset, size) as JSON); ``file``, ``record`` (TextFiles: the line or record number from 1);
            ``row`` (HuggingFaceDisk); and ``label`` when the source has labels.

    Example:
        >>> places = Locations("ImageFolder", "/data/photos", [], {"size": 224}, ["cat", "dog"], True,
        ...                    {"path": ["cat/1.png", "dog/2.png"], "label": [0, 1]})
        >>> len(places), places.where(1), places.label_name(1)
        (2, '/data/photos/dog/2.png', 'dog')
    """

    kind: str
    root: str
    files: list[str]
    settings: dict[str, Any]
    classes: list[Any] = field(default_factory=list)
    named: bool = False
    columns: dict[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        lengths = {name: len(values) for name, values in self.columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"columns must hold a value per sample each, got lengths {lengths}")

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def where(self, i: int) -> str:
        """Sample ``i``'s place as one string: its file (ImageFolder), ``shard.tar:member``, ``file:line`` or
        ``folder[row]``."""
        i = int(i)
        if self.kind == "ImageFolder":
            return str(Path(self.root) / self.columns["path"][i])
        if self.kind == "WebDatasetShards":
            return f"{self.files[self.columns['file'][i]]}:{self.columns['member'][i] or self.columns['key'][i]}"
        if self.kind == "TextFiles":
            return f"{self.files[self.columns['file'][i]]}:{self.columns['record'][i]}"
        return f"{self.root}[{self.columns['row'][i]}]"

    def file(self, i: int) -> Path | None:
        """Sample ``i``'s own file (ImageFolder), else None: its data lies inside a shard, text file or dataset."""
        return Path(self.root) / self.columns["path"][int(i)] if self.kind == "ImageFolder" else None

    def label(self, i: int) -> int | None:
        """Sample ``i``'s label as the source numbers it, or None without labels."""
        labels = self.columns.get("label")
        return None if labels is None or labels[int(i)] is None else int(labels[int(i)])

    def label_name(self, i: int) -> Any:
        """Sample ``i``'s class name when the source knows it (class folders, file names, string labels), else its
        label (None without labels)."""
        label = self.label(i)
        return self.classes[label] if label is not None and self.named else label


def record_source(table: Any, dataset: Any) -> bool:
    """Keep ``dataset.locations()`` with ``table``: ``source_samples.parquet`` in its directory, then its
    ``source`` attribute (written last: a table names its source only once the file is whole). Returns False,
    writing nothing, for a dataset without ``locations()`` or whose locations are not one per sample; refuses a
    dataset with fewer samples than the table's ids reach.

    Example:
        >>> import numpy as np, tempfile, os
        >>> from PIL import Image
        >>> from curata import ImageFolder, VectorTable
        >>> root = tempfile.mkdtemp()
        >>> Image.new("RGB", (4, 4)).save(os.path.join(root, "a.png"))
        >>> table = VectorTable.from_arrays(os.path.join(root, "t"), np.ones((1, 2)))
        >>> record_source(table, ImageFolder(root)), recorded_source(table).where(0) == os.path.join(root, "a.png")
        (True, True)
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curata._internal.atomic import write_atomically

    locations = getattr(dataset, "locations", None)
    if not callable(locations):
        return False
    places = locations()
    if not isinstance(places, Locations) or len(places) != len(dataset):
        return False
    ids = table.sample_ids()
    if len(ids) and int(ids[-1]) >= len(places):
        raise ValueError(
            f"dataset holds {len(places)} samples but table {str(table.path)!r} has sample id {int(ids[-1])}: it was "
            "not described from this dataset"
        )
    columns = pa.table({name: pa.array(values) for name, values in places.columns.items()})
    write_atomically(Path(table.path) / SAMPLES_FILE, lambda staging: pq.write_table(columns, staging))
    table.set_attr(
        "source",
        {
            "kind": places.kind,
            "root": places.root,
            "files": places.files,
            "settings": places.settings,
            "classes": places.classes,
            "named": places.named,
            "samples": len(places),
            "samples_file": SAMPLES_FILE,
        },
    )
    return True


def recorded_source(table: Any) -> Locations | None:
    """The locations ``describe`` recorded with ``table`` (see ``record_source``), or None when it recorded none.

    Raises ValueError when the table names a source whose samples file is missing or does not match it.
    """
    import pyarrow.parquet as pq

    recorded = table.get_attr("source")
    if recorded is None:
        return None
    file = Path(table.path) / recorded["samples_file"]
    if not file.is_file():
        raise ValueError(
            f"table {str(table.path)!r} records a {recorded['kind']} source but its {recorded['samples_file']} is "
            f"missing: describe the source again into a new table"
        )
    columns = pq.read_table(file).to_pydict()
    places = Locations(
        recorded["kind"],
        recorded["root"],
        list(recorded["files"]),
        dict(recorded["settings"]),
        list(recorded["classes"]),
        bool(recorded["named"]),
        columns,
    )
    if len(places) != recorded["samples"]:
        raise ValueError(
            f"table {str(table.path)!r}: {file.name} holds {len(places)} samples where the table records "
            f"{recorded['samples']}: describe the source again into a new table"
        )
    return places


def recorded_classes(table: Any) -> list[str] | None:
    """The class names of the source ``describe`` recorded with ``table`` (labels index them), or None when it
    recorded no source or its labels are not positions in a list of names. Reads the table's ``source`` attribute
    only, not its per-sample file: cheap on any table.

    Example:
        >>> import numpy as np, tempfile, os
        >>> from curata import VectorTable
        >>> table = VectorTable.from_arrays(os.path.join(tempfile.mkdtemp(), "t"), np.ones((1, 2)))
        >>> recorded_classes(table) is None
        True
    """
    recorded = table.get_attr("source")
    if recorded is None or not recorded.get("named"):
        return None
    return [str(name) for name in recorded["classes"]]


def open_source(places: Locations, size: int | None = None) -> Any:
    """The dataset ``places`` was taken from, built again from its recorded files and settings (``size``: another
    image side), e.g. to show its samples.

    Example::

        source = open_source(recorded_source(VectorTable.open("runs/p/vectors")), size=64)
    """
    settings = dict(places.settings)
    if size is not None and "size" in settings:
        settings["size"] = size
    missing = [p for p in ([places.root] if places.root else places.files) if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"the recorded {places.kind} source {missing[0]!r} no longer exists")
    if places.kind == "ImageFolder":
        from curata.sources.images import ImageFolder

        return ImageFolder(places.root, **settings)
    if places.kind == "WebDatasetShards":
        from curata.sources.webdataset import WebDatasetShards

        return WebDatasetShards(places.files, **settings)
    if places.kind == "TextFiles":
        from curata.sources.texts import TextFiles

        return TextFiles(places.files, **settings)
    from curata.sources.huggingface import HuggingFaceDisk

    return HuggingFaceDisk(places.root, **settings)
