"""curate(): balanced hierarchical sampling of a subset of a given size from a cluster tree (Vo et al. 2024)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from curata._internal.checks import check_int
from curata._internal.grouping import order_within_groups
from curata.subsets import label_shares as shares_

__all__ = ["curate", "water_fill"]  # balance and label_allocation: curata.subsets.label_shares

_STRATEGIES = ("random", "closest")


def _group_starts(groups: np.ndarray) -> np.ndarray:
    return np.r_[0, np.flatnonzero(groups[1:] != groups[:-1]) + 1]


def water_fill(groups: np.ndarray, capacity: np.ndarray, budget: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split each group's budget over its members by water-filling, for all groups at once.

    Group g's members get min(tau_g, capacity) where tau_g is the largest cap whose total fits the budget; what
    remains goes +1 to members larger than tau_g chosen at random. A group whose members cannot hold its budget
    gives every member its capacity.

    Args:
        groups: group id (0..G-1) of each member.
        capacity: how many picks each member can take.
        budget: (G,) budget of each group.
        rng: generator of the +1 draws.

    Example:
        >>> water_fill(np.zeros(3, int), np.array([1, 5, 9]), np.array([10]), np.random.default_rng(0)).tolist()
        [1, 4, 5]
    """
    groups, capacity = np.asarray(groups, np.int64), np.asarray(capacity, np.int64)
    budget = np.asarray(budget, np.int64)
    out = np.zeros(len(groups), dtype=np.int64)
    if len(groups) == 0:
        return out
    order = np.lexsort((capacity, groups))
    g, c = groups[order], capacity[order]
    starts = _group_starts(g)
    lengths = np.diff(np.r_[starts, len(g)])
    position = np.arange(len(g)) - np.repeat(starts, lengths)
    remaining = np.repeat(lengths, lengths) - position
    below = np.cumsum(c) - c - np.repeat(np.cumsum(c)[starts] - c[starts], lengths)  # sum of smaller members
    group_budget = budget[g]
    # capping at the j-th smallest capacity would exceed the budget: tau lies below it
    exceeds = below + remaining * c > group_budget
    first = np.minimum.reduceat(np.where(exceeds, position, np.iinfo(np.int64).max), starts)
    has_cap = first < np.iinfo(np.int64).max
    tau = np.full(len(starts), np.iinfo(np.int64).max, dtype=np.int64)
    at = starts[has_cap] + first[has_cap]
    tau[has_cap] = (budget[g[starts[has_cap]]] - below[at]) // remaining[at]
    member_tau = np.repeat(tau, lengths)
    share = np.minimum(c, member_tau)
    leftover = budget[g[starts]] - np.add.reduceat(share, starts)
    eligible = c > member_tau
    key = np.where(eligible, rng.random(len(g)), 2.0)
    second, ranks = order_within_groups(g, key)
    rank = np.empty(len(g), dtype=np.int64)
    rank[second] = ranks
    share += eligible & (rank < np.repeat(np.where(has_cap, leftover, 0), lengths))
    out[order] = share
    return out


def _tree_arrays(tree: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The tree's labels (rows, levels), distances and the sample id of each row (None: rows are the answer)."""
    labels = getattr(tree, "labels_", tree)
    labels = np.asarray(labels)
    if labels.ndim == 1:
        labels = labels[:, None]
    if labels.ndim != 2 or len(labels) == 0 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            "tree must be a fitted HierarchicalKMeans or KMeans, or integer labels of shape (rows,) or "
            f"(rows, levels) (-1: a sample with no cluster); got shape {labels.shape} and dtype {labels.dtype}"
        )
    if labels.min() < -1:
        raise ValueError(f"tree labels must be >= 0, or -1 for a sample with no cluster; got {int(labels.min())}")
    distances = getattr(tree, "distances_", None)
    sample_ids = getattr(tree, "sample_ids_", None)
    if sample_ids is not None:
        sample_ids = np.asarray(sample_ids, dtype=np.int64)
        if sample_ids.shape != (len(labels),):
            raise ValueError(f"tree.sample_ids_ must hold one id per row ({len(labels)}), got {sample_ids.shape}")
    return labels.astype(np.int64), None if distances is None else np.asarray(distances), sample_ids


