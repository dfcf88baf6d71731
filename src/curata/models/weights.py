"""Checks shared by the offline model loaders: a weights file's hash, and the error for a missing package."""

from __future__ import annotations

import hashlib
import os

__all__ = ["check_sha256", "missing_package"]


def check_sha256(path: str | os.PathLike[str], expected: str, model: str) -> None:
    """Raise when the file's SHA-256 is not ``expected``: a damaged or replaced weights file is never used.

    Example:
        >>> import tempfile
        >>> path = tempfile.mktemp()
        >>> _ = open(path, "wb").write(b"")
        >>> check_sha256(path, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "empty")
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise ValueError(
            f"{model}: the weights file {os.fspath(path)!r} has SHA-256 {digest.hexdigest()}, expected {expected}: "
            "reinstall the package that ships it"
        )


def missing_package(model: str, package: str) -> ImportError:
    """The error for a model whose package is not installed, saying what to install."""
    return ImportError(f"model {model!r} needs the package {package!r}: pip install {package}")
