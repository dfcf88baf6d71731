"""Study 5: is a coreset split (Goldener's "smart split") a better training set than a random split?

From a class-balanced pool (the first 100 and the first 1,000 training images of each class), split 70 % / 30 %
inside every class: at random (the usual stratified split) and with ``split(mode="coreset")``, whose training
part is chosen by greedy k-center per class (Goldener's recipe) or by greedy kernel herding (``kernel_points``,
MMD to the pool); the validation part is the rest. Train the same linear probe on each training part; evaluate on
the 10,000-image test set. 10 seeds; a seed sets the random split, k-center's first pick and the probe's init, and
the same seed is used by every method (paired).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from common import (
    CLASSES,
    Vectors,
    accuracies,
    mean_std,
    paired,
    panels,
    save_figure,
    save_json,
    train_probe,
    verdict,
)

from curata import split

NAME = "coreset_split"
HYPOTHESIS = (
    "A probe trained on the training part of a coreset split (greedy k-center per class, as Goldener) reaches "
    "a higher test accuracy than one trained on a random stratified split of the same pool, i.e. falls above "
    "the spread of 10 random splits (Goldener reports matching or beating the best of 5 random splits). "
    "Null: no paired difference across seeds."
)
PER_CLASS = (100, 1000)
SEEDS = tuple(range(10))
METHODS = {
    "random split": "random",
    "coreset split (kcenter)": "kcenter",
    "coreset split (kernel_points)": "kernel_points",
}


def compare(
    pools: list[tuple[np.ndarray, np.ndarray]],
    test: tuple[np.ndarray, np.ndarray],
    train_share: float,
    classes: int,
    progress: str,
) -> list[dict[str, Any]]:
    """For every (x, y) pool, seed and method: split train_share / rest per class, fit the probe on the training
    part, and measure it on the validation part and on ``test``."""
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for x, y in pools:
        for seed in SEEDS:
            for name, method in METHODS.items():
                begun = time.perf_counter()
                sizes = {"train": train_share, "val": round(1 - train_share, 6)}
                parts = split(x, sizes, mode="coreset", labels=y, method=method, seed=seed)
                split_seconds = time.perf_counter() - begun
                probe = train_probe(x[parts["train"]], y[parts["train"]], seed, classes=classes)
                rows.append(
                    {
                        "pool": len(x),
                        "seed": seed,
                        "method": name,
                        "split_seconds": split_seconds,
                        "train_rows": len(parts["train"]),
                        "val_accuracy": accuracies(probe, x[parts["val"]], y[parts["val"]], classes)["accuracy"],
                        **accuracies(probe, *test, classes),
                    }
                )
            print(f"  {progress}: pool {len(x)} seed {seed} done ({time.perf_counter() - start:.0f} s)", flush=True)
    return rows


def run(vectors: Vectors) -> dict[str, Any]:
    labels_all = vectors.train_labels
    pools = []
    for per_class in PER_CLASS:
        balanced = vectors.balanced
        pool = np.sort(np.concatenate([balanced[labels_all[balanced] == c][:per_class] for c in range(CLASSES)]))
        pools.append((vectors.train[pool], labels_all[pool]))
    rows = compare(pools, (vectors.test, vectors.test_labels), 0.7, CLASSES, "coreset split")
    result = {"hypothesis": HYPOTHESIS, "pools": [p * CLASSES for p in PER_CLASS], "seeds": SEEDS, "rows": rows}
    save_json(NAME, result)
    plot(result, NAME, "Coreset split vs random split, 70/30 per class (10 seeds)")
    return result


def _values(result: dict[str, Any], pool: int, method: str, key: str = "accuracy") -> list[float]:
    return [r[key] for r in result["rows"] if r["pool"] == pool and r["method"] == method]


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| pool | split | test accuracy (mean ± std) | min | max | validation accuracy "
        "| random splits below its mean | split time (s) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for pool in result["pools"]:
        random = np.array(_values(result, pool, "random split"))
        for method in METHODS:
            acc = _values(result, pool, method)
            below = int((random < np.mean(acc)).sum())
            lines.append(
                f"| {pool} | {method} | {mean_std(acc)} | {min(acc):.4f} | {max(acc):.4f} | "
                f"{mean_std(_values(result, pool, method, 'val_accuracy'))} | {below} of {len(random)} | "
                f"{np.mean(_values(result, pool, method, 'split_seconds')):.2f} |"
            )
    lines += [
        "",
        "Paired across the 10 seeds (difference = coreset − random, test accuracy; p-values two-sided):",
        "",
        "| pool | split | mean diff ± std | paired t p | Wilcoxon p |",
        "|---:|---|---:|---:|---:|",
    ]
    for pool in result["pools"]:
        for method in list(METHODS)[1:]:
            test = paired(_values(result, pool, "random split"), _values(result, pool, method))
            lines.append(
                f"| {pool} | {method} | {test['mean_diff']:+.4f} ± {test['std_diff']:.4f} | {test['t_p']:.3g} | "
                f"{test['wilcoxon_p']:.3g} |"
            )
    return "\n".join(lines)


def reading(result: dict[str, Any]) -> str:
    """The verdict, computed from the numbers (Wilcoxon signed-rank, two-sided, 5 %)."""
    out = []
    for pool in result["pools"]:
        random = _values(result, pool, "random split")
        for method in list(METHODS)[1:]:
            test = paired(random, _values(result, pool, method))
            out.append(
                f"pool {pool}, {method}: "
                + verdict(test, "test accuracy", "random", 4)
                + f"; random splits span {min(random):.4f}-{max(random):.4f})"
            )
    return (
        "; ".join(out) + ". Validation accuracies are not comparable across methods: a coreset split leaves the "
        "typical rows for validation, so its validation set is easier than a random one."
    )


def plot(result: dict[str, Any], name: str, title: str) -> None:
    fig, axes = panels(len(result["pools"]), width=4.5, sharey=False)
    for ax, pool in zip(axes, result["pools"]):
        for i, method in enumerate(METHODS):
            values = _values(result, pool, method)
            ax.scatter(np.full(len(values), i), values, s=14, color=f"C{i}")
        ax.set_xticks(range(len(METHODS)), ["random", "kcenter", "kernel\npoints"])
        ax.set_title(f"pool of {pool}: test accuracy")
    fig.suptitle(title)
    save_figure(fig, name)
