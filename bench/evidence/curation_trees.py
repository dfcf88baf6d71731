"""Study 8: which tree curates best without labels: metric and levels.

From the long-tailed pool of study 1, draw subsets of 2,000 and 5,000 rows by random sampling and by ``curate``
on hierarchical k-means trees (5 resampling steps, 20 iterations, fitted on the whole pool) that differ in metric
and levels: l2 [300, 30] (studies 1 and 7), l2 [500, 50] (the demo's), cosine [500, 50] and cosine
[1000, 100, 10]. The same linear probe is trained on each subset and evaluated on the balanced test set. 6 seeds;
a seed sets the clustering, the draws and the probe's init, the same for every method (paired).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from common import (
    Vectors,
    mean_std,
    methods_of,
    paired,
    paired_table,
    plot_accuracies,
    save_json,
    subset_row,
    values_of,
    verdict,
)

from curata import HierarchicalKMeans, curate

NAME = "curation_trees"
HYPOTHESIS = (
    "Without labels, a cosine tree with more levels ([1000, 100, 10]) curates subsets on which a linear probe has "
    "higher rarest-5 and macro accuracy than the demo's l2 [500, 50] tree. Null: no paired difference."
)
SIZES = (2000, 5000)
SEEDS = tuple(range(6))  # 6: the fewest paired seeds whose Wilcoxon test can reach 5 % (exact p >= 0.031)
TREES = {
    "l2 [300, 30]": ("l2", (300, 30)),
    "l2 [500, 50]": ("l2", (500, 50)),
    "cosine [500, 50]": ("cosine", (500, 50)),
    "cosine [1000, 100, 10]": ("cosine", (1000, 100, 10)),
}
BASELINE = "l2 [500, 50]"


def run(vectors: Vectors, seeds: tuple[int, ...] = SEEDS) -> dict[str, Any]:
    x_pool = vectors.train[vectors.pool]
    pool = vectors.pool
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for seed in seeds:
        subsets: dict[tuple[int, str], np.ndarray] = {}
        rng = np.random.default_rng(seed)
        for size in SIZES:
            subsets[size, "random"] = pool[np.sort(rng.choice(len(pool), size, replace=False))]
        for name, (metric, levels) in TREES.items():
            tree = HierarchicalKMeans(list(levels), n_resampling_steps=5, n_iter=20, metric=metric, seed=seed)
            tree.fit(x_pool)
            for size in SIZES:
                subsets[size, name] = pool[curate(tree, size, seed=seed)]
        rows += [subset_row(vectors, chosen, seed, size, method) for (size, method), chosen in subsets.items()]
        print(f"  curation_trees: seed {seed} done ({time.perf_counter() - start:.0f} s)", flush=True)
    result = {"hypothesis": HYPOTHESIS, "trees": TREES, "sizes": SIZES, "seeds": list(seeds), "rows": rows}
    save_json(NAME, result)
    plot_accuracies(result, "Curation without labels: metric and levels", NAME)
    return result


def markdown(result: dict[str, Any]) -> str:
    keys = ("kl_to_uniform", "macro_accuracy", "tail5_accuracy")
    lines = [
        "| subset size | method | class KL to uniform | macro accuracy | rarest-5 accuracy |",
        "|---:|---|---:|---:|---:|",
    ]
    for size in result["sizes"]:
        for method in sorted(methods_of(result), key=lambda m: (m != "random", m)):
            cells = " | ".join(mean_std(values_of(result, size, method, k)) for k in keys)
            lines.append(f"| {size} | {method} | {cells} |")
    lines += ["", *paired_table(result, _comparisons(result), ("macro_accuracy", "tail5_accuracy"))]
    return "\n".join(lines)


def _comparisons(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(BASELINE, name) for name in methods_of(result) if name not in (BASELINE, "random")]


def best_tree(result: dict[str, Any], key: str = "tail5_accuracy") -> str:
    """The tree with the highest mean ``key`` over sizes and seeds."""
    trees = [m for m in methods_of(result) if m != "random"]
    means = {m: np.mean([np.mean(values_of(result, s, m, key)) for s in result["sizes"]]) for m in trees}
    return max(means, key=lambda m: means[m])


def reading(result: dict[str, Any]) -> str:
    """The verdict, computed from the numbers (Wilcoxon signed-rank, two-sided, 5 %)."""
    parts = []
    for size in result["sizes"]:
        for first, second in _comparisons(result):
            for key, what in (("tail5_accuracy", "rarest-5 accuracy"), ("macro_accuracy", "macro accuracy")):
                test = paired(values_of(result, size, first, key), values_of(result, size, second, key))
                parts.append(f"at {size} rows, {second}: " + verdict(test, what, first) + ")")
    return (
        "; ".join(parts) + f". Highest mean rarest-5 accuracy: {best_tree(result)}; highest mean macro accuracy: "
        f"{best_tree(result, 'macro_accuracy')}."
    )
