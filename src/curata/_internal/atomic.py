"""Replace a file or a directory in one rename, and clear what an interrupted replacement left behind.

A file is written beside its name (``.NAME.partial``) and renamed over it: a kill leaves the old file or the new
one. Crash consistency here is against killed processes; nothing is fsynced, so a power cut may lose more.

A new table is written into a staging directory beside its path (``.NAME.staging-XXXX``). On Linux the staging
directory and the old table are exchanged in one ``renameat2(RENAME_EXCHANGE)``, so the path always holds a
whole table, the old one or the new one. Where the file system cannot exchange, the old table is first renamed
to ``.NAME.retired-XXXX``; a kill between that rename and the next leaves no table at the path, and
``clean_leftovers`` puts the retired one back.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

__all__ = ["staging_path", "swap_in", "clean_leftovers", "leftovers", "write_atomically", "save_npy_atomically"]

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
try:
    _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
except (OSError, AttributeError):  # not glibc >= 2.28 (macOS, musl): two renames instead
    _renameat2 = None


def staging_path(path: Path) -> Path:
    """A fresh staging directory name beside ``path``.

    Example:
        >>> staging_path(Path("/data/vectors")).name.startswith(".vectors.staging-")
        True
    """
    return path.parent / f".{path.name}.staging-{uuid.uuid4().hex[:12]}"


def _retired_path(path: Path) -> Path:
    return path.parent / f".{path.name}.retired-{uuid.uuid4().hex[:12]}"


def _exchange(first: Path, second: Path) -> bool:
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), str(first))


def swap_in(staged: Path, path: Path) -> None:
    """Put the complete directory ``staged`` at ``path``, replacing the directory there, and delete the old one.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "t").mkdir(); (root / "new").mkdir(); (root / "new" / "f").touch()
        >>> swap_in(root / "new", root / "t")
        >>> sorted(p.name for p in root.rglob("*"))
        ['f', 't']
    """
    if _exchange(staged, path):
        shutil.rmtree(staged)  # it now holds the old table
        return
    retired = _retired_path(path)
    os.rename(path, retired)
    os.rename(staged, path)
    shutil.rmtree(retired)


def leftovers(path: Path) -> list[Path]:
    """Staging and retired directories that interrupted writes of ``path`` left beside it."""
    if not path.parent.is_dir():
        return []
    found = [*path.parent.glob(f".{path.name}.staging-*"), *path.parent.glob(f".{path.name}.retired-*")]
    return sorted(p for p in found if p.is_dir())


def clean_leftovers(path: Path) -> list[str]:
    """Undo what interrupted writes of ``path`` left; returns what was done, one line per directory.

    Call it only while holding the table's write lock: a live writer's staging directory looks the same.
    A retired table is put back when nothing is at ``path`` (the kill fell between the two renames), else
    deleted; staging directories are deleted (an unfinished new table, or an old one already swapped out).
    """
    done = []
    for leftover in leftovers(path):
        if ".retired-" in leftover.name and not path.exists():
            os.rename(leftover, path)
            done.append(f"restored {leftover.name} to {path.name} (an overwrite was interrupted)")
        else:
            shutil.rmtree(leftover)
            done.append(f"removed {leftover.name} (left by an interrupted write)")
    return done


def write_atomically(file: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(staging_file)``, then rename the staging file to ``file`` in one step; returns ``file``.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "summary.json"
        >>> write_atomically(target, lambda f: f.write_text("{}")).read_text()
        '{}'
    """
    file = Path(file)
    staging = file.parent / f".{file.name}.partial"
    try:
        write(staging)
        os.replace(staging, file)
    finally:
        if staging.exists():
            staging.unlink()
    return file


def save_npy_atomically(file: str | os.PathLike[str], values: object) -> Path:
    """``numpy.save`` (no pickles) through ``write_atomically``; the name is kept as given (no ``.npy`` added).

    Example:
        >>> import tempfile, numpy as np
        >>> target = Path(tempfile.mkdtemp()) / "ids.npy"
        >>> np.load(save_npy_atomically(target, [1, 2])).tolist()
        [1, 2]
    """
    import numpy as np

    def save(staging: Path) -> None:
        with open(staging, "wb") as handle:
            np.save(handle, np.asarray(values), allow_pickle=False)

    return write_atomically(file, save)
