"""ImageFolder: the images under a folder as a dataset of uint8 tensors (needs Pillow: ``curata[images]``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["ImageFolder", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class ImageFolder(Dataset):
    """Every image under ``root`` (sorted by path) as ``{"data": uint8 (3, size, size)}``, resized, in RGB.

    When the images sit in subfolders of ``root``, the subfolder is the class: items also carry ``"label"`` (the
    index of the subfolder's name in sorted order, listed in ``classes``).

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

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        from PIL import Image

        with Image.open(self.files[i]) as image:
            pixels = np.asarray(image.convert("RGB").resize((self.size, self.size), Image.BILINEAR))
        item = {"data": torch.from_numpy(pixels.copy()).permute(2, 0, 1)}
        if self.labels is not None:
            item["label"] = torch.tensor(self.labels[i])
        return item
