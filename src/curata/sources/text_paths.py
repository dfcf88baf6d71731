"""Which files ``--texts`` names: files, directories (their text files) and glob patterns, each file once.

A directory gives its text files, subfolders included, in sorted order (hidden ones left out): the files ending
in one of ``TEXT_SUFFIXES``, or, with a ``separator`` (plain files of multi-line texts, such as fortune files),
every file. A pattern (``'quotes/*.txt'``, ``'corpus/**/*.jsonl'``) is expanded here when the shell has not done
it. Symbolic links are followed once: a link to a file already listed (``art.u8 -> art``) adds nothing. Binary
files (a NUL byte in their first 8 KiB: ``.dat`` indexes, images; Parquet files excepted) are skipped with one
warning that names them, so that ``--texts fortunes/*`` reads the fortunes and not their indexes; a list left
with no file is refused.
"""

from __future__ import annotations

import glob
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["expand_text_paths", "is_binary"]

_PATTERN_CHARS = "*?["
_NAMED = 10  # skipped files named in the warning
_BINARY_FORMATS = (".parquet",)  # text formats whose files are binary


def is_binary(path: str | os.PathLike[str], probe: int = 8192) -> bool:
    """Whether ``path`` holds a NUL byte in its first ``probe`` bytes (text files in UTF-8 never do).

    Example:
        >>> import tempfile, os
        >>> folder = tempfile.mkdtemp()
        >>> _ = open(os.path.join(folder, "a.txt"), "w").write("text")
        >>> _ = open(os.path.join(folder, "a.dat"), "wb").write(b"\\x00\\x02")
        >>> is_binary(os.path.join(folder, "a.txt")), is_binary(os.path.join(folder, "a.dat"))
        (False, True)
    """
    with open(path, "rb") as handle:
        return b"\0" in handle.read(probe)


def _folder_files(folder: Path, suffixes: tuple[str, ...] | None) -> Iterator[Path]:
    """The files under ``folder`` (links followed, each directory visited once), sorted, hidden ones left out."""
    visited: set[str] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in visited:  # a link back to a directory already walked
            dirs[:] = []
            continue
        visited.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and (suffixes is None or Path(name).suffix.lower() in suffixes):
                yield Path(root) / name


def _named_files(
    entry: str | os.PathLike[str], suffixes: tuple[str, ...], separator: str | None, flag: str
) -> list[Path]:
    path = Path(entry)
    if path.is_dir():
        found = list(_folder_files(path, None if separator is not None else suffixes))
        if not found:
            kinds = "files" if separator is not None else f"files ending in {', '.join(suffixes)}"
            raise FileNotFoundError(f"{flag}: folder {str(path)!r} holds no {kinds}")
        return found
    if path.exists():
        return [path]
    text = os.fspath(entry)
    if any(c in text for c in _PATTERN_CHARS):
        matches = sorted(glob.glob(text, recursive=True))
        if not matches:
            raise FileNotFoundError(f"{flag}: no file matches {text!r}")
        return [p for m in matches for p in _named_files(m, suffixes, separator, flag)]
    raise FileNotFoundError(f"{flag}: {text!r} does not exist (give text files, folders of them, or patterns)")


def expand_text_paths(
    entries: Sequence[str | os.PathLike[str]],
    suffixes: tuple[str, ...],
    separator: str | None = None,
    flag: str = "files",
) -> list[Path]:
    """The text files that ``entries`` (files, folders, glob patterns) name, in order, each real file once;
    binary files skipped with a warning naming them.

    Args:
        entries: paths of files or folders, or glob patterns.
        suffixes: the suffixes of the text files a folder gives (every file with ``separator``).
        separator: set when the files are plain multi-line texts of any name (fortune files).
        flag: the argument named in errors and warnings (``--texts`` on the command line).

    Example:
        >>> import tempfile, os
        >>> folder = tempfile.mkdtemp()
        >>> for name in ("b.txt", "a.txt", "notes.md"):
        ...     _ = open(os.path.join(folder, name), "w").write("text")
        >>> os.symlink(os.path.join(folder, "a.txt"), os.path.join(folder, "c.txt"))
        >>> [p.name for p in expand_text_paths([folder], (".txt",))]
        ['a.txt', 'b.txt']
    """
    chosen: list[Path] = []
    seen: set[str] = set()
    binary: list[Path] = []
    for entry in entries:
        for path in _named_files(entry, suffixes, separator, flag):
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            probed = separator is not None or path.suffix.lower() not in _BINARY_FORMATS
            if probed and path.is_file() and is_binary(path):
                binary.append(path)
            else:
                chosen.append(path)
    if binary:
        names = ", ".join(str(p) for p in binary[:_NAMED])
        more = f" and {len(binary) - _NAMED} more" if len(binary) > _NAMED else ""
        if not chosen:
            raise ValueError(f"{flag}: every file is binary (NUL bytes), none holds text: {names}{more}")
        warnings.warn(f"{flag}: skipped {len(binary)} binary files (NUL bytes): {names}{more}", UserWarning, 3)
    return chosen