def _one_row_per_sample(labels: np.ndarray, sample_ids: np.ndarray) -> np.ndarray:
    """For each sample, its first row among those in its most frequent level-1 cluster (the levels above follow
    from level 1, so that row carries the sample's whole path down the tree)."""
    from curata.store.samples import per_sample_majority

    ids, entry = np.unique(sample_ids, return_inverse=True)
    majority = per_sample_majority(entry, labels[:, 0], len(ids))
    candidates = np.flatnonzero(labels[:, 0] == majority[entry])
    first = np.full(len(ids), -1, dtype=np.int64)
    first[entry[candidates[::-1]]] = candidates[::-1]
    return np.sort(first[first >= 0])


def _pool_rows(labels: np.ndarray, sample_ids: np.ndarray | None, within: Any) -> np.ndarray:
    """The rows curate draws from: with a cluster, inside ``within``, one per sample."""
    usable = (labels >= 0).all(axis=1)
    if within is not None:
        from curata._internal.checks import check_row_ids
        from curata.store.samples import find_ids

        named = np.zeros(len(labels), dtype=bool)
        if sample_ids is None:
            named[check_row_ids(within, "within", len(labels))] = True
        else:
            ids = np.unique(sample_ids)
            named = np.isin(sample_ids, ids[find_ids(ids, within, "within")])
        usable &= named
    rows = np.flatnonzero(usable)
    if sample_ids is not None and len(np.unique(sample_ids[rows])) < len(rows):
        rows = rows[_one_row_per_sample(labels[rows], sample_ids[rows])]
    return rows


def curate(
    tree: Any,
    target_size: int,
    *,
    strategy: str = "random",
    multiplier: int = 1,
    within: Any = None,
    labels: Any = None,
    label_shares: Any = "balanced",
    within_label: str = "random",
    report: bool = False,
    seed: int = 0,
) -> Any:
    """Ids of a balanced subset of ``target_size`` samples, sampled top-down through the cluster tree.

    At every node the budget is split over its children by water-filling (small clusters give all they have, the
    large ones share the rest equally); in the level-1 clusters the picks are random members (``"random"``) or
    those nearest the centroid (``"closest"``). ``multiplier`` m lets a row be picked up to m times. When the
    pool cannot fill the target, all it can give is returned with a warning.

    This balances the embedding's clusters, not classes. With ``labels`` the target is first shared over the
    labels (``label_allocation``: "balanced" water-fills equal shares, "proportional" follows the pool, a
    {label: share} dict gives those shares, labels it leaves out getting none), and each label's share is then
    drawn from that label's rows: by balanced sampling through the tree restricted to them (``within_label=
    "concepts"``), through its top level only ("coarse"), or uniformly ("random"). Rows labelled -1 are
    unlabelled and left out when labels are given.

    A tree fitted on a VectorTable answers in sample ids (its ``sample_ids_``); a sample with several vectors
    takes part once, by a row of its most frequent level-1 cluster (whose label it takes). Rows labelled -1 in
    the tree (no cluster: a sample with no vector, as ``cluster()`` returns it) are never picked.

    Args:
        tree: a fitted ``HierarchicalKMeans`` or ``KMeans``, or labels (rows,) / (rows, levels), level 1 first.
        target_size: samples wanted.
        strategy: "random" or "closest" (needs the tree's ``distances_``).
        multiplier: how many times one row may be picked.
        within: ids (sample ids for a tree fitted on a table, else row ids) to choose among; None: all.
        labels: None, or a class label per row of the tree, or per sample (ascending sample id) for a tree with
            ``sample_ids_``; integers (-1: unlabelled) or strings.
        label_shares: with labels: "balanced", "proportional" or {label: share}.
        within_label: with labels: "random" (the default), "coarse" or "concepts". The default is measured: on
            the long-tailed Fashion-MNIST pool (docs/evidence.md, study 7, 10 paired seeds, linear probe), drawing
            each class's share through its concepts lost 2-4 points of macro accuracy to uniform draws, the top
            level alone about 0-2; class balance is what helped.
        report: also return a ``BalanceReport`` (pool vs subset cluster and class balance).
        seed: seed of the random draws.

    Returns:
        Sorted ids: sample ids for a tree fitted on a VectorTable, else row positions in the clustered rows (a row
        picked twice appears twice); with ``report=True``, (ids, report).

    Example:
        >>> labels = np.array([0] * 90 + [1] * 9 + [2])
        >>> picked = curate(labels, 10, seed=0)
        >>> np.bincount(labels[picked]).tolist()
        [5, 4, 1]
        >>> classes = np.array([0] * 50 + [1] * 50)
        >>> np.bincount(classes[curate(labels, 10, labels=classes, seed=0)]).tolist()
        [5, 5]
    """
    check_int(target_size, "target_size", minimum=1)
    check_int(multiplier, "multiplier", minimum=1)
    if strategy not in _STRATEGIES:
        raise ValueError(f"strategy must be one of {_STRATEGIES}, got {strategy!r}")
    shares_.check_shares(label_shares, within_label)
    tree_labels, distances, sample_ids = _tree_arrays(tree)
    if strategy == "closest" and distances is None:
        raise ValueError("strategy 'closest' needs distances: pass a fitted tree with distances_")
    per_row = None if labels is None else shares_.row_labels(labels, len(tree_labels), sample_ids)
    rows = _pool_rows(tree_labels, sample_ids, within)
    what = shares_.sentence(per_row is not None, label_shares, within_label)
    names = classes = None
    unlabelled = 0
    if per_row is not None:
        names, classes = shares_.label_classes(per_row[rows])
        unlabelled = int((classes < 0).sum())
        rows, classes = rows[classes >= 0], classes[classes >= 0]
    if len(rows) == 0:
        raise ValueError(
            "the tree has no row to pick from (every row is outside within=, has no cluster or is unlabelled)"
        )
    pool_labels = tree_labels[rows]
    pool_distances = None if distances is None else distances[rows]
    if classes is None:
        positions = _balanced_rows(pool_labels, pool_distances, target_size, strategy, multiplier, seed)
    else:
        sizes = np.bincount(classes, minlength=len(names))
        weights = shares_.label_weights(names, label_shares)
        budget = shares_.label_allocation(multiplier * sizes, target_size, weights)
        levels = {"concepts": pool_labels, "coarse": pool_labels[:, -1:], "random": pool_labels[:, :0]}[within_label]
        positions = _balanced_rows(
            _within_classes(levels, classes), pool_distances, target_size, strategy, multiplier, seed, classes, budget
        )
    picked = rows[positions]
    ids = picked if sample_ids is None else np.sort(sample_ids[picked])
    if not report:
        return ids
    return ids, shares_.make_report(pool_labels, positions, what, classes, names, unlabelled)


