"""Argument checks shared by the public functions: one wording for every bad-input error."""

from __future__ import annotations

import decimal
import numbers
from typing import Any

import numpy as np

__all__ = [
    "is_int",
    "check_int",
    "check_row_ids",
    "check_labels",
    "check_finite",
    "first_nonfinite_row",
    "DtypeError",
    "check_real",
]


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


def check_row_ids(ids: Any, name: str, rows: int, *, mask_allowed: bool = False) -> np.ndarray:
    """``ids`` as a 1-D int64 array of row ids in [0, rows), checked before any work.

    Floats are refused rather than truncated; booleans are refused (they would read as ids 0 and 1) unless
    ``mask_allowed``, where a mask of one flag per row becomes the ids of its True rows.

    Example:
        >>> check_row_ids([3, 1], "exclude", 5).tolist()
        [3, 1]
        >>> check_row_ids([True, False, True], "exclude", 3, mask_allowed=True).tolist()
        [0, 2]
        >>> check_row_ids([1.7], "exclude", 5)
        Traceback (most recent call last):
        ...
        TypeError: exclude must hold integer row ids, got dtype float64 (1.7 at position 0)
    """
    array = np.asarray(ids.cpu() if hasattr(ids, "cpu") else ids)
    if array.ndim == 0 or array.size == 0:
        array = array.reshape(-1)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D list of row ids, got shape {array.shape}")
    if array.dtype == bool:
        if not mask_allowed:
            raise TypeError(f"{name} holds booleans: pass row ids (np.flatnonzero(mask)), not a mask")
        if len(array) != rows:
            raise ValueError(f"{name} as a boolean mask must have one flag per row ({rows}), got {len(array)}")
        return np.flatnonzero(array)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        first = array.reshape(-1)[0].item()
        raise TypeError(f"{name} must hold integer row ids, got dtype {array.dtype} ({first!r} at position 0)")
    bad = np.flatnonzero((array < 0) | (array >= rows))
    if len(bad):
        raise ValueError(f"{name} holds row ids outside [0, {rows}): {int(array[bad[0]])} at position {int(bad[0])}")
    return array.astype(np.int64, copy=False)


def check_labels(labels: Any, name: str, rows: int) -> np.ndarray:
    """``labels`` (cluster or class ids) as an int64 array with one integer per row, checked before any work.

    Example:
        >>> check_labels([0.5, 1.0], "clusters", 2)
        Traceback (most recent call last):
        ...
        TypeError: clusters must hold integer ids, got dtype float64
    """
    array = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels)
    if array.shape != (rows,):
        raise ValueError(f"{name} must hold one id per row ({rows}), got shape {array.shape}")
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integer ids, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


_FINITE_VALUES = 1 << 20  # a block's float64 sum converts it: 8 MB at a time


