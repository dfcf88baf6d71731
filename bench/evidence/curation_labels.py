"""Study 7: curation by labels, then concepts: does it beat plain class-balanced random sampling?

From the long-tailed pool of study 1, draw subsets of 2,000 and 5,000 rows by: random sampling; class-balanced
random sampling (the target water-filled over the classes, uniform within each: the honest baseline once labels
exist); ``curate`` without labels (Vo et al.: balances the embedding's clusters); and ``curate`` with the labels
(``label_shares="balanced"``, the same class counts as the baseline) drawing each class's share through the tree
restricted to that class (``within_label="concepts"``), through its top level only ("coarse"), or uniformly
("random"). The tree is study 1's (hierarchical k-means 300/30, 5 resampling steps, fitted on the whole pool);
the same linear probe is trained on each subset and evaluated on the balanced test set. 10 seeds; a seed sets the
clustering, the draws and the probe's init, the same for every method (paired).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from common import (
    CLASSES,
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
from curata.subsets.label_shares import label_allocation

NAME = "curation_labels"
HYPOTHESIS = (
    "With labels, curating each class's equal share through the concept tree restricted to that class gives a "
    "probe with higher macro and rarest-5 accuracy than class-balanced random sampling of the same class counts "
    "(the concepts add something beyond class balance), and both beat unlabelled curation and random sampling. "
    "Null: no paired difference between label-aware curation and class-balanced random sampling."
)
SIZES = (2000, 5000)
SEEDS = tuple(range(10))
LEVELS = (300, 30)
BASELINE = "class-balanced random"
LABEL_AWARE = ("labels + concepts", "labels + coarse", "labels + random")


def class_balanced_random(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of a class-balanced random subset: water-filled class counts, uniform within each class."""
    counts = label_allocation(np.bincount(labels, minlength=CLASSES), size)
    chosen = [rng.choice(np.flatnonzero(labels == c), counts[c], replace=False) for c in range(CLASSES)]
    return np.sort(np.concatenate(chosen))


def _subsets(vectors: Vectors, size: int, seed: int, tree: Any) -> dict[str, np.ndarray]:
    pool, y = vectors.pool, vectors.train_labels[vectors.pool]
    rng = np.random.default_rng(seed)
    out = {
        "random": pool[np.sort(rng.choice(len(pool), size, replace=False))],
        BASELINE: pool[class_balanced_random(y, size, rng)],
        "curate, no labels": pool[curate(tree, size, seed=seed)],
    }
    for name in LABEL_AWARE:
        out[name] = pool[curate(tree, size, labels=y, within_label=name.split(" + ")[1], seed=seed)]
    return out


def run(vectors: Vectors, seeds: tuple[int, ...] = SEEDS) -> dict[str, Any]:
    x_pool = vectors.train[vectors.pool]
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for seed in seeds:
        tree = HierarchicalKMeans(list(LEVELS), n_resampling_steps=5, n_iter=20, seed=seed).fit(x_pool)
        for size in SIZES:
            rows += [subset_row(vectors, c, seed, size, m) for m, c in _subsets(vectors, size, seed, tree).items()]
        print(f"  curation_labels: seed {seed} done ({time.perf_counter() - start:.0f} s)", flush=True)
    pool_counts = np.bincount(vectors.train_labels[vectors.pool], minlength=CLASSES).tolist()
    result = {
        "hypothesis": HYPOTHESIS,
        "levels": LEVELS,
        "sizes": SIZES,
        "seeds": list(seeds),
        "pool_counts": pool_counts,
        "rows": rows,
    }
    save_json(NAME, result)
    plot_accuracies(result, "Curation by labels, then concepts", NAME)
    return result


def markdown(result: dict[str, Any]) -> str:
    keys = ("kl_to_uniform", "macro_accuracy", "tail5_accuracy")
    lines = [
        f"Pool class counts: {result['pool_counts']}. Class counts of the class-balanced subsets (water-filled): "
        + "; ".join(
            f"{s} rows: {label_allocation(np.array(result['pool_counts']), s).tolist()}" for s in result["sizes"]
        )
        + ".",
        "",
        "| subset size | method | class KL to uniform | macro accuracy | rarest-5 accuracy |",
        "|---:|---|---:|---:|---:|",
    ]
    for size in result["sizes"]:
        for method in methods_of(result):
            cells = " | ".join(mean_std(values_of(result, size, method, k)) for k in keys)
            lines.append(f"| {size} | {method} | {cells} |")
    lines += ["", *paired_table(result, _comparisons(), ("macro_accuracy", "tail5_accuracy"))]
    return "\n".join(lines)


def _comparisons() -> list[tuple[str, str]]:
    return [(BASELINE, name) for name in LABEL_AWARE] + [
        ("curate, no labels", BASELINE),
        ("random", "curate, no labels"),
    ]


def best_within_label(result: dict[str, Any]) -> str:
    """The within_label choice with the highest macro accuracy, averaged over sizes and seeds."""
    means = {
        name: np.mean([np.mean(values_of(result, s, name, "macro_accuracy")) for s in result["sizes"]])
        for name in LABEL_AWARE
    }
    return max(means, key=lambda name: means[name]).split(" + ")[1]


def reading(result: dict[str, Any]) -> str:
    """The verdict, computed from the numbers (Wilcoxon signed-rank, two-sided, 5 %)."""
    parts = []
    for size in result["sizes"]:
        for first, second in _comparisons():
            test = paired(
                values_of(result, size, first, "macro_accuracy"), values_of(result, size, second, "macro_accuracy")
            )
            parts.append(f"at {size} rows, {second}: " + verdict(test, "macro accuracy", first) + ")")
    beats = [
        (size, name)
        for size in result["sizes"]
        for name in LABEL_AWARE
        if (
            t := paired(
                values_of(result, size, BASELINE, "macro_accuracy"), values_of(result, size, name, "macro_accuracy")
            )
        )["mean_diff"]
        > 0
        and t["wilcoxon_p"] < 0.05
    ]
    winner = (
        "label-aware curation beats class-balanced random significantly in "
        + ", ".join(f"{name} at {size} rows" for size, name in beats)
        if beats
        else "no label-aware curation beats class-balanced random significantly: class balance is what helps here"
    )
    return (
        "; ".join(parts)
        + f". In short: {winner}. Highest mean macro accuracy among the label-aware choices: within_label="
        f"'{best_within_label(result)}'. The test set is balanced, so overall accuracy equals macro accuracy."
    )