def _within_classes(levels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The tree's levels split by class: node ids of (class, cluster) at each level; the class alone when the
    tree has no level left (within_label="random")."""
    if levels.shape[1] == 0:
        return classes[:, None]
    out = np.empty(levels.shape, dtype=np.int64)
    for t in range(levels.shape[1]):
        out[:, t] = np.unique(classes * (int(levels[:, t].max()) + 1) + levels[:, t], return_inverse=True)[1]
    return out


def _balanced_rows(
    labels: np.ndarray,
    distances: np.ndarray | None,
    target_size: int,
    strategy: str,
    multiplier: int,
    seed: int,
    top: np.ndarray | None = None,
    top_budget: np.ndarray | None = None,
) -> np.ndarray:
    """Vo et al.'s balanced hierarchical sampling over the rows of ``labels`` (all >= 0): sorted row positions.
    ``top`` (a group per row, e.g. its class) with ``top_budget`` (picks per group) replaces the root's single
    budget of ``target_size``."""
    rng = np.random.default_rng(seed)
    rows, levels = labels.shape
    # node sizes and parents per level, from the top level down
    budget = np.array([int(target_size)], dtype=np.int64) if top_budget is None else top_budget
    parent_of_rows = np.zeros(rows, dtype=np.int64) if top is None else top  # the root, or the top groups
    for t in range(levels - 1, -1, -1):
        nodes = labels[:, t]
        count = int(nodes.max()) + 1
        size = np.bincount(nodes, minlength=count)
        parent = np.zeros(count, dtype=np.int64)
        parent[nodes] = parent_of_rows
        present = np.flatnonzero(size)
        shares = water_fill(parent[present], multiplier * size[present], budget, rng)
        budget = np.zeros(count, dtype=np.int64)
        budget[present] = shares
        parent_of_rows = nodes
    # inside each level-1 cluster: every row is picked budget // size times, plus once more for the first rows
    nodes = labels[:, 0]
    size = np.bincount(nodes, minlength=len(budget))
    key = distances if strategy == "closest" else rng.random(rows)
    order, rank = order_within_groups(nodes, key)
    full, extra = np.divmod(budget[nodes[order]], size[nodes[order]])
    times = full + (rank < extra)
    picked = np.sort(np.repeat(order, times))
    if len(picked) < target_size:
        warnings.warn(
            f"the pool can give only {len(picked)} of the {target_size} rows asked for "
            f"(rows={rows}, multiplier={multiplier})",
            stacklevel=3,
        )
    return picked
