"""scikit-learn's estimator contract for curata's learners, with scikit-learn optional.

When scikit-learn is installed (1.4 or later, pyproject's floor; checked with 1.4.2, 1.5.2 and 1.9.1), the learners
subclass its ``BaseEstimator`` and mixins (tags, ``clone``, ``Pipeline``, ``GridSearchCV``, ``check_estimator``) and
array-likes (lists, DataFrames, memmaps) pass through its ``validate_data`` (feature names, ``n_features_in_`` and
its standard messages; before scikit-learn 1.6, the estimator's ``_validate_data``). Without it, :class:`ParamsBase`
gives ``get_params``/``set_params`` from the constructor's signature and arrays are checked here. curata's own inputs
(torch tensors, VectorTable, TableRows) are never copied into numpy: only their shape and dtype are checked. Whatever
is not real numbers (strings, complex numbers, booleans, objects other than numbers, a tensor on the meta device) is
refused first, in one line naming X.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch

from curata._internal.checks import check_real
from curata.store.rows import TableRows, shape_of
from curata.store.table import VectorTable

__all__ = [
    "NotFittedError",
    "ParamsBase",
    "SKLEARN",
    "estimator_bases",
    "cluster_bases",
    "check_fitted",
    "validated_rows",
]


class ParamsBase:
    """``get_params``/``set_params``/``repr`` from the constructor's signature, as scikit-learn's BaseEstimator."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        parameters = inspect.signature(cls.__init__).parameters.values()
        return sorted(p.name for p in parameters if p.name != "self" and p.kind != p.VAR_KEYWORD)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> Any:
        """Set constructor parameters; returns self."""
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}; valid ones: {sorted(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values() if p.name != "self"
        }
        shown = [f"{k}={v!r}" for k, v in self.get_params().items() if k not in defaults or defaults[k] is not v]
        return f"{type(self).__name__}({', '.join(shown)})"


try:
    from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin
    from sklearn.exceptions import NotFittedError

    SKLEARN = True
except ImportError:  # scikit-learn is optional: the same contract, checked here
    SKLEARN = False

    class NotFittedError(ValueError, AttributeError):  # type: ignore[no-redef]
        """Raised when a learner is used before ``fit`` (scikit-learn's class when it is installed)."""


if SKLEARN:
    try:
        from sklearn.utils.validation import validate_data
    except ImportError:  # scikit-learn < 1.6: the same check was a method, its finiteness switch named otherwise

        def validate_data(estimator: Any, X: Any, *, reset: bool, dtype: Any, ensure_all_finite: bool) -> Any:
            return estimator._validate_data(X, reset=reset, dtype=dtype, force_all_finite=ensure_all_finite)


def estimator_bases() -> tuple[type, ...]:
    """Base classes of a learner: scikit-learn's BaseEstimator when installed, else :class:`ParamsBase`."""
    return (BaseEstimator,) if SKLEARN else (ParamsBase,)


def cluster_bases() -> tuple[type, ...]:
    """Base classes of a clusterer with ``transform``: scikit-learn's when installed, else :class:`ParamsBase`.

    Example:
        >>> class Learner(*cluster_bases()):
        ...     def __init__(self, k: int = 2):
        ...         self.k = k
        >>> Learner(3).get_params()["k"]
        3
    """
    if SKLEARN:
        return (ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator)
    return (ParamsBase,)


def check_fitted(estimator: Any, attribute: str) -> None:
    """Raise NotFittedError naming the estimator when ``attribute`` was not learned yet."""
    if not hasattr(estimator, attribute):
        name = type(estimator).__name__
        raise NotFittedError(f"This {name} instance is not fitted yet: call fit(X) before using it.")


def validated_rows(estimator: Any, X: Any, *, reset: bool) -> Any:
    """X ready for the engines: curata's own inputs as they are, array-likes as a 2-D float array.

    ``reset=True`` (in fit) records ``n_features_in_`` (and ``feature_names_in_`` for DataFrames); ``reset=False``
    checks X against them.

    Example:
        >>> validated_rows(ParamsBase(), torch.ones(1, 2), reset=True).shape  # a tensor stays one
        torch.Size([1, 2])
        >>> validated_rows(ParamsBase(), [[1.0, "x"]], reset=True)
        Traceback (most recent call last):
        ...
        curata._internal.checks.DtypeError: X must hold real numbers (float or int), got dtype <U32 (strings)
    """
    if isinstance(X, (list, tuple)):
        X = np.asarray(X)  # as scikit-learn would, but checked here first: "1.5" or None are not numbers
    check_real(X, "X", objects=True)  # before scikit-learn or numpy fail on them in their own words
    if isinstance(X, (torch.Tensor, VectorTable, TableRows)):
        _, dim = shape_of(X)
        if reset:
            estimator.n_features_in_ = dim
            if hasattr(estimator, "feature_names_in_"):
                del estimator.feature_names_in_
        elif dim != estimator.n_features_in_:
            raise ValueError(
                f"X has {dim} features, but {type(estimator).__name__} is expecting {estimator.n_features_in_} "
                "features as input"
            )
        return X
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) != 2:
        raise ValueError(
            f"X must be 2-D (rows, dim), got shape {tuple(shape)}. Reshape your data: X.reshape(-1, 1) for one "
            "feature, X.reshape(1, -1) for one sample"
        )
    if shape is not None and shape[0] == 0:
        raise ValueError(f"X is empty (shape {tuple(shape)}): nothing to do")
    if SKLEARN:
        # finiteness is left to the engines, which check it in their first pass with a shorter message
        return validate_data(estimator, X, reset=reset, dtype=[np.float32, np.float64], ensure_all_finite=False)
    array = np.asarray(X)
    if array.ndim != 2:
        raise ValueError(f"X must be 2-D (rows, dim), got shape {array.shape}")
    if array.dtype.kind == "O":
        array = array.astype(np.float32)  # real numbers as Python objects (check_real refused anything else)
    if reset:
        estimator.n_features_in_ = array.shape[1]
    elif array.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {array.shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input"
        )
    return array
