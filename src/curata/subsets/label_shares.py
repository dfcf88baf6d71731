"""Label-aware curation: how a target is shared over labels, and the balance report of a curated subset."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["BalanceReport", "balance", "label_allocation"]

SHARES = ("balanced", "proportional")
WITHIN_LABEL = ("concepts", "coarse", "random")


def label_allocation(sizes: Any, target: int, shares: Any = "balanced") -> np.ndarray:
    """How many of ``target`` picks each label gets, by (weighted) water-filling over the labels' ``sizes``.

    Every label gets min(its size, t * its weight) for the largest t whose total fits the target: with
    ``"balanced"`` (weight 1 each) a label smaller than its equal share gives all it has and the others share the
    rest equally; ``"proportional"`` weighs labels by their sizes; an array of weights (>= 0, normalised) gives
    those shares, what a small label cannot fill going to the others in the same ratios. Whole picks: the floors,
    then one more each to the labels with the largest remainders (ties: the larger label, then the lower index).
    The total is min(target, sizes of the labels with a weight > 0).

    Args:
        sizes: (labels,) picks each label can give (its rows, times curate's multiplier).
        target: picks wanted.
        shares: "balanced", "proportional" or (labels,) weights.

    Example:
        >>> label_allocation(np.array([6000, 3600, 30, 10]), 100).tolist()
        [30, 30, 30, 10]
        >>> label_allocation(np.array([600, 300, 100]), 100, "proportional").tolist()
        [60, 30, 10]
        >>> label_allocation(np.array([600, 300, 5]), 100, np.array([1.0, 1.0, 2.0])).tolist()
        [48, 47, 5]
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if sizes.ndim != 1 or (sizes < 0).any():
        raise ValueError(f"sizes must be a 1-d array of counts >= 0, got shape {sizes.shape}")
    if isinstance(shares, str):
        if shares not in SHARES:
            raise ValueError(f"shares must be one of {SHARES} or an array of weights, got {shares!r}")
        weights = np.ones(len(sizes)) if shares == "balanced" else sizes.astype(np.float64)
    else:
        weights = np.asarray(shares, dtype=np.float64)
        if weights.shape != sizes.shape or not np.isfinite(weights).all() or (weights < 0).any():
            raise ValueError(f"shares must hold one finite weight >= 0 per label ({len(sizes)}), got {weights}")
    active = (weights > 0) & (sizes > 0)
    budget = min(int(target), int(sizes[active].sum()))
    out = np.zeros(len(sizes), dtype=np.int64)
    if budget == 0:
        return out
    index = np.flatnonzero(active)
    w, cap = weights[index], sizes[index].astype(np.float64)
    order = np.argsort(cap / w, kind="stable")  # the order in which labels fill up as t grows
    w, cap, index = w[order], cap[order], index[order]
    filled = np.r_[0.0, np.cumsum(cap)[:-1]]  # picks of the labels already full
    weight_left = np.cumsum(w[::-1])[::-1]  # weight of the labels still filling
    t = (budget - filled) / weight_left
    k = int(np.argmax(t <= cap / w + 1e-12)) if (t <= cap / w + 1e-12).any() else len(t) - 1
    exact = np.minimum(cap, t[k] * w)
    whole = np.minimum(np.floor(exact + 1e-9), cap).astype(np.int64)
    left = budget - int(whole.sum())
    room = whole < cap
    rank = np.lexsort((index, -cap, -(exact - whole)))  # largest remainder, then the larger, then lower index
    rank = rank[room[rank]]
    while left > 0 and len(rank):  # once through, barring rounding
        take = rank[:left]
        whole[take] += 1
        left -= len(take)
        rank = rank[whole[rank] < cap[rank]]
    out[index] = whole
    return out


@dataclass
class BalanceReport:
    """Pool vs subset: cluster KL to uniform per tree level and, with labels, class counts and class KL.

    KL(histogram || uniform over the groups present in the pool); 0 is perfectly balanced. ``str()`` is a small
    table; ``to_dict()`` is what ``curata curate`` writes to summary.json.
    """

    balanced: str
    pool_size: int
    subset_size: int
    cluster_kl: list[tuple[float, float]]  # per level, level 1 first: (pool, subset)
    clusters: list[int]  # clusters per level present in the pool
    label_names: list[Any] = field(default_factory=list)
    pool_counts: list[int] = field(default_factory=list)
    subset_counts: list[int] = field(default_factory=list)
    class_kl: tuple[float, float] | None = None
    unlabelled: int = 0  # rows left out for having label -1

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able values."""
        out: dict[str, Any] = {
            "balanced": self.balanced,
            "pool_size": self.pool_size,
            "subset_size": self.subset_size,
            "cluster_kl": [
                {"level": i + 1, "clusters": c, "pool": p, "subset": s}
                for i, (c, (p, s)) in enumerate(zip(self.clusters, self.cluster_kl))
            ],
        }
        if self.class_kl is not None:
            out["class_kl"] = {"pool": self.class_kl[0], "subset": self.class_kl[1]}
            out["class_counts"] = {
                str(name): {"pool": p, "subset": s}
                for name, p, s in zip(self.label_names, self.pool_counts, self.subset_counts)
            }
            out["unlabelled_left_out"] = self.unlabelled
        return out

    def __str__(self) -> str:
        rows = [("", "pool", "subset"), ("rows", str(self.pool_size), str(self.subset_size))]
        for level, (count, (p, s)) in enumerate(zip(self.clusters, self.cluster_kl)):
            rows.append((f"cluster KL, level {level + 1} ({count})", f"{p:.3f}", f"{s:.3f}"))
        if self.class_kl is not None:
            rows.append((f"class KL ({len(self.label_names)})", f"{self.class_kl[0]:.3f}", f"{self.class_kl[1]:.3f}"))
            for name, p, s in zip(self.label_names, self.pool_counts, self.subset_counts):
                rows.append((f"  class {name}", str(p), str(s)))
            if self.unlabelled:
                rows.append(("  unlabelled (left out)", str(self.unlabelled), "0"))
        width = max(len(r[0]) for r in rows)
        cells = max(len(c) for r in rows for c in r[1:])
        lines = [f"{a:<{width}}  {b:>{cells}}  {c:>{cells}}" for a, b, c in rows]
        return "\n".join([f"Balanced: {self.balanced}.", *lines])


def kl_to_uniform(counts: np.ndarray, support: np.ndarray) -> float:
    """KL(counts / total || uniform over ``support``) for the groups where ``support`` is true (0 if empty).

    Example:
        >>> round(kl_to_uniform(np.array([3, 1]), np.array([True, True])), 4)
        0.1308
    """
    counts = np.asarray(counts, dtype=np.float64)[support]
    if counts.sum() == 0:
        return 0.0
    p = counts / counts.sum()
    return float(np.sum(p[p > 0] * np.log(p[p > 0] * len(p))))


def sentence(labelled: bool, shares: Any, within_label: str) -> str:
    """What curate balanced, in words."""
    if not labelled:
        return "clusters of the embedding (Vo et al.), not classes"
    how = {"balanced": "classes", "proportional": "classes in proportion to the pool"}.get(
        shares if isinstance(shares, str) else "", "classes at the given shares"
    )
    within = {
        "concepts": "concepts within each class",
        "coarse": "the tree's top-level clusters within each class",
        "random": "uniformly at random within each class",
    }[within_label]
    return f"{how}, then {within}"


def make_report(
    tree_labels: np.ndarray,
    picked: np.ndarray,
    what: str,
    classes: np.ndarray | None = None,
    names: np.ndarray | None = None,
    unlabelled: int = 0,
) -> BalanceReport:
    """The report of positions ``picked`` (repeats counted) among pool rows with these tree labels (>= 0) and
    class indices into ``names`` (-1: unlabelled, counted with ``unlabelled`` rows left out before)."""
    cluster_kl, clusters = [], []
    for level in range(tree_labels.shape[1]):
        pool = np.bincount(tree_labels[:, level])
        subset = np.bincount(tree_labels[picked, level], minlength=len(pool))
        cluster_kl.append((kl_to_uniform(pool, pool > 0), kl_to_uniform(subset, pool > 0)))
        clusters.append(int((pool > 0).sum()))
    report = BalanceReport(what, len(tree_labels), len(picked), cluster_kl, clusters)
    if classes is not None and names is not None:
        chosen = classes[picked]
        pool = np.bincount(classes[classes >= 0], minlength=len(names))
        subset = np.bincount(chosen[chosen >= 0], minlength=len(names))
        report.label_names = [n.item() if hasattr(n, "item") else n for n in names]
        report.pool_counts, report.subset_counts = pool.tolist(), subset.tolist()
        report.class_kl = (kl_to_uniform(pool, pool > 0), kl_to_uniform(subset, pool > 0))
        report.unlabelled = int(unlabelled + (classes < 0).sum())
    return report


def label_classes(per_row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct labels (-1 left out for integer labels) and each row's index among them (-1: unlabelled).

    Example:
        >>> [a.tolist() for a in label_classes(np.array([7, -1, 3, 7]))]
        [[3, 7], [1, -1, 0, 1]]
    """
    labelled = per_row != -1 if np.issubdtype(per_row.dtype, np.integer) else np.ones(len(per_row), dtype=bool)
    names, index = np.unique(per_row[labelled], return_inverse=True)
    classes = np.full(len(per_row), -1, dtype=np.int64)
    classes[labelled] = index
    return names, classes


def row_labels(labels: Any, rows: int, sample_ids: np.ndarray | None) -> np.ndarray:
    """One label per row of the tree from ``labels`` given per row, or per sample (ascending sample id) for a
    tree with ``sample_ids_``; integer labels or strings, -1 meaning unlabelled."""
    array = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels)
    if array.ndim != 1:
        raise ValueError(f"labels must be 1-d (one label per row or per sample), got shape {array.shape}")
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or array.dtype.kind in "US"):
        raise TypeError(f"labels must hold integers (-1: unlabelled) or strings, got dtype {array.dtype}")
    if len(array) == rows:
        return array
    if sample_ids is not None:
        ids, entry = np.unique(sample_ids, return_inverse=True)
        if len(array) == len(ids):
            return array[entry]
        raise ValueError(f"labels must hold one label per row ({rows}) or per sample ({len(ids)}), got {len(array)}")
    raise ValueError(f"labels must hold one label per row of the tree ({rows}), got {len(array)}")


