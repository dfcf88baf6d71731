"""KMeans and HierarchicalKMeans under scikit-learn's estimator contract, and the same contract without it."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.datasets import make_blobs
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

import curata.clustering.estimator as estimator
from curata import HierarchicalKMeans, KMeans
from curata._internal.checks import DtypeError
from curata.clustering.estimator import NotFittedError, ParamsBase


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_blobs(300, n_features=4, centers=3, random_state=0)
    return X.astype(np.float32), y


def test_check_estimator_has_no_failed_check():
    assert estimator.SKLEARN and issubclass(KMeans, BaseEstimator)  # whatever scikit-learn version pyproject admits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "on_fail" not in inspect.signature(check_estimator).parameters:  # scikit-learn < 1.6: raises at the first
            check_estimator(KMeans(3, n_iter=10))
            return
        results = check_estimator(KMeans(3, n_iter=10), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:300]) for r in results if r["status"] == "failed"]
    assert not failed
    assert len(results) > 40  # the checks ran


def test_pipeline_grid_search_clone_and_score(blobs):
    X, y = blobs
    labels = make_pipeline(StandardScaler(), KMeans(3, seed=0)).fit(X).predict(X)
    assert labels.shape == (300,) and len(np.unique(labels)) == 3
    search = GridSearchCV(KMeans(seed=0), {"n_clusters": [2, 3]}, cv=3).fit(X)
    assert search.best_params_ == {"n_clusters": 3}  # score is minus the inertia: more clusters score higher
    copy = clone(KMeans(5, metric="cosine", seed=4))
    assert copy.get_params() == KMeans(5, metric="cosine", seed=4).get_params() and not hasattr(copy, "labels_")
    fitted = KMeans(3, seed=0).fit(X)
    assert fitted.n_features_in_ == 4
    assert fitted.score(X) == pytest.approx(-fitted.inertia_, rel=1e-5)
    assert fitted.get_feature_names_out().tolist() == ["kmeans0", "kmeans1", "kmeans2"]


def test_list_and_dataframe_input(blobs):
    X, _ = blobs
    reference = KMeans(3, seed=0).fit(X).labels_
    assert np.array_equal(KMeans(3, seed=0).fit(X.tolist()).labels_, reference)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    fitted = KMeans(3, seed=0).fit(frame)
    assert np.array_equal(fitted.labels_, reference) and fitted.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    assert np.array_equal(fitted.predict(frame), reference)
    with pytest.raises(ValueError, match="X has 3 features, but KMeans is expecting 4"):
        fitted.predict(X[:, :3])


_NOT_REAL = r"X must hold real numbers \(float or int\), got dtype "


@pytest.mark.parametrize(
    ("X", "found"),
    [
        (np.array([["a", "b"], ["c", "d"], ["e", "f"]]), "<U1"),  # "could not convert string to float" before
        ([["1.5", "2"], ["3", "4"], ["5", "6"]], "<U3"),  # converted without a word before
        (np.array([[1.0, "x"], [2, 3], [4, 5]], dtype=object), "object with 'x' at row 0, column 1"),
        (np.array([[1.0, None], [2, 3], [4, 5]], dtype=object), "object with None at row 0, column 1"),  # "NaN or inf"
        (np.ones((3, 2), dtype=complex), "complex128"),  # "Complex data not supported" and the whole array before
        (np.ones((3, 2), dtype=bool), "bool"),
        (torch.ones(3, 2, dtype=torch.complex64), "torch.complex64"),  # its real part was clustered before
        (torch.ones(3, 2, dtype=torch.bool), "torch.bool"),
        (pd.DataFrame({"a": [1.0, 2, 3], "b": ["x", "y", "z"]}), "object with 'x' at row 0 in column 'b'"),
    ],
)
def test_what_is_not_real_numbers_is_refused_in_one_line(X, found):
    for learner in (KMeans(2, n_iter=2), HierarchicalKMeans([2], n_resampling_steps=1, n_iter=2)):
        with pytest.raises(DtypeError, match=_NOT_REAL + re.escape(found)):
            learner.fit(X)
    fitted = KMeans(2, n_iter=2).fit(np.ones((3, 2)))
    with pytest.raises(DtypeError, match=_NOT_REAL + re.escape(found)):
        fitted.predict(X)


def test_a_tensor_on_the_meta_device_is_refused():
    X = torch.ones(10, 2, device="meta")  # "Cannot copy out of meta tensor; no data!" before
    for learner in (KMeans(2), HierarchicalKMeans([2], n_resampling_steps=1)):
        with pytest.raises(ValueError, match="X is on the meta device"):
            learner.fit(X)
    with pytest.raises(ValueError, match="X is on the meta device"):
        KMeans(2).fit(np.ones((10, 2))).predict(X)


def test_scikit_learn_before_1_6_is_used_through_its_validate_data_method():
    """scikit-learn 1.4-1.5 has no sklearn.utils.validation.validate_data (pyproject admits them): its estimators'
    _validate_data method does the same checks. From 1.6 on, simulated by taking the function away."""
    script = """
