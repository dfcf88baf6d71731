"""One writer at a time per table: an advisory file lock the operating system releases when its holder dies.

The lock file sits beside the table (``.NAME.lock`` next to ``NAME``), not inside it, because an overwrite
replaces the table's directory as a whole. The lock is re-entrant within a process, so a job that holds it for
its whole run (``describe``) can call the table's own writing methods, which take it again.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["TableLockedError", "write_lock", "lock_file", "holds_lock", "DEFAULT_WAIT_SECONDS"]

# short writes (an append, a column) wait this long for another writer to finish before giving up
DEFAULT_WAIT_SECONDS = 60.0
_POLL_SECONDS = 0.05

_held: dict[str, list[Any]] = {}  # lock file -> [file descriptor, depth]
_guard = threading.RLock()


class TableLockedError(RuntimeError):
    """Another process is writing to the table."""


def lock_file(path: str | os.PathLike[str]) -> Path:
    """The lock file of the table at ``path``.

    Example:
        >>> lock_file("/data/vectors").name
        '.vectors.lock'
    """
    path = Path(os.path.abspath(path))
    return path.parent / f".{path.name}.lock"


def holds_lock(path: str | os.PathLike[str]) -> bool:
    """Whether this process holds the write lock of the table at ``path``."""
    with _guard:
        return str(lock_file(path)) in _held


def _holder(file: Path) -> str:
    try:
        info = json.loads(file.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", 0)))
    return f"process {info.get('pid')} on {info.get('host')} ({info.get('command')!r}, since {since})"


@contextmanager
def write_lock(path: str | os.PathLike[str], *, wait: float = DEFAULT_WAIT_SECONDS) -> Iterator[None]:
    """Hold the write lock of the table at ``path`` for the ``with`` block.

    Waits up to ``wait`` seconds (saying so on stderr) when another process holds it, then raises
    ``TableLockedError`` naming the holder; ``wait=0`` refuses at once.

    Example:
        >>> import tempfile, os
        >>> table = os.path.join(tempfile.mkdtemp(), "vectors")
        >>> with write_lock(table):
        ...     holds_lock(table)
        True
    """
    file = lock_file(path)
    key = str(file)
    with _guard:
        nested = key in _held
        if nested:
            _held[key][1] += 1
    if not nested:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _acquire(fd, file, path, wait)
        except BaseException:
            os.close(fd)
            raise
        with _guard:
            _held[key] = [fd, 1]
    try:
        yield
    finally:
        with _guard:
            _held[key][1] -= 1
            if _held[key][1] == 0:
                fd = _held.pop(key)[0]
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)


def _acquire(fd: int, file: Path, path: str | os.PathLike[str], wait: float) -> None:
    deadline = time.monotonic() + max(0.0, wait)
    said = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise TableLockedError(
                    f"table {os.fspath(path)!r} is being written by {_holder(file)}; one writer at a time. "
                    f"Wait for it to finish, or write to another path (lock file {str(file)!r})"
                ) from None
            if not said:
                print(
                    f"curata: waiting up to {wait:.0f} s for {_holder(file)} to finish writing {os.fspath(path)!r}",
                    file=sys.stderr,
                )
                said = True
            time.sleep(_POLL_SECONDS)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:200], "since": time.time()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