def label_weights(names: np.ndarray, shares: Any) -> Any:
    """``shares`` as label_allocation takes it: a name, or weights aligned with ``names`` from a {label: share}."""
    if isinstance(shares, str):
        return shares
    known = {n.item() if hasattr(n, "item") else n: i for i, n in enumerate(names)}
    weights = np.zeros(len(names))
    for label, share in shares.items():
        if label not in known:
            raise ValueError(f"label_shares names label {label!r}, which no labelled row of the pool has")
        weights[known[label]] = float(share)
    return weights


def check_shares(label_shares: Any, within_label: str) -> None:
    """Refuse bad label_shares / within_label before any work."""
    if isinstance(label_shares, dict):
        values = np.asarray(list(label_shares.values()), dtype=np.float64) if label_shares else np.zeros(0)
        if len(values) == 0 or not np.isfinite(values).all() or (values < 0).any() or values.sum() <= 0:
            raise ValueError(f"label_shares must map labels to shares >= 0 with a positive sum, got {label_shares}")
    elif label_shares not in SHARES:
        raise ValueError(f"label_shares must be one of {SHARES} or a {{label: share}} dict, got {label_shares!r}")
    if within_label not in WITHIN_LABEL:
        raise ValueError(f"within_label must be one of {WITHIN_LABEL}, got {within_label!r}")


