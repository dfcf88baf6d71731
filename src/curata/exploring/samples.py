"""What the explorer shows of a sample: a small PNG thumbnail of an image, or a snippet of a text."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import torch

from curata.sources.unreadable import Unreadable

__all__ = ["SampleViews", "THUMBNAIL_SIDE", "SNIPPET_CHARS"]

THUMBNAIL_SIDE = 48
SNIPPET_CHARS = 160


class SampleViews:
    """Thumbnails (or text snippets) of the samples of ``source``, a dataset indexed by sample id whose items hold
    their data under ``data_key`` (uint8 or float images (C, H, W) or (H, W), or strings).

    ``kind`` is "image", "text" or None; with None, ``why`` says why there is nothing to show.

    Example:
        >>> views = SampleViews([{"data": "a first text"}, {"data": "another"}], samples=2)
        >>> views.kind, views.snippet(1)
        ('text', 'another')
    """

    def __init__(self, source: Any, samples: int, data_key: Any = "data") -> None:
        self.source, self.data_key = source, data_key
        self.kind: str | None = None
        self.why = ""
        if source is None:
            self.why = "no source was given (explore(..., source=dataset) or curata explore --images/--texts/...)"
            return
        if not (hasattr(source, "__getitem__") and hasattr(source, "__len__")):
            raise TypeError(f"source must be a map-style dataset indexed by sample id, got {type(source).__name__}")
        if len(source) < samples:
            raise ValueError(
                f"source has {len(source)} samples but the table's sample ids go up to {samples - 1}: "
                "it is not the source of this table"
            )
        first = self._data(0)
        if isinstance(first, str):
            self.kind = "text"
        elif isinstance(first, (torch.Tensor, np.ndarray)) and np.ndim(first) in (2, 3):
            self.kind = "image"
        elif first is None:
            self.kind = "image" if hasattr(source, "size") else None
            self.why = "the first sample could not be read"
        else:
            self.why = f"its items' {data_key!r} is {type(first).__name__}, neither an image tensor nor a string"

    def _data(self, idx: int) -> Any:
        item = self.source[int(idx)]
        if isinstance(item, Unreadable):
            return None
        if isinstance(item, dict):
            return item.get(self.data_key)
        if isinstance(item, (tuple, list)):
            return item[0]
        return item

    def snippet(self, idx: int) -> str | None:
        """The first ``SNIPPET_CHARS`` characters of a text sample (None when unreadable)."""
        text = self._data(idx)
        if not isinstance(text, str):
            return None
        text = " ".join(text.split())
        return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"

    def thumbnail(self, idx: int) -> str | None:
        """A data: URI of a PNG at most ``THUMBNAIL_SIDE`` pixels a side (None when unreadable)."""
        from PIL import Image

        pixels = self._data(idx)
        if pixels is None:
            return None
        array = pixels.detach().cpu().numpy() if isinstance(pixels, torch.Tensor) else np.asarray(pixels)
        if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
            array = np.moveaxis(array, 0, -1)  # (C, H, W) -> (H, W, C)
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.dtype != np.uint8:
            low, high = float(array.min()), float(array.max())
            array = ((array - low) / (high - low or 1.0) * 255).astype(np.uint8)
        image = Image.fromarray(array)
        image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        out = io.BytesIO()
        image.save(out, format="PNG", optimize=True)
        return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()