def first_nonfinite_row(x: Any) -> int | None:
    """The first row of the array or tensor ``x`` that holds NaN or inf, else None.

    NaN and inf survive a sum: one sum of all the values, in their own precision, clears X at memory speed; where
    it is not finite (a bad value, or an overflow), rows are checked by their float64 sums in blocks: no (rows, dim)
    boolean temporary and no float64 copy of X (one pass over 5M x 128 rows once held a 5 GB copy; the blocks' float64
    copies alone cost 0.7-3 ms on 10,000 x 128 rows, a fifth of a k-means fit).

    Example:
        >>> first_nonfinite_row(np.array([[1.0, 2.0], [np.inf, 0.0]])), first_nonfinite_row(np.ones((3, 2)))
        (1, None)
    """
    import torch

    values = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    values = values.reshape(len(values), -1) if values.ndim else values.reshape(1, 1)
    if not values.is_floating_point() or bool(torch.isfinite(values.sum())):
        return None
    step = max(1, _FINITE_VALUES // max(values.shape[1], 1))
    for start in range(0, len(values), step):
        block = values[start : start + step]
        if not bool(torch.isfinite(block.sum(dim=1, dtype=torch.float64)).all()):
            bad = torch.nonzero(~torch.isfinite(block).all(dim=1))  # a sum may overflow where no value is bad
            if len(bad):
                return start + int(bad[0])
    return None


def check_finite(x: Any, name: str) -> None:
    """Raise ValueError naming ``name`` when the array or tensor ``x`` holds NaN or inf.

    Example:
        >>> check_finite(np.array([[1.0, np.nan]]), "X")
        Traceback (most recent call last):
        ...
        ValueError: X holds NaN or inf (row 0)
    """
    row = first_nonfinite_row(x)
    if row is not None:
        raise ValueError(f"{name} holds NaN or inf (row {row})")


class DtypeError(TypeError, ValueError):
    """Data of the wrong kind (strings, complex numbers, booleans, objects): a TypeError, and a ValueError too, which
    is what numpy and scikit-learn raise for such data (and what scikit-learn's estimator checks expect)."""


# what each refused kind of values is, after "X must hold real numbers (float or int), got dtype ..."
_REFUSED_KINDS = {
    "b": "booleans: cast them if 0/1 is meant",
    "c": "Complex data not supported",
    "U": "strings",
    "S": "bytes",
    "O": "Python objects: X.astype(np.float32) if they are numbers",
    "M": "datetimes",
    "m": "timedeltas",
    "V": "records",
}
_EXPECTED = "must hold real numbers (float or int), got dtype"


def _is_real(value: Any) -> bool:
    return isinstance(value, (numbers.Real, decimal.Decimal)) and not isinstance(value, bool)


def _refuse_kind(kind: str, dtype: Any, name: str, where: str = "") -> None:
    if kind in _REFUSED_KINDS:
        raise DtypeError(f"{name} {_EXPECTED} {dtype}{where} ({_REFUSED_KINDS[kind]})")


def _check_objects(values: np.ndarray, name: str, where: str = "") -> None:
    """Every value of an object array a real number (NaN allowed: the finiteness checks name it), else one line
    naming the first other value: None would otherwise become NaN, and be reported as one."""
    flat = values.reshape(-1)
    real = np.fromiter(map(_is_real, flat), dtype=bool, count=flat.size)
    if real.all():
        return
    first = int(np.argmin(real))
    value = flat[first]
    at = f"row {first // values.shape[1]}, column {first % values.shape[1]}" if values.ndim == 2 else f"row {first}"
    reason = ""
    try:
        float(value)
    except (TypeError, ValueError) as error:  # numpy's own words, e.g. "float() argument must be a string or ..."
        reason = f" ({error})"
    raise DtypeError(f"{name} {_EXPECTED} object with {value!r} at {at}{where}{reason}")


def check_real(x: Any, name: str, *, objects: bool = False) -> None:
    """Raise, before any work, when the array, tensor or DataFrame ``x`` does not hold real numbers (float or int).

    Strings, bytes, complex numbers, booleans, datetimes and records raise :class:`DtypeError` naming the dtype; a
    tensor on the ``meta`` device (a shape without values) raises ValueError. Object arrays are refused unless
    ``objects`` (scikit-learn converts them), and then only those holding anything but real numbers, naming the
    first such value. Other inputs (lists, tables) pass: their callers convert them first.

    Example:
        >>> check_real(np.ones((2, 2), dtype=np.float16), "X")
        >>> check_real(np.array([["a", "b"]]), "X")
        Traceback (most recent call last):
        ...
        curata._internal.checks.DtypeError: X must hold real numbers (float or int), got dtype <U1 (strings)
        >>> check_real(np.array([[1.5, None]], dtype=object), "X", objects=True)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        curata._internal.checks.DtypeError: X must hold ... got dtype object with None at row 0, column 1 (float() ...)
    """
    import torch

    if isinstance(x, torch.Tensor):
        if x.device.type == "meta":
            raise ValueError(f"{name} is on the meta device (a shape without values): pass a tensor that holds data")
        if x.dtype == torch.bool or x.is_complex():
            _refuse_kind("b" if x.dtype == torch.bool else "c", x.dtype, name)
        return
    dtypes = getattr(x, "dtypes", None)
    if dtypes is not None and hasattr(dtypes, "items") and not isinstance(x, np.ndarray):  # a DataFrame
        for column, dtype in dtypes.items():
            kind = getattr(dtype, "kind", "O")
            where = f" in column {column!r}"
            if kind == "O" and objects:
                _check_objects(np.asarray(x[column]), name, where)
            else:
                _refuse_kind(kind, dtype, name, where)
        return
    dtype = getattr(x, "dtype", None)
    if not isinstance(dtype, np.dtype):
        return
    if dtype.kind == "O" and objects:
        _check_objects(np.asarray(x), name)
    else:
        _refuse_kind(dtype.kind, dtype, name)
