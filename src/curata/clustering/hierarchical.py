"""HierarchicalKMeans: levels of k-means with resampling steps (Vo et al. 2024), the tree that `curate` samples."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from curata._internal.atomic import save_npy_atomically, write_atomically
from curata._internal.checks import check_int, is_int
from curata._internal.grouping import order_within_groups
from curata.clustering.estimator import check_fitted, estimator_bases, validated_rows
from curata.clustering.kmeans import KMeans, assign
from curata.clustering.progress import stage
from curata.store.cosine_check import warn_if_degenerate
from curata.store.locking import write_lock
from curata.store.rows import TableRows, as_matrix, shape_of
from curata.store.samples import sample_ids_of
from curata.store.table import VectorTable

__all__ = ["HierarchicalKMeans"]

_RESAMPLE = ("closest", "random")
_STATE_VERSION = 1
_CHECKED_ROWS = 1024  # rows of a checkpoint's data hashed exactly, chosen by a fixed seed
_SUM_WINDOW_VALUES = 1 << 22  # values per window of the column-sums pass: 16 MB of float32
# column sums may be added up in another order at a resume (thread count, device); a changed value moves them by
# far more
_SUM_RTOL = 1e-9


def _derived_seed(seed: int, *path: int) -> int:
    return int(np.random.SeedSequence([int(seed), *path]).generate_state(1)[0])


def _rows(X: Any, ids: np.ndarray) -> Any:
    """The given rows of X: a lazy TableRows for data on disk (read later, streamed under a memory budget),
    else a float32 array."""
    if isinstance(X, VectorTable):
        return TableRows(X, ids)
    if isinstance(X, TableRows):
        return X.subset(ids)
    if isinstance(X, torch.Tensor):
        return X[torch.as_tensor(ids)].detach().to("cpu", torch.float32).numpy()
    return np.asarray(X)[ids].astype(np.float32, copy=False)


def _data_digest(X: Any, n: int) -> str:
    """A cheap identity of X: its shape and 64 evenly spaced rows (all that checkpoints of curata <= 0.x held)."""
    ids = np.unique(np.linspace(0, n - 1, num=min(n, 64)).astype(np.int64))
    digest = hashlib.blake2b(digest_size=16)
    digest.update(as_matrix(_rows(X, ids)).numpy().tobytes())
    return f"{n}:{digest.hexdigest()}"


def _data_check(X: Any, n: int, dim: int) -> dict[str, Any]:
    """What a checkpoint's resume checks of X: the exact bytes of ~1024 rows chosen by a fixed seed (a reordering
    moves them) and every column's sum over all rows in float64, in one streaming pass on X's own device (any
    changed value moves it).

    Example:
        >>> X = np.arange(12.0).reshape(6, 2)
        >>> _data_check(X, 6, 2)["sums"], _same_data(_data_check(X, 6, 2), _data_check(X + 1e-3, 6, 2))
        ([30.0, 36.0], False)
    """
    chosen = np.random.default_rng(0).choice(n, size=min(n, _CHECKED_ROWS), replace=False)
    ids = np.unique(np.r_[0, n - 1, chosen].astype(np.int64))
    rows = as_matrix(_rows(X, ids)).numpy()
    on_device = isinstance(X, torch.Tensor) and X.device.type != "cpu"
    device = X.device if on_device else torch.device("cpu")
    sums = torch.zeros(dim, dtype=torch.float64, device=device)
    step = max(1, _SUM_WINDOW_VALUES // max(dim, 1))
    for start in range(0, n, step):
        block = as_matrix(X, start, min(n, start + step), device=device)
        if on_device:
            sums += torch.sum(block, dim=0, dtype=torch.float64)
        else:  # numpy's column sums: 15x faster than torch's across rows on a CPU (200k x 256: 0.06 s)
            sums += torch.from_numpy(block.numpy().sum(axis=0, dtype=np.float64))
    return {
        "rows": n,
        "sample": hashlib.blake2b(rows.tobytes(), digest_size=16).hexdigest(),
        "sums": sums.cpu().tolist(),
        # the size of the values (mean |x| of the sampled rows), which sets how far two summation orders may part
        "scale": np.abs(rows).mean(axis=0, dtype=np.float64).tolist(),
    }


def _same_data(saved: Any, now: dict[str, Any]) -> bool:
    """Whether two ``_data_check`` records describe the same data (sums equal up to summation order)."""
    if not isinstance(saved, dict) or (saved.get("rows"), saved.get("sample")) != (now["rows"], now["sample"]):
        return False
    old, new = np.asarray(saved.get("sums", []), dtype=np.float64), np.asarray(now["sums"], dtype=np.float64)
    if old.shape != new.shape:
        return False
    bound = now["rows"] * np.asarray(now["scale"]) + np.abs(new)
    return bool(np.all(np.abs(old - new) <= _SUM_RTOL * bound + np.finfo(np.float64).tiny))


def per_group_first(labels: np.ndarray, key: np.ndarray, count: int | np.ndarray) -> np.ndarray:
    """Positions of the ``count`` rows with the smallest ``key`` in each group of ``labels`` (all if fewer)."""
    order, rank = order_within_groups(labels, key)
    limit = count if np.isscalar(count) else np.asarray(count)[labels[order]]
    return np.sort(order[rank < limit])


def _split_counts(sizes: np.ndarray, total: int) -> np.ndarray:
    """Sub-cluster counts proportional to ``sizes``, each in [1, size], summing to ``total`` (largest remainder)."""
    share = total * sizes / sizes.sum()
    counts = np.clip(np.floor(share).astype(np.int64), 1, sizes)
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    while counts.sum() < total:
        room = order[counts[order] < sizes[order]]
        counts[room[: total - counts.sum()]] += 1
    while counts.sum() > total:
        big = np.argsort(-counts, kind="stable")
        big = big[counts[big] > 1]
        counts[big[: counts.sum() - total]] -= 1
    return counts


# what _write_level writes: level arrays, and the staging copies of them and of tree.json (atomic.write_atomically)
_CHECKPOINT_FILE = re.compile(
    r"level_\d+_(centroids|labels|distances)\.npy|\.(level_\d+_(centroids|labels|distances)\.npy|tree\.json)\.partial"
)
_OWN_PARAMS = ("n_clusters", "n_resampling_steps", "sample_size", "resample", "n_splits", "seed")


class HierarchicalKMeans(*estimator_bases()):
    """Hierarchical k-means with resampling steps: the clustering behind balanced curation (Vo et al. 2024).

    A scikit-learn estimator when scikit-learn is installed (``clone``, ``get_params``/``set_params`` including the
    KMeans keyword arguments, ``n_features_in_``, list and DataFrame input); ``labels_`` holds one column per level,
    so it is not a flat scikit-learn clusterer.

    Level 1 clusters the rows into ``n_clusters[0]`` clusters; level t + 1 clusters level t's centroids, each
    counting once. A resampling step at a level takes the r inputs nearest each centroid (``resample="random"``:
    r random members; a smaller cluster gives all it has), runs a fresh k-means (new k-means++ init) on that
    subset and reassigns all of the level's inputs to the new centroids. The level's centroids are those of the
    last subset k-means, not means over the full clusters, which would pull them back to the dense regions.

    Args:
        n_clusters: clusters per level, decreasing, e.g. [10000, 1000, 100].
        n_resampling_steps: resampling steps per level (0: plain hierarchical k-means).
        sample_size: r, one int or one per level (default ceil(N_t / (2 k_t)) for N_t inputs).
        resample: "closest" or "random".
        n_splits: when set, each level's k-means is two-step: ceil(k_t / n_splits) coarse clusters, then each is
            split by a local k-means into a number of clusters proportional to its size (k_t in all).
        seed: seed of every random choice (each level and step derives its own).
        **kmeans_kwargs: passed to every ``KMeans`` (n_iter, metric, device, max_points_per_centroid, ...);
            ``memory_budget`` (bytes) streams a VectorTable larger than it from disk at every level and step.

    Learned: ``labels_`` (rows, T) cluster of every row at every level; ``centroids_`` list of (k_t, dim);
    ``sizes_`` list of (k_t,) rows per cluster; ``distances_`` (rows,) squared distance of each row to its level-1
    centroid.

    Example:
        >>> X = np.random.default_rng(0).normal(size=(600, 4)).astype(np.float32)
        >>> tree = HierarchicalKMeans([20, 4], n_resampling_steps=2, n_iter=10).fit(X)
        >>> tree.labels_.shape, [len(c) for c in tree.centroids_]
        ((600, 2), [20, 4])
    """

    def __init__(
        self,
        n_clusters: Sequence[int],
        *,
        n_resampling_steps: int = 10,
        sample_size: int | Sequence[int] | None = None,
        resample: str = "closest",
        n_splits: int | None = None,
        seed: int = 0,
        **kmeans_kwargs: Any,
    ) -> None:
        self.n_clusters = n_clusters
        self.n_resampling_steps = n_resampling_steps
        self.sample_size = sample_size
        self.resample = resample
        self.n_splits = n_splits
        self.seed = seed
        self.kmeans_kwargs = kmeans_kwargs

    def __repr__(self) -> str:
        return f"HierarchicalKMeans({', '.join(f'{k}={v!r}' for k, v in self._params().items())})"

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters, the KMeans keyword arguments among them."""
        own = {name: getattr(self, name) for name in _OWN_PARAMS}
        return {**own, **self.kmeans_kwargs}

    def set_params(self, **params: Any) -> HierarchicalKMeans:
        """Set constructor parameters (a KMeans parameter goes to every level's KMeans); returns self."""
        for name, value in params.items():
            if name in _OWN_PARAMS:
                setattr(self, name, value)
            elif name in KMeans._get_param_names() and name not in ("n_clusters", "seed"):
                self.kmeans_kwargs = {**self.kmeans_kwargs, name: value}
            else:
                raise ValueError(f"HierarchicalKMeans has no parameter {name!r}")
        return self

    # ------------------------------------------------------------------ checks
    def _levels(self) -> list[int]:
        levels = [self.n_clusters] if isinstance(self.n_clusters, (int, np.integer)) else list(self.n_clusters)
        if not levels or any(not is_int(k) or k < 1 for k in levels):
            raise ValueError(f"n_clusters must be a non-empty list of positive ints, got {self.n_clusters!r}")
        if any(b >= a for a, b in zip(levels, levels[1:])):
            raise ValueError(f"n_clusters must decrease from level to level, got {levels}")
        return [int(k) for k in levels]

    def _sample_sizes(self, levels: int) -> list[int | None]:
        if self.sample_size is None or isinstance(self.sample_size, (int, np.integer)):
            sizes = [self.sample_size] * levels
        else:
            sizes = list(self.sample_size)
        if len(sizes) != levels or any(s is not None and (not is_int(s) or s < 1) for s in sizes):
            raise ValueError(
                f"sample_size must be a positive int or one per level ({levels}), got {self.sample_size!r}"
            )
        return sizes

    def _validate(self, n: int, dim: int) -> list[int]:
        levels = self._levels()
        if n == 0 or dim == 0:
            raise ValueError(f"X is empty (shape ({n}, {dim})): nothing to cluster")
        if levels[0] > n:
            raise ValueError(f"n_clusters[0] ({levels[0]}) must be <= the number of rows of X ({n})")
        check_int(self.n_resampling_steps, "n_resampling_steps", minimum=0)
        if self.resample not in _RESAMPLE:
            raise ValueError(f"resample must be one of {_RESAMPLE}, got {self.resample!r}")
        check_int(self.n_splits, "n_splits", minimum=2, allow_none=True)
        if not isinstance(self.kmeans_kwargs.get("init", "auto"), str):
            raise ValueError("init must be a seeding name here, not centroids: every level and step starts afresh")
        self._sample_sizes(len(levels))
        return levels

    def _params(self) -> dict[str, Any]:
        return {
            "n_clusters": self._levels(),
            "n_resampling_steps": self.n_resampling_steps,
            "sample_size": self.sample_size if not isinstance(self.sample_size, Sequence) else list(self.sample_size),
            "resample": self.resample,
            "n_splits": self.n_splits,
            "seed": self.seed,
            "kmeans_kwargs": {
                k: str(v) if not isinstance(v, (int, float, str, type(None))) else v
                for k, v in sorted(self.kmeans_kwargs.items())
            },
        }

    # ------------------------------------------------------------------ fitting
    def _kmeans(self, k: int, seed: int) -> KMeans:
        kmeans = KMeans(k, seed=seed, **self.kmeans_kwargs)
        kmeans._cosine_checked = True  # the tree checked its input once; levels above fit on centroids
        return kmeans

    def _level_centroids(self, inputs: Any, k: int, seed: int) -> tuple[np.ndarray, Any, Any]:
        """k centroids of ``inputs``: one k-means, or the two-step coarse-then-split k-means with ``n_splits``;
        with the inputs' labels and squared distances when the k-means computed them (else None, None)."""
        if self.n_splits is None or k <= self.n_splits:
            fitted = self._kmeans(k, seed).fit(inputs)
            return fitted.cluster_centers_, fitted.labels_, fitted.distances_
        coarse = self._kmeans(math.ceil(k / self.n_splits), _derived_seed(seed, 0)).fit(inputs)
        sizes = np.bincount(coarse.labels_, minlength=len(coarse.cluster_centers_))
        filled = np.flatnonzero(sizes)
        counts = np.zeros_like(sizes)
        counts[filled] = _split_counts(sizes[filled], k)
        parts = []
        for c in filled:
            members = _rows(inputs, np.flatnonzero(coarse.labels_ == c))
            if counts[c] == 1:
                parts.append(as_matrix(members).double().mean(dim=0, keepdim=True).float().numpy())
            else:
                parts.append(self._kmeans(int(counts[c]), _derived_seed(seed, 1, int(c))).fit(members).cluster_centers_)
        return np.concatenate(parts), None, None

    def _assign(self, inputs: Any, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest centroid and squared distance of every input, with the metric, device and budget of the fit."""
        options = {
            key: self.kmeans_kwargs[key] for key in ("metric", "device", "memory_budget") if key in self.kmeans_kwargs
        }
        return assign(inputs, centroids, **options)

    def _fit_level(self, inputs: Any, k: int, level: int, sample_size: int | None) -> tuple[np.ndarray, ...]:
        """(centroids, labels of the inputs, squared distances) of one level, with its resampling steps."""
        n, _ = shape_of(inputs)
        centroids, labels, distances = self._level_centroids(inputs, k, _derived_seed(self.seed, level, 0))
        if labels is None:  # the two-step k-means labelled no input with its final centroids
            labels, distances = self._assign(inputs, centroids)
        r = sample_size if sample_size is not None else math.ceil(n / (2 * k))
        for step in range(1, self.n_resampling_steps + 1):
            rng = np.random.default_rng(_derived_seed(self.seed, level, step, 1))
            key = distances if self.resample == "closest" else rng.random(n)
            subset = per_group_first(labels, key, r)
            if len(subset) < k:  # empty clusters gave nothing: top up with random other inputs
                others = np.setdiff1d(np.arange(n), subset)
                subset = np.sort(np.r_[subset, rng.choice(others, k - len(subset), replace=False)])
            with stage(f"resampling step {step} of {self.n_resampling_steps}"):
                subset_rows = _rows(inputs, subset)
                centroids, _, _ = self._level_centroids(subset_rows, k, _derived_seed(self.seed, level, step))
                labels, distances = self._assign(inputs, centroids)
        return centroids.astype(np.float32), labels, distances

    def fit(self, X: Any, y: Any = None, *, checkpoint: str | os.PathLike[str] | None = None) -> HierarchicalKMeans:
        """Build the tree over X (array, tensor or VectorTable). With ``checkpoint``, each finished level is saved
        there and a rerun skips the levels already done (refusing a checkpoint of other data or settings); one fit
        at a time per checkpoint (``TableLockedError`` names the other)."""
        if checkpoint is None:
            return self._fit(X, None)
        with write_lock(checkpoint, wait=0):
            return self._fit(X, Path(checkpoint))

    def _fit(self, X: Any, checkpoint: Path | None) -> HierarchicalKMeans:
        self.sample_ids_ = sample_ids_of(X)  # the sample of each row, for curate on a table (None for arrays)
        X = validated_rows(self, X, reset=True)
        n, dim = shape_of(X)
        levels = self._validate(n, dim)
        sample_sizes = self._sample_sizes(len(levels))
        as_matrix(X, 0, min(n, 1))  # fail early on non-numeric input
        if self.kmeans_kwargs.get("metric") == "cosine":
            warn_if_degenerate(X, "HierarchicalKMeans(metric='cosine')", self.seed)
        state: dict[str, Any] = {"version": _STATE_VERSION, "params": self._params(), "dim": dim, "levels_done": 0}
        level_centroids: list[np.ndarray] = []
        level_labels: list[np.ndarray] = []
        distances = np.empty(0, dtype=np.float32)
        if checkpoint is not None:  # only a checkpoint pays for the pass over X that identifies it
            state["data"] = _data_digest(X, n)
            state["data_check"] = _data_check(X, n, dim)
            done = self._read_checkpoint(checkpoint, state)
            for t in range(done):
                level_centroids.append(np.load(checkpoint / f"level_{t + 1}_centroids.npy", allow_pickle=False))
                level_labels.append(np.load(checkpoint / f"level_{t + 1}_labels.npy", allow_pickle=False))
            if done:
                distances = np.load(checkpoint / "level_1_distances.npy", allow_pickle=False)
        inputs: Any = X if not level_centroids else level_centroids[-1]
        for t in range(len(level_centroids), len(levels)):
            if t > 0 and levels[t] > len(level_centroids[-1]):
                raise ValueError(
                    f"n_clusters[{t}] ({levels[t]}) exceeds the {len(level_centroids[-1])} centroids below"
                )
            with stage(f"level {t + 1} of {len(levels)} ({levels[t]} clusters)"):
                centroids, labels, level_distances = self._fit_level(inputs, levels[t], t + 1, sample_sizes[t])
            level_centroids.append(centroids)
            level_labels.append(labels.astype(np.int64))
            if t == 0:
                distances = level_distances.astype(np.float32)
            if checkpoint is not None:
                self._write_level(checkpoint, state, t, centroids, level_labels[-1], distances)
            inputs = centroids
        self._set_tree(level_centroids, level_labels, distances)
        return self

    def _set_tree(self, centroids: list[np.ndarray], labels_per_level: list[np.ndarray], distances: np.ndarray) -> None:
        rows = [labels_per_level[0]]
        for parents in labels_per_level[1:]:
            rows.append(parents[rows[-1]])
        self.centroids_ = centroids
        self.labels_ = np.stack(rows, axis=1)
        self.sizes_ = [np.bincount(self.labels_[:, t], minlength=len(c)) for t, c in enumerate(centroids)]
        self.distances_ = distances
        self._level_labels = labels_per_level

    def _nearest_leaf(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """(level-1 cluster, squared distance to its centroid) of every row of X."""
        check_fitted(self, "labels_")
        X = validated_rows(self, X, reset=False)
        labels, distances = self._assign(X, self.centroids_[0])
        if not np.isfinite(distances).all():
            raise ValueError("X holds NaN or inf")
        return labels, distances

    def predict(self, X: Any, level: int = 1) -> np.ndarray:
        """The cluster of every row of X at ``level`` (1: the finest), through its nearest level-1 centroid.

        Example:
            >>> X = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32)
            >>> tree = HierarchicalKMeans([12, 3], n_resampling_steps=1, n_iter=5).fit(X)
            >>> np.array_equal(tree.predict(X[:50], level=2), tree.labels_[:50, 1])
            True
        """
        check_int(level, "level", minimum=1)
        if level > self.n_levels:
            raise ValueError(f"level must be in [1, {self.n_levels}], got {level}")
        labels = self._nearest_leaf(X)[0]
        for parents in self._level_labels[1:level]:
            labels = parents[labels]
        return labels

    def score(self, X: Any, y: Any = None) -> float:
        """Minus the sum of squared distances from the rows of X to their nearest level-1 centroid."""
        return -float(self._nearest_leaf(X)[1].sum(dtype=np.float64))

    @property
    def n_levels(self) -> int:
        """T, the number of levels."""
        return len(self._levels())

    # ------------------------------------------------------------------ saving and resuming
    @staticmethod
    def _read_checkpoint(path: Path, state: dict[str, Any]) -> int:
        meta = path / "tree.json"
        if not meta.exists():  # nothing finished yet: only what an interrupted first save wrote may be there
            found = sorted(path.iterdir()) if path.exists() else []
            foreign = [f.name for f in found if not _CHECKPOINT_FILE.fullmatch(f.name)]
            if foreign:
                raise ValueError(
                    f"checkpoint {str(path)!r} is not empty, holds no tree.json and holds files that are not a "
                    f"tree's ({foreign[:3]}): use another path"
                )
            if found:
                warnings.warn(
                    f"checkpoint {str(path)!r} holds {len(found)} files of a first level whose save was interrupted: "
                    "removed, the level is redone",
                    stacklevel=3,
                )
                for leftover in found:
                    leftover.unlink()
            return 0
        saved = json.loads(meta.read_text())
        for key in ("version", "params", "data", "dim"):
            if saved.get(key) != state[key]:
                raise ValueError(
                    f"checkpoint {str(path)!r} was made with other {key}: saved {saved.get(key)!r}, "
                    f"now {state[key]!r}; use another path"
                )
        if "data_check" not in saved:
            warnings.warn(
                f"checkpoint {str(path)!r} was written by an older curata: its data is checked on 64 rows only",
                stacklevel=3,
            )
        elif not _same_data(saved["data_check"], state["data_check"]):
            raise ValueError(
                f"checkpoint {str(path)!r} was made with other data (sampled rows or column sums differ); "
                "use another path or delete it"
            )
        return int(saved["levels_done"])

    def _write_level(
        self,
        path: Path,
        state: dict[str, Any],
        t: int,
        centroids: np.ndarray,
        labels: np.ndarray,
        distances: np.ndarray,
    ) -> None:
        path.mkdir(parents=True, exist_ok=True)
        save_npy_atomically(path / f"level_{t + 1}_centroids.npy", centroids)
        save_npy_atomically(path / f"level_{t + 1}_labels.npy", labels)
        if t == 0:
            save_npy_atomically(path / "level_1_distances.npy", distances)
        state["levels_done"] = t + 1
        text = json.dumps(state, indent=1, sort_keys=True)
        write_atomically(path / "tree.json", lambda file: file.write_text(text))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the fitted tree as JSON + .npy files in the directory ``path``."""
        check_fitted(self, "labels_")
        path = Path(path)
        state = {
            "version": _STATE_VERSION,
            "params": self._params(),
            "data": "saved",
            "dim": self.centroids_[0].shape[1],
            "levels_done": 0,
        }
        for t, (centroids, labels) in enumerate(zip(self.centroids_, self._level_labels, strict=True)):
            self._write_level(path, state, t, centroids, labels, self.distances_)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> HierarchicalKMeans:
        """A fitted tree saved by ``save`` (or a finished ``fit(..., checkpoint=path)``)."""
        path = Path(path)
        if not (path / "tree.json").exists():
            raise FileNotFoundError(f"no saved tree in {str(path)!r} (tree.json is missing)")
        state = json.loads((path / "tree.json").read_text())
        params = state["params"]
        tree = cls(
            params["n_clusters"],
            n_resampling_steps=params["n_resampling_steps"],
            sample_size=params["sample_size"],
            resample=params["resample"],
            n_splits=params["n_splits"],
            seed=params["seed"],
            **params["kmeans_kwargs"],
        )
        if state["levels_done"] != len(params["n_clusters"]):
            raise ValueError(
                f"the tree in {str(path)!r} is unfinished ({state['levels_done']} of "
                f"{len(params['n_clusters'])} levels): rerun fit with checkpoint={str(path)!r}"
            )
        levels = range(1, state["levels_done"] + 1)
        tree._set_tree(
            [np.load(path / f"level_{t}_centroids.npy", allow_pickle=False) for t in levels],
            [np.load(path / f"level_{t}_labels.npy", allow_pickle=False) for t in levels],
            np.load(path / "level_1_distances.npy", allow_pickle=False),
        )
        return tree
