"""Unreadable: what a source returns for an item it cannot read, so that describe() skips it and counts it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Unreadable"]


@dataclass(frozen=True)
class Unreadable:
    """An item that could not be read: ``where`` it is (file, tar member, record) and the ``reason``.

    A dataset may return one in place of an item; ``describe`` then stores no row for that sample, warns once
    with the count and the first few, and records them all in the table's ``unreadable`` attribute.

    Example:
        >>> Unreadable("shard-0.tar:0007.jpg", "cannot identify image file")
        Unreadable(where='shard-0.tar:0007.jpg', reason='cannot identify image file')
    """

    where: str
    reason: str
