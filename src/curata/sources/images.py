"""ImageFolder: the images under a folder as a dataset of uint8 tensors (needs Pillow: ``curata[images]``)."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from curata.sources.labels import labelled_item
from curata.sources.locations import Locations
from curata.sources.unreadable import Unreadable

__all__ = ["ImageFolder", "IMAGE_EXTENSIONS", "decode_image"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def decode_image(source: str | os.PathLike[str] | bytes | Any, size: int, where: str) -> torch.Tensor | Unreadable:
    """An image file, its bytes or a PIL image as uint8 (3, size, size) RGB, or ``Unreadable(where, why)`` when it
    cannot be decoded (truncated, not an image, corrupt)."""
    from PIL import Image

    try:
        if isinstance(source, Image.Image):
            pixels = np.asarray(source.convert("RGB").resize((size, size), Image.BILINEAR))
        else:
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
                pixels = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        return Unreadable(where, f"{type(error).__name__}: {error}")
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)


class ImageFolder(Dataset):
    """Every image under ``root`` (sorted by path) as ``{"data": uint8 (3, size, size)}``, resized, in RGB.

    When the images sit in subfolders of ``root``, the subfolder is the class: items also carry ``"label"`` (the
    index of the subfolder's name in sorted order, listed in ``classes``). An image that cannot be decoded is an
    ``Unreadable`` item: ``describe`` skips it, warns and counts it.

    Example::

        dataset = ImageFolder("photos", size=224)
        dataset[0]["data"].shape  # torch.Size([3, 224, 224])
    """

    def __init__(self, root: str | os.PathLike[str], size: int = 224) -> None:
        try:
            from PIL import Image  # noqa: F401 - checked here so the error comes before any work
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("ImageFolder needs Pillow: pip install 'curata[images]'") from exc
        self.root = Path(root)
        if not self.root.is_dir():
            raise NotADirectoryError(f"root {str(self.root)!r} is not a directory")
        self.size = size
        self.files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not self.files:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {str(self.root)!r}")
        parents = [p.relative_to(self.root).parts for p in self.files]
        nested = all(len(parts) > 1 for parts in parents)
        self.classes = sorted({parts[0] for parts in parents}) if nested else []
        index = {name: i for i, name in enumerate(self.classes)}
        self.labels = [index[parts[0]] for parts in parents] if nested else None

    def fingerprint(self) -> dict[str, Any]:
        """The folder's images (a hash of relative paths and sizes), their count and the image side."""
        digest = hashlib.sha256()
        for path in self.files:
            digest.update(f"{path.relative_to(self.root).as_posix()}\0{path.stat().st_size}\n".encode())
        return {"kind": "ImageFolder", "files": digest.hexdigest(), "count": len(self.files), "size": self.size}

    def locations(self) -> Locations:
        """Each sample id's image file, relative to ``root`` (``where(i)`` gives it whole), and its class:
        ``describe`` records this with the table so that ids lead back to files later.

        Example:
            >>> import tempfile, os
            >>> from PIL import Image
            >>> root = tempfile.mkdtemp()
            >>> for name in ("cat/a.png", "dog/b.png"):
            ...     os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
            ...     Image.new("RGB", (4, 4)).save(os.path.join(root, name))
            >>> places = ImageFolder(root).locations()
            >>> places.columns["path"], places.label_name(1)
            (['cat/a.png', 'dog/b.png'], 'dog')
        """
        columns: dict[str, list[Any]] = {"path": [p.relative_to(self.root).as_posix() for p in self.files]}
        if self.labels is not None:
            columns["label"] = list(self.labels)
        root = str(self.root.resolve())
        return Locations("ImageFolder", root, [], {"size": self.size}, list(self.classes), True, columns)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, Any] | Unreadable:
        pixels = decode_image(self.files[i], self.size, str(self.files[i]))
        if isinstance(pixels, Unreadable):
            return pixels
        return labelled_item(pixels, self.labels, i)
