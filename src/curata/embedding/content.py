"""What describe() records of a dataset's content, so that a resume on other data or preprocessing is refused.

A seeded sample of items is read through the dataset (its transform included) and the job's collate function,
each as a batch of one, i.e. as the embedder receives it, and hashed: tensors and arrays by shape, dtype and
bytes; dicts, lists and tuples entry by entry; strings, bytes and numbers by value; images and other objects
with ``__array__`` as arrays. Other objects count by their type only. A user who knows the data's identity
(a dataset version, say) states it instead and nothing is read for the hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

from curata.sources.unreadable import Unreadable

__all__ = [
    "CONTENT_SAMPLES",
    "MetaTensorError",
    "check_items",
    "content_fingerprint",
    "read_sample",
    "sample_positions",
    "stated_fingerprint",
]

CONTENT_SAMPLES = 16  # items hashed per job: a changed dataset or transform rarely leaves 16 items unchanged
_SEED = 0  # fixed: every run and every rank of a job sample the same items


class MetaTensorError(ValueError):
    """An item holds a tensor on the ``meta`` device."""


def sample_positions(total: int, count: int = CONTENT_SAMPLES) -> np.ndarray:
    """The sorted positions of the items hashed from a dataset of ``total`` items (the same for every run).

    Example:
        >>> sample_positions(100, 4).tolist()
        [26, 50, 62, 82]
    """
    chosen = np.random.default_rng(_SEED).choice(total, size=min(total, count), replace=False)
    return np.sort(chosen)


def read_sample(
    source: Any, positions: np.ndarray, collate_fn: Callable[[list[Any]], Any] | None
) -> list[tuple[int, Any]]:
    """(position, item collated as a batch of one) for every readable item at ``positions``.

    Example:
        >>> read_sample([torch.ones(2), torch.zeros(2)], np.array([1]), None)
        [(1, tensor([[0., 0.]]))]
    """
    collate = collate_fn or default_collate
    out = []
    for position in positions.tolist():
        item = source[position]
        if not isinstance(item, Unreadable):  # left out: the job skips it too
            out.append((position, collate([item])))
    return out


def _update(digest: Any, value: Any, item: int) -> None:
    """Feed ``value`` to ``digest``, each kind tagged so that different values never feed the same bytes."""
    if isinstance(value, torch.Tensor):
        if value.is_meta:
            raise MetaTensorError(
                f"dataset: item {item} holds a tensor on the 'meta' device (shapes, no data): give describe real "
                "tensors"
            )
        data = value.detach()
        data = (data.to_dense() if data.layout != torch.strided else data).to("cpu").contiguous()
        digest.update(f"T{tuple(data.shape)}{data.dtype};".encode())
        if data.numel():
            digest.update(data.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, Mapping):
        digest.update(f"M{len(value)};".encode())
        for key in sorted(value, key=repr):
            _update(digest, key, item)
            _update(digest, value[key], item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"L{len(value)};".encode())
        for entry in value:
            _update(digest, entry, item)
    elif isinstance(value, str):
        encoded = value.encode("utf-8", "surrogatepass")
        digest.update(f"S{len(encoded)};".encode() + encoded)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        digest.update(f"B{len(value)};".encode() + bytes(value))
    elif value is None or isinstance(value, (bool, int, float, complex)):
        digest.update(f"V{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "__array__"):
        array = np.asarray(value)
        if array.dtype == object:
            _update(digest, array.tolist(), item)
            return
        digest.update(f"A{array.shape}{array.dtype.str};".encode())
        digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
    else:  # no portable bytes to read (a repr may hold a memory address): the type only
        digest.update(f"O{type(value).__module__}.{type(value).__qualname__};".encode())


def content_fingerprint(sample: list[tuple[int, Any]]) -> dict[str, Any]:
    """The recorded identity of a dataset's content: a hash of the sampled items (see ``read_sample``).

    Example:
        >>> content_fingerprint([(0, torch.zeros(1, 2))])["sampled"]
        1
    """
    digest = hashlib.blake2b(digest_size=16)
    for position, batch in sample:
        digest.update(f"#{position};".encode())
        _update(digest, batch, position)
    return {"sampled": len(sample), "digest": digest.hexdigest()}


def check_items(sample: list[tuple[int, Any]]) -> None:
    """Raise ``MetaTensorError`` when an item holds a tensor on the meta device (the items are not hashed)."""
    for position, batch in sample:
        _update(_Discard(), batch, position)


class _Discard:
    """A digest that forgets what it is fed."""

    def update(self, data: Any) -> None:
        pass


def stated_fingerprint(value: Any) -> dict[str, Any]:
    """The recorded identity of a dataset whose user states it: ``value`` as JSON stores it.

    Example:
        >>> stated_fingerprint({"version": (3, 1)})
        {'stated': {'version': [3, 1]}}
    """
    try:
        stored = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        raise TypeError(
            f"fingerprint must be a JSON value identifying the dataset (a string, number or a list/dict of them), "
            f"got {type(value).__name__}"
        ) from None
    return {"stated": stored}