def balance(tree: Any, picked: Any, labels: Any = None) -> BalanceReport:
    """The balance report of ids ``picked`` (as curate returns them) against the pool of the tree.

    The pool is every sample with a cluster (one row per sample); with ``labels`` (per row or per sample, -1
    unlabelled) the report adds class counts and class KL to uniform over the labelled pool.

    Example:
        >>> tree = np.array([0] * 90 + [1] * 10)
        >>> report = balance(tree, [0, 1, 90, 91], labels=np.array([0] * 50 + [1] * 50))
        >>> [round(kl, 3) for kl in report.cluster_kl[0]], report.subset_counts
        ([0.368, 0.0], [2, 2])
    """
    from curata.subsets.curate import _pool_rows, _tree_arrays

    tree_labels, _, sample_ids = _tree_arrays(tree)
    per_row = None if labels is None else row_labels(labels, len(tree_labels), sample_ids)
    rows = _pool_rows(tree_labels, sample_ids, None)
    keys = rows if sample_ids is None else sample_ids[rows]
    wanted = np.asarray(picked, dtype=np.int64).reshape(-1)
    order = np.argsort(keys, kind="stable")
    found = np.searchsorted(keys[order], wanted).clip(0, max(len(keys) - 1, 0))
    if len(wanted) and (len(keys) == 0 or (keys[order][found] != wanted).any()):
        raise ValueError("picked holds ids that are not in the tree's pool (ids with a cluster)")
    positions = order[found]
    what = "not stated (curate(..., report=True) says what it balanced)"
    if per_row is None:
        return make_report(tree_labels[rows], positions, what)
    names, classes = label_classes(per_row[rows])
    return make_report(tree_labels[rows], positions, what, classes, names)
