"""What every study shares: the cached Fashion-MNIST + EfficientNet-Lite0 vectors, the heads, the statistics.

The vectors are described once into ``runs/evidence/`` (resumable) with the demo's model: EfficientNet-Lite0 at
64 px, the 1280-d ``_avg_pooling`` output. Training images: the long-tailed pool (class c keeps its first
floor(6000 * 0.6^c) images) and a balanced set (the first 1,000 images of each class); test: all 10,000.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from curata import TorchEmbedder, Vectorizer, describe
from curata.cli.demo import FashionMNIST, long_tailed
from curata.models import ImagePreprocess, efficientnet_lite0

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "runs" / "evidence"
OUT = ROOT / "docs" / "evidence"
CLASSES = 10


@dataclass
class Vectors:
    """Features (float32, standardised with the training mean and std) and labels."""

    train: np.ndarray
    train_labels: np.ndarray
    train_ids: np.ndarray  # Fashion-MNIST training index of every row
    test: np.ndarray
    test_labels: np.ndarray
    pool: np.ndarray  # rows of `train` in the long-tailed pool
    balanced: np.ndarray  # rows of `train` in the balanced set


def _describe(split: str, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dataset = torch.utils.data.Subset(FashionMNIST(split), indices.tolist())
    embedder = TorchEmbedder(nn.Sequential(ImagePreprocess(64), efficientnet_lite0()), ["1._avg_pooling"])
    table = describe(
        dataset,
        embedder,
        RUNS / split,
        vectorizer=Vectorizer("mean"),
        batch_size=128,
        label_key="label",
        progress=False,
    )
    order = np.argsort(table.column("idx"))  # idx is the position in the Subset
    return indices[table.column("idx")[order]], table.vectors()[order], table.column("label")[order]


def load_vectors() -> Vectors:
    """The cached vectors (described on the first call: a few minutes on 2 cores)."""
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    train_labels_all = FashionMNIST("train").labels.numpy()
    pool_ids = long_tailed(train_labels_all)
    balanced_ids = np.sort(np.concatenate([np.flatnonzero(train_labels_all == c)[:1000] for c in range(CLASSES)]))
    train_ids, train, train_labels = _describe("train", np.union1d(pool_ids, balanced_ids))
    _, test, test_labels = _describe("test", np.arange(10_000))
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-6
    return Vectors(
        train=((train - mean) / std).astype(np.float32),
        train_labels=train_labels,
        train_ids=train_ids,
        test=((test - mean) / std).astype(np.float32),
        test_labels=test_labels,
        pool=np.searchsorted(train_ids, pool_ids),
        balanced=np.searchsorted(train_ids, balanced_ids),
    )


def make_head(dim: int, hidden: int | None, seed: int, classes: int = CLASSES) -> nn.Module:
    """A linear probe (hidden=None) or a one-hidden-layer MLP, initialised from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = (
        [nn.Linear(dim, classes)] if hidden is None else [nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, classes)]
    )
    head = nn.Sequential(*layers)
    with torch.no_grad():  # overwrite the default init (global RNG) with one drawn from the seed
        for layer in head:
            if isinstance(layer, nn.Linear):
                bound = 1.0 / math.sqrt(layer.in_features)
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)
    return head


def train_probe(
    x: np.ndarray, y: np.ndarray, seed: int, steps: int = 300, weight_decay: float = 1e-3, classes: int = CLASSES
) -> nn.Module:
    """A linear probe fitted full-batch with Adam (deterministic given the seed)."""
    head = make_head(x.shape[1], None, seed, classes)
    optimiser = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=weight_decay)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(steps):
        optimiser.zero_grad()
        nn.functional.cross_entropy(head(xt), yt).backward()
        optimiser.step()
    return head


@torch.no_grad()
def accuracies(head: nn.Module, x: np.ndarray, y: np.ndarray, classes: int = CLASSES) -> dict[str, float]:
    """Overall, macro (mean per-class) and rarest-5-classes (the last 5) accuracy."""
    predicted = head(torch.from_numpy(x)).argmax(dim=1).numpy()
    per_class = np.array([np.mean(predicted[y == c] == c) for c in range(classes)])
    return {
        "accuracy": float(np.mean(predicted == y)),
        "macro_accuracy": float(per_class.mean()),
        "tail5_accuracy": float(per_class[-5:].mean()),
    }


def kl_to_uniform(labels: np.ndarray) -> float:
    """KL(class histogram || uniform)."""
    p = np.bincount(labels, minlength=CLASSES) / len(labels)
    return float(np.sum(p[p > 0] * np.log(p[p > 0] * CLASSES)))