import numpy as np, pandas as pd
import sklearn.utils.validation as validation
from sklearn.base import BaseEstimator
calls = []
if hasattr(validation, "validate_data"):
    function = validation.validate_data
    del validation.validate_data
    def _validate_data(self, X, reset, dtype, force_all_finite):  # scikit-learn < 1.6's method
        calls.append(force_all_finite)
        return function(self, X, reset=reset, dtype=dtype, ensure_all_finite=force_all_finite)
else:  # a scikit-learn < 1.6: its own method, watched
    method = BaseEstimator._validate_data
    def _validate_data(self, X="no_validation", y="no_validation", reset=True, **check):
        calls.append(check.get("force_all_finite"))
        return method(self, X, y, reset=reset, **check)
BaseEstimator._validate_data = _validate_data
from curata import KMeans
from curata.clustering.estimator import SKLEARN
assert SKLEARN and issubclass(KMeans, BaseEstimator), "scikit-learn integration switched off"
X = pd.DataFrame(np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32), columns=["a", "b", "c"])
km = KMeans(4, seed=0).fit(X)
assert km.feature_names_in_.tolist() == ["a", "b", "c"] and km.predict(X).shape == (60,)
assert calls == [False, False], calls
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def test_unfitted_models_raise_not_fitted_error(tmp_path, blobs):
    X, _ = blobs
    for method in ("predict", "transform", "score"):
        with pytest.raises(NotFittedError, match="KMeans instance is not fitted yet"):
            getattr(KMeans(3), method)(X)
    tree = HierarchicalKMeans([6, 2], n_resampling_steps=1)
    with pytest.raises(NotFittedError, match="HierarchicalKMeans instance is not fitted yet"):
        tree.predict(X)
    with pytest.raises(NotFittedError):
        tree.save(tmp_path / "tree")
    assert not (tmp_path / "tree").exists()


def test_hierarchical_params_clone_predict_and_score(blobs):
    X, _ = blobs
    tree = HierarchicalKMeans([12, 3], n_resampling_steps=2, n_iter=8, metric="l2", seed=1)
    assert tree.get_params()["n_iter"] == 8 and tree.get_params()["n_resampling_steps"] == 2
    copy = clone(tree)
    assert copy.get_params() == tree.get_params() and copy.kmeans_kwargs == {"n_iter": 8, "metric": "l2"}
    copy.set_params(n_iter=4, resample="random")
    assert copy.kmeans_kwargs["n_iter"] == 4 and copy.resample == "random" and tree.kmeans_kwargs["n_iter"] == 8
    with pytest.raises(ValueError, match="no parameter 'n_trees'"):
        copy.set_params(n_trees=3)
    tree.fit(pd.DataFrame(X))
    assert tree.n_features_in_ == 4
    for level in (1, 2):
        assert np.array_equal(tree.predict(X, level=level), tree.labels_[:, level - 1])
    assert tree.score(X) == pytest.approx(-float(tree.distances_.sum(dtype=np.float64)), rel=1e-5)
    with pytest.raises(ValueError, match=r"level must be in \[1, 2\]"):
        tree.predict(X, level=3)
    with pytest.raises(ValueError, match="X has 2 features"):
        tree.predict(X[:, :2])
    bad = X.copy()
    bad[5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        tree.predict(bad)


def test_without_scikit_learn_the_contract_holds(monkeypatch, blobs):
    """scikit-learn is optional: ParamsBase and the array checks give the same behaviour."""
    X, _ = blobs
    monkeypatch.setattr(estimator, "SKLEARN", False)

    class Learner(ParamsBase):
        def __init__(self, k: int = 2, *, metric: str = "l2") -> None:
            self.k = k
            self.metric = metric

    learner = Learner(5)
    assert learner.get_params() == {"k": 5, "metric": "l2"} and repr(learner) == "Learner(k=5)"
    assert learner.set_params(metric="cosine").metric == "cosine"
    with pytest.raises(ValueError, match="Learner has no parameter 'n'"):
        learner.set_params(n=1)
    fitted = KMeans(3, seed=0).fit(X.tolist())
    assert fitted.n_features_in_ == 4 and np.array_equal(fitted.labels_, KMeans(3, seed=0).fit(X).labels_)
    with pytest.raises(ValueError, match="X has 2 features, but KMeans is expecting 4"):
        fitted.predict(X[:, :2].tolist())
    with pytest.raises(ValueError, match="X must be 2-D"):
        fitted.predict([1.0, 2.0])


def test_curata_imports_and_fits_without_scikit_learn():
    script = """
import sys
sys.modules["sklearn"] = None  # any import of scikit-learn now fails
import numpy as np
import curata
from curata.clustering.estimator import SKLEARN, NotFittedError, ParamsBase
assert not SKLEARN and issubclass(curata.KMeans, ParamsBase)
X = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
km = curata.KMeans(4, seed=0).fit(X.tolist())
assert km.n_features_in_ == 3 and km.predict(X).shape == (60,)
assert curata.KMeans(**km.get_params()).get_params() == km.get_params()
try:
    curata.KMeans(2).predict(X)
except NotFittedError as error:
    assert isinstance(error, ValueError) and isinstance(error, AttributeError)
else:
    raise AssertionError("no NotFittedError")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
