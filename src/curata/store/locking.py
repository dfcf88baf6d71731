"""One writer at a time per table: an advisory file lock the operating system releases when its holder dies.

Where the lock file lies:
    * a table (or a checkpoint directory): ``.NAME.lock`` beside ``NAME``, not inside it, because an overwrite
      replaces the table's directory as a whole, and a lock file inside would be swapped out with it;
    * a directory that is never replaced whole (a CLI run directory, ``inside=True``): ``.curata.lock`` inside it.

A lock file exists only while the lock is held or waited for: the holder deletes it as it lets go, so a clean run
leaves none behind (a killed holder leaves it, and the next holder reuses and deletes it). A waiter that wins the
lock of a file just deleted sees that the path no longer names its file and locks the new one instead.

The lock is ``flock`` where Python has ``fcntl`` (Linux, macOS), the C library's ``flock`` where it has not but
the C library has, and ``LockFileEx`` on Windows (through ``filelock``); all of them end with the holder's
process. It is re-entrant within a process, so a job that holds it for its whole run (``describe``) can call the
table's own writing methods, which take it again.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["TableLockedError", "write_lock", "lock_file", "holds_lock", "DEFAULT_WAIT_SECONDS"]

# short writes (an append, a column) wait this long for another writer to finish before giving up
DEFAULT_WAIT_SECONDS = 60.0
_POLL_SECONDS = 0.05
_INSIDE_NAME = ".curata.lock"
# byte 0 of the file is what Windows locks, and a locked byte cannot be read by others: the holder's description
# starts at byte 1 everywhere
_INFO_OFFSET = 1
_LIBC_LOCK_EX, _LIBC_LOCK_NB, _LIBC_LOCK_UN = 2, 4, 8  # <sys/file.h>, the same on Linux, macOS and the BSDs

# lock file -> [file descriptor, depth, directory this process created for it (inside=True) or None]
_held: dict[str, list[Any]] = {}
_guard = threading.RLock()


class TableLockedError(RuntimeError):
    """Another process is writing to the table."""


@functools.cache
def _libc_flock() -> Callable[[int, int], int] | None:
    if sys.platform == "win32":
        return None
    try:
        flock = ctypes.CDLL(None, use_errno=True).flock
    except (OSError, AttributeError):
        return None
    flock.argtypes, flock.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return flock


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock of ``fd`` without waiting; False when another process holds it."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    flock = _libc_flock()
    if flock is not None:
        if flock(fd, _LIBC_LOCK_EX | _LIBC_LOCK_NB) == 0:
            return True
        code = ctypes.get_errno()
        if code in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise OSError(code, os.strerror(code))
    import filelock  # Windows: LockFileEx on byte 0, released by the system when the holder's process ends

    return bool(filelock.lock_descriptor(fd, blocking=False))


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return
    flock = _libc_flock()
    if flock is not None:
        flock(fd, _LIBC_LOCK_UN)
        return
    import filelock

    filelock.unlock_descriptor(fd)


def lock_file(path: str | os.PathLike[str], *, inside: bool = False) -> Path:
    """The lock file of ``path``: beside it, or inside it with ``inside=True``.

    Example:
        >>> lock_file("/data/vectors").name, str(lock_file("/runs/r1", inside=True).parent)
        ('.vectors.lock', '/runs/r1')
    """
    path = Path(os.path.abspath(path))
    return path / _INSIDE_NAME if inside else path.parent / f".{path.name}.lock"


def holds_lock(path: str | os.PathLike[str], *, inside: bool = False) -> bool:
    """Whether this process holds the write lock of ``path`` (taken with the same ``inside``)."""
    with _guard:
        return str(lock_file(path, inside=inside)) in _held


def _holder(file: Path) -> str:
    try:
        with open(file, "rb") as handle:
            handle.seek(_INFO_OFFSET)
            info = json.loads(handle.read().decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or not info:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", 0)))
    return f"process {info.get('pid')} on {info.get('host')} ({info.get('command')!r}, since {since})"


@contextmanager
def write_lock(
    path: str | os.PathLike[str], *, wait: float = DEFAULT_WAIT_SECONDS, inside: bool = False
) -> Iterator[None]:
    """Hold the write lock of ``path`` for the ``with`` block.

    Waits up to ``wait`` seconds (saying so on stderr) when another process holds it, then raises
    ``TableLockedError`` naming the holder; ``wait=0`` refuses at once. ``inside=True`` keeps the lock file inside
    the directory ``path`` (created if missing, and removed again if it is still empty when the lock is let go):
    only for a directory that is never replaced as a whole.

    Example:
        >>> import tempfile, os
        >>> table = os.path.join(tempfile.mkdtemp(), "vectors")
        >>> with write_lock(table):
        ...     holds_lock(table), lock_file(table).exists()
        (True, True)
        >>> lock_file(table).exists()
        False
    """
    file = lock_file(path, inside=inside)
    key = str(file)
    with _guard:
        nested = key in _held
        if nested:
            _held[key][1] += 1
    if not nested:
        made = None
        if not file.parent.is_dir():
            file.parent.mkdir(parents=True, exist_ok=True)
            made = file.parent if inside else None
        try:
            fd = _acquire(file, path, wait)
        except BaseException:
            if made is not None:
                with suppress(OSError):
                    made.rmdir()
            raise
        with _guard:
            _held[key] = [fd, 1, made]
    try:
        yield
    finally:
        with _guard:
            _held[key][1] -= 1
            if _held[key][1] == 0:
                fd, _, made = _held.pop(key)
                _release(fd, file, made)


def _release(fd: int, file: Path, made: Path | None) -> None:
    if sys.platform != "win32":
        # deleted while still held: a waiter then finds its file gone from the path and locks a fresh one
        with suppress(FileNotFoundError):
            os.unlink(file)
    _unlock(fd)
    os.close(fd)
    if sys.platform == "win32":
        with suppress(OSError):  # Windows refuses while a waiter has it open: that waiter deletes it later
            os.unlink(file)
    if made is not None:
        with suppress(OSError):  # not empty: the run wrote its files there
            made.rmdir()


def _acquire(file: Path, path: str | os.PathLike[str], wait: float) -> int:
    """Open and lock ``file``; returns the descriptor of the file that the path names while it is locked."""
    deadline = time.monotonic() + max(0.0, wait)
    said = False
    while True:
        try:
            fd = os.open(file, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        except FileNotFoundError:  # an ``inside`` directory removed by the holder that just let go
            file.parent.mkdir(parents=True, exist_ok=True)
            continue
        try:
            while not _try_lock(fd):
                if time.monotonic() >= deadline:
                    raise TableLockedError(
                        f"table {os.fspath(path)!r} is being written by {_holder(file)}; one writer at a time. "
                        f"Wait for it to finish, or write to another path (lock file {str(file)!r})"
                    )
                if not said:
                    print(
                        f"curata: waiting up to {wait:.0f} s for {_holder(file)} to finish writing {os.fspath(path)!r}",
                        file=sys.stderr,
                    )
                    said = True
                time.sleep(_POLL_SECONDS)
            if _names(file, fd):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder deleted this file as it let go: lock the one at the path now
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:200], "since": time.time()}
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b" " * _INFO_OFFSET + json.dumps(info).encode())
    return fd


def _names(file: Path, fd: int) -> bool:
    """Whether the path ``file`` still names the open file ``fd``."""
    try:
        on_disk = os.stat(file)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (opened.st_dev, opened.st_ino)