def paired(a: list[float], b: list[float]) -> dict[str, float]:
    """Mean and std of b - a over paired seeds, the paired t-test and the Wilcoxon signed-rank p-values."""
    from scipy import stats

    diff = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    t_p = float(stats.ttest_rel(b, a).pvalue) if np.any(diff != 0) else 1.0
    w_p = float(stats.wilcoxon(diff).pvalue) if np.any(diff != 0) else 1.0
    return {"mean_diff": float(diff.mean()), "std_diff": float(diff.std(ddof=1)), "t_p": t_p, "wilcoxon_p": w_p}


def verdict(test: dict[str, float], what: str, other: str, digits: int = 3) -> str:
    """'WHAT higher|lower than OTHER by +d (significant|not significant, p = ...' from a ``paired`` result (the
    caller closes the parenthesis, after any remark of its own)."""
    direction = "higher" if test["mean_diff"] > 0 else "lower"
    significant = "significant" if test["wilcoxon_p"] < 0.05 else "not significant"
    change = f"{test['mean_diff']:+.{digits}f}"
    return f"{what} {direction} than {other} by {change} ({significant}, p = {test['wilcoxon_p']:.3g}"


def mean_std(values: list[float]) -> str:
    """'mean ± std' with 4 significant decimals."""
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def save_json(name: str, result: dict[str, Any]) -> Path:
    """Write a study's raw results to docs/evidence/NAME.json."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(result, indent=1, sort_keys=True))
    return path


def panels(count: int, width: float = 4.0, sharey: bool = True) -> tuple[Any, list[Any]]:
    """A headless matplotlib figure with ``count`` panels side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, count, figsize=(width * count, 3.7), sharey=sharey)
    return fig, list(np.atleast_1d(axes))


def save_figure(fig: Any, name: str) -> None:
    """Write docs/evidence/NAME.png and free the figure."""
    import matplotlib.pyplot as plt

    OUT.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(OUT / f"{name}.png", dpi=110)
    plt.close(fig)


def subset_row(vectors: Vectors, chosen: np.ndarray, seed: int, size: int, method: str) -> dict[str, Any]:
    """One result row of a subset study: the subset's class balance and a linear probe trained on it."""
    probe = train_probe(vectors.train[chosen], vectors.train_labels[chosen], seed)
    return {
        "seed": seed,
        "size": size,
        "method": method,
        "kl_to_uniform": kl_to_uniform(vectors.train_labels[chosen]),
        "class_counts": np.bincount(vectors.train_labels[chosen], minlength=CLASSES).tolist(),
        **accuracies(probe, vectors.test, vectors.test_labels),
    }


def values_of(result: dict[str, Any], size: int, method: str, key: str) -> list[float]:
    """``key`` of every seed's row for (``size``, ``method``)."""
    return [r[key] for r in result["rows"] if r["size"] == size and r["method"] == method]


def methods_of(result: dict[str, Any]) -> list[str]:
    """The methods of a subset study's rows, in the order they were run."""
    return list(dict.fromkeys(r["method"] for r in result["rows"]))


def paired_table(result: dict[str, Any], comparisons: list[tuple[str, str]], keys: tuple[str, ...]) -> list[str]:
    """Markdown lines: the paired differences (second - first) of ``keys`` across seeds, per size."""
    lines = [
        f"Paired across the {len(result['seeds'])} seeds (difference = second − first; p-values two-sided):",
        "",
        "| size | comparison | metric | mean diff ± std | paired t p | Wilcoxon p |",
        "|---:|---|---|---:|---:|---:|",
    ]
    for size in result["sizes"]:
        for first, second in comparisons:
            for key in keys:
                test = paired(values_of(result, size, first, key), values_of(result, size, second, key))
                lines.append(
                    f"| {size} | {first} → {second} | {key.replace('_', ' ')} | {test['mean_diff']:+.4f} ± "
                    f"{test['std_diff']:.4f} | {test['t_p']:.3g} | {test['wilcoxon_p']:.3g} |"
                )
    return lines


def plot_accuracies(result: dict[str, Any], title: str, name: str) -> None:
    """Macro and rarest-5 accuracy of every seed, per method and size, into docs/evidence/NAME.png."""
    fig, axes = panels(2, width=6.0, sharey=False)
    methods = methods_of(result)
    for ax, key in zip(axes, ("macro_accuracy", "tail5_accuracy")):
        for i, method in enumerate(methods):
            for j, size in enumerate(result["sizes"]):
                values = values_of(result, size, method, key)
                offset = 0.12 * (i - (len(methods) - 1) / 2)
                ax.scatter(
                    np.full(len(values), j + offset), values, s=10, color=f"C{i}", label=method if j == 0 else None
                )
        ax.set_xticks(range(len(result["sizes"])), [f"{s} rows" for s in result["sizes"]])
        ax.set_title(key.replace("_", " "))
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{title} ({len(result['seeds'])} seeds)")
    save_figure(fig, name)
