"""Argument checks shared by the public functions: one wording for every bad-input error."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["is_int", "check_int"]


def is_int(value: Any) -> bool:
    """True for Python and numpy integers, not for bools."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_int(value: Any, name: str, *, minimum: int | None = None, allow_none: bool = False) -> None:
    """Raise TypeError when ``value`` is not an int (or None when allowed), ValueError when it is below ``minimum``.

    Example:
        >>> check_int(3, "k", minimum=1)
        >>> check_int(0, "k", minimum=1)
        Traceback (most recent call last):
        ...
        ValueError: k must be an int >= 1, got 0
    """
    if value is None and allow_none:
        return
    expected = "an int" + (f" >= {minimum}" if minimum is not None else "") + (" or None" if allow_none else "")
    if not is_int(value):
        raise TypeError(f"{name} must be {expected}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
