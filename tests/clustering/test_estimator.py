"""KMeans and HierarchicalKMeans under scikit-learn's estimator contract, and the same contract without it."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

import curata.clustering.estimator as estimator
from curata import HierarchicalKMeans, KMeans
from curata.clustering.estimator import NotFittedError, ParamsBase


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_blobs(300, n_features=4, centers=3, random_state=0)
    return X.astype(np.float32), y


def test_check_estimator_has_no_failed_check():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
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
