"""scikit-learn's estimator contract for curata's learners, with scikit-learn optional.

When scikit-learn is installed, the learners subclass its ``BaseEstimator`` and mixins (tags, ``clone``,
``Pipeline``, ``GridSearchCV``, ``check_estimator``) and array-likes (lists, DataFrames, memmaps) pass through its
``validate_data`` (feature names, ``n_features_in_`` and its standard messages). Without it, :class:`ParamsBase`
gives ``get_params``/``set_params`` from the constructor's signature and arrays are checked here. curata's own
inputs (torch tensors, VectorTable, TableRows) are never copied into numpy: only their shape is checked.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch

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
    from sklearn.utils.validation import validate_data

    SKLEARN = True
except ImportError:  # scikit-learn is optional: the same contract, checked here
    SKLEARN = False

    class NotFittedError(ValueError, AttributeError):  # type: ignore[no-redef]
        """Raised when a learner is used before ``fit`` (scikit-learn's class when it is installed)."""


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
    """
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
    if array.dtype.kind not in "fiub":
        array = array.astype(np.float32)  # object/str numbers; anything else raises numpy's error
    if reset:
        estimator.n_features_in_ = array.shape[1]
    elif array.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {array.shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input"
        )
    return array
