"""Study 4: how far is each mini-batch's mix of clusters and labels from the whole data set's?

One epoch over the balanced training set (10,000 vectors) per arm: random batches, and ClusterBatchSampler with
"balanced" and "proportional" pacing, for B = 16, 64, 256 and K = 8, 64, 512 k-means clusters. Per batch: the
total-variation distance between its cluster histogram and the data set's, the same for labels, and the number
of distinct clusters. This is the deterministic part of the claim: no training involved.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from common import CLASSES, Vectors, panels, save_figure, save_json

from curata import ClusterBatchSampler, KMeans

NAME = "batch_composition"
HYPOTHESIS = (
    "Cluster-mixed batches have a cluster histogram, and therefore a label histogram, closer to the data set's "
    "than random batches of the same size (lower total variation), with the largest gain when K is close to B. "
    "'balanced' pacing draws clusters equally, so it tracks the data set's cluster mix worse than "
    "'proportional' pacing when cluster sizes differ. Null: equal distances."
)
BATCH_SIZES = (16, 64, 256)
CLUSTERS = (8, 64, 512)


def _tv(values: np.ndarray, batch: np.ndarray, overall: np.ndarray) -> float:
    histogram = np.bincount(values[batch], minlength=len(overall)) / len(batch)
    return 0.5 * float(np.abs(histogram - overall).sum())


def _batches(arm: str, clusters: np.ndarray, batch: int) -> list[np.ndarray]:
    if arm == "random":
        order = np.random.default_rng(0).permutation(len(clusters))
        return [order[i : i + batch] for i in range(0, len(order) - batch + 1, batch)]
    sampler = ClusterBatchSampler(clusters, batch, seed=0, pacing=arm.split()[-1], drop_last=True)
    return [np.asarray(b) for b in sampler]


def run(vectors: Vectors) -> dict[str, Any]:
    x = vectors.train[vectors.balanced]
    labels = vectors.train_labels[vectors.balanced]
    label_share = np.bincount(labels, minlength=CLASSES) / len(labels)
    rows: list[dict[str, Any]] = []
    for k in CLUSTERS:
        clusters = KMeans(k, n_iter=20, seed=0).fit(x).labels_
        cluster_share = np.bincount(clusters, minlength=k) / len(clusters)
        for batch in BATCH_SIZES:
            for arm in ("random", "smart balanced", "smart proportional"):
                batches = _batches(arm, clusters, batch)
                rows.append(
                    {
                        "clusters": k,
                        "batch_size": batch,
                        "arm": arm,
                        "cluster_tv": float(np.mean([_tv(clusters, b, cluster_share) for b in batches])),
                        "label_tv": float(np.mean([_tv(labels, b, label_share) for b in batches])),
                        "label_tv_std": float(np.std([_tv(labels, b, label_share) for b in batches])),
                        "distinct_clusters": float(np.mean([len(np.unique(clusters[b])) for b in batches])),
                        "cluster_size_cv": float(cluster_share.std() / cluster_share.mean()),
                    }
                )
    print("  batch composition done", flush=True)
    result = {"hypothesis": HYPOTHESIS, "rows": rows}
    save_json(NAME, result)
    _plot(result)
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| K | B | arm | cluster TV to data | label TV to data (± std over batches) | distinct clusters per batch |",
        "|---:|---:|---|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['clusters']} | {r['batch_size']} | {r['arm']} | {r['cluster_tv']:.3f} | "
            f"{r['label_tv']:.3f} ± {r['label_tv_std']:.3f} | {r['distinct_clusters']:.1f} |"
        )
    return "\n".join(lines)


def reading(result: dict[str, Any]) -> str:
    """For each pacing, in how many (K, B) settings the label TV is below random's, and the mean ratio."""
    parts = []
    for arm in ("smart balanced", "smart proportional"):
        pairs = [
            (r["label_tv"], q["label_tv"])
            for r in result["rows"]
            for q in result["rows"]
            if r["arm"] == arm
            and q["arm"] == "random"
            and (r["clusters"], r["batch_size"]) == (q["clusters"], q["batch_size"])
        ]
        below = sum(smart < rand for smart, rand in pairs)
        ratio = float(np.mean([smart / rand for smart, rand in pairs]))
        parts.append(f"{arm}: label TV below random's in {below} of {len(pairs)} settings, mean ratio {ratio:.2f}")
    return "; ".join(parts) + "."


def _plot(result: dict[str, Any]) -> None:
    fig, axes = panels(len(CLUSTERS))
    for ax, k in zip(axes, CLUSTERS):
        for i, arm in enumerate(("random", "smart balanced", "smart proportional")):
            rows = [r for r in result["rows"] if r["clusters"] == k and r["arm"] == arm]
            ax.plot([r["batch_size"] for r in rows], [r["label_tv"] for r in rows], "o-", color=f"C{i}", label=arm)
        ax.set_xscale("log")
        ax.set_xlabel("batch size B")
        ax.set_title(f"K = {k}")
    axes[0].set_ylabel("label TV to the data set")
    axes[-1].legend(fontsize=8)
    save_figure(fig, NAME)
