"""check_real: whatever is not real numbers is refused in one line naming X, at every door (KMeans, select, dedup)."""

from __future__ import annotations

import datetime
import decimal

import numpy as np
import pandas as pd
import pytest
import torch

import curata
from curata._internal.checks import DtypeError, check_real

_EXPECTED = r"X must hold real numbers \(float or int\), got dtype "


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        (np.array([["a", "b"], ["c", "d"]]), "<U1"),
        (np.array([["1.5", "2"], ["3", "4"]]), "<U3"),  # numbers written as strings are strings too
        (np.array([[b"a", b"b"]]), "|S1"),
        (np.ones((2, 2), dtype=np.complex128), "complex128"),
        (np.ones((2, 2), dtype=bool), "bool"),
        (np.array([[datetime.datetime(2024, 1, 1)]], dtype="datetime64[us]"), "datetime64"),
        (np.ones((2, 2), dtype=object), "object"),  # objects only where the caller converts them (objects=True)
        (torch.ones(2, 2, dtype=torch.complex64), "torch.complex64"),
        (torch.ones(2, 2, dtype=torch.bool), "torch.bool"),
    ],
)
def test_non_real_dtypes_are_refused_naming_x_and_the_dtype(values, dtype):
    with pytest.raises(DtypeError, match=_EXPECTED + dtype):
        check_real(values, "X")


def test_real_numbers_pass():
    for values in (
        np.ones((2, 2), dtype=np.float16),
        np.ones((2, 2), dtype=np.uint8),
        np.ones((2, 2), dtype=np.int64),
        torch.ones(2, 2, dtype=torch.bfloat16),
        torch.ones(2, 2, dtype=torch.int32),
        np.array([[1.5, 2], [np.nan, decimal.Decimal("0.5")]], dtype=object),
    ):
        check_real(values, "X", objects=True)


def test_an_object_array_names_its_first_value_that_is_not_a_number():
    values = np.array([[1.0, 2.0], [3.0, None]], dtype=object)
    # None became NaN on its way through numpy, and was reported as "X holds NaN or inf"
    with pytest.raises(DtypeError, match=_EXPECTED + r"object with None at row 1, column 1 \(float\(\) argument"):
        check_real(values, "X", objects=True)
    values[1, 1] = "4.5"
    with pytest.raises(DtypeError, match=_EXPECTED + "object with '4.5' at row 1, column 1$"):
        check_real(values, "X", objects=True)
    values[1, 1] = True
    with pytest.raises(DtypeError, match="object with True at row 1, column 1"):
        check_real(values, "X", objects=True)


def test_a_dataframe_names_the_column():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    with pytest.raises(DtypeError, match=_EXPECTED + "object with 'x' at row 0 in column 'b'"):
        check_real(frame, "X", objects=True)
    with pytest.raises(DtypeError, match=_EXPECTED + "bool in column 'c'"):
        check_real(pd.DataFrame({"a": [1.0], "c": [True]}), "X", objects=True)
    check_real(pd.DataFrame({"a": [1.0], "n": pd.array([1], dtype="Int64")}), "X", objects=True)


def test_a_meta_tensor_is_refused():
    with pytest.raises(ValueError, match="X is on the meta device"):
        check_real(torch.empty(3, 2, device="meta"), "X")


def test_dtype_error_is_a_type_error_and_a_value_error():
    # TypeError as for any argument of the wrong kind; ValueError as numpy and scikit-learn raise for such data
    # (scikit-learn's check_estimator expects "Complex data not supported" as a ValueError)
    assert issubclass(DtypeError, TypeError) and issubclass(DtypeError, ValueError)


@pytest.mark.parametrize(
    "X",
    [
        np.array([["a", "b"], ["c", "d"], ["e", "f"]]),
        np.ones((3, 2), dtype=np.complex64),
        torch.ones(3, 2, dtype=torch.complex64),  # select and dedup once took its real part without a word
        torch.ones(3, 2, dtype=torch.bool),
    ],
)
def test_select_and_dedup_refuse_them_at_the_door(X):
    with pytest.raises(DtypeError, match=_EXPECTED):
        curata.select(X, 2)
    with pytest.raises(DtypeError, match=_EXPECTED):
        curata.dedup(X)


def test_select_and_dedup_refuse_a_meta_tensor():
    X = torch.ones(3, 2, device="meta")  # "Cannot copy out of meta tensor; no data!" before
    with pytest.raises(ValueError, match="X is on the meta device"):
        curata.select(X, 2)
    with pytest.raises(ValueError, match="X is on the meta device"):
        curata.dedup(X)
