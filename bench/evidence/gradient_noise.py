"""Study 2: do cluster-mixed batches give gradients closer to the full-data gradient than random batches?

A linear softmax probe on the balanced training set (10,000 vectors) is trained with random batches; at three
checkpoints (init, 50 and 500 SGD steps) we draw 256 consecutive batches from each sampler and measure
E ||g_batch - g_full||^2, for batch sizes 16, 64, 256 and k-means clusterings with K = 8, 64, 512. Isolates the
sampler from initialisation noise: the weights are the same for every arm at a checkpoint.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from common import CLASSES, Vectors, make_head, panels, save_figure, save_json

from curata import ClusterBatchSampler, KMeans

NAME = "gradient_noise"
HYPOTHESIS = (
    "Batches that take their samples from distinct clusters act as stratified samples, so their gradient is "
    "closer to the full-data gradient than a random batch's: mean ||g_batch - g_full||^2 smaller for "
    "ClusterBatchSampler than for random batches, more so as K grows towards B. The sampler's default "
    "'balanced' pacing over-draws small clusters early in an epoch, which adds a bias; 'proportional' pacing "
    "should not. Null: ratio smart / random = 1."
)
BATCH_SIZES = (16, 64, 256)
CLUSTERS = (8, 64, 512)
CHECKPOINTS = (0, 50, 500)
BATCHES = 256


def _random_batches(n: int, batch: int, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    while len(out) < count:
        order = rng.permutation(n)
        out += [order[i : i + batch] for i in range(0, n - batch + 1, batch)]
    return out[:count]


def _smart_batches(clusters: np.ndarray, batch: int, count: int, seed: int, pacing: str) -> list[np.ndarray]:
    sampler = ClusterBatchSampler(clusters, batch, seed=seed, pacing=pacing, drop_last=True)
    out: list[np.ndarray] = []
    epoch = 0
    while len(out) < count:
        sampler.set_epoch(epoch)
        out += [np.asarray(b) for b in sampler]
        epoch += 1
    return out[:count]


def _noise(residual: torch.Tensor, x: torch.Tensor, full: torch.Tensor, batches: list[np.ndarray]) -> list[float]:
    """||g_batch - g_full||^2 of every batch."""
    out = []
    for b in batches:
        ids = torch.from_numpy(b)
        g = residual[ids].T @ x[ids] / len(b)
        out.append(float(((g - full) ** 2).sum()))
    return out


def _mean_se(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1) / np.sqrt(len(values)))


def run(vectors: Vectors) -> dict[str, Any]:
    x_np = vectors.train[vectors.balanced]
    y = torch.from_numpy(vectors.train_labels[vectors.balanced])
    x = torch.cat([torch.from_numpy(x_np), torch.ones(len(x_np), 1)], dim=1)  # bias as a last feature
    start = time.perf_counter()
    clusterings = {k: KMeans(k, n_iter=20, seed=0).fit(x_np).labels_ for k in CLUSTERS}
    head = make_head(x_np.shape[1], None, seed=0)[0]
    optimiser = torch.optim.SGD(head.parameters(), lr=0.05)
    train_batches = _random_batches(len(x_np), 64, max(CHECKPOINTS), seed=1)
    rows: list[dict[str, Any]] = []
    step = 0
    for checkpoint in CHECKPOINTS:
        while step < checkpoint:
            ids = torch.from_numpy(train_batches[step])
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(head(x[ids, :-1]), y[ids]).backward()
            optimiser.step()
            step += 1
        with torch.no_grad():
            probabilities = torch.softmax(head(x[:, :-1]), dim=1)
            residual = probabilities - torch.nn.functional.one_hot(y, CLASSES).float()
            full = residual.T @ x / len(x)
        for batch in BATCH_SIZES:
            random_noise = _mean_se(_noise(residual, x, full, _random_batches(len(x), batch, BATCHES, seed=2)))
            for k in CLUSTERS:
                row = {
                    "checkpoint": checkpoint,
                    "batch_size": batch,
                    "clusters": k,
                    "random": random_noise[0],
                    "random_se": random_noise[1],
                    "full_grad_sq": float((full**2).sum()),
                }
                for pacing in ("balanced", "proportional"):
                    batches = _smart_batches(clusterings[k], batch, BATCHES, seed=2, pacing=pacing)
                    row[f"smart_{pacing}"], row[f"smart_{pacing}_se"] = _mean_se(_noise(residual, x, full, batches))
                rows.append(row)
        print(f"  gradient noise: checkpoint {checkpoint} done ({time.perf_counter() - start:.0f} s)", flush=True)
    result = {"hypothesis": HYPOTHESIS, "batches_per_estimate": BATCHES, "rows": rows}
    save_json(NAME, result)
    _plot(result)
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Mean over {result['batches_per_estimate']} batches ± its standard error; ratio = smart / random ± its "
        "propagated standard error (a ratio within about 2 SE of 1 is no difference).",
        "",
        "| SGD steps | B | K | random | smart, balanced | ratio | smart, proportional | ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        cells = [f"{r['random']:.4g} ± {r['random_se']:.2g}"]
        for pacing in ("balanced", "proportional"):
            mean, se = r[f"smart_{pacing}"], r[f"smart_{pacing}_se"]
            ratio = mean / r["random"]
            ratio_se = ratio * float(np.hypot(se / mean, r["random_se"] / r["random"]))
            cells += [f"{mean:.4g} ± {se:.2g}", f"{ratio:.3f} ± {ratio_se:.3f}"]
        lines.append(f"| {r['checkpoint']} | {r['batch_size']} | {r['clusters']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reading(result: dict[str, Any]) -> str:
    """How many (checkpoint, B, K) settings show a ratio more than 2 standard errors away from 1, per pacing."""
    parts = []
    for pacing in ("balanced", "proportional"):
        lower = higher = 0
        for r in result["rows"]:
            mean, se = r[f"smart_{pacing}"], r[f"smart_{pacing}_se"]
            gap = mean - r["random"]
            if abs(gap) > 2 * float(np.hypot(se, r["random_se"])):
                lower, higher = lower + (gap < 0), higher + (gap > 0)
        ratios = [r[f"smart_{pacing}"] / r["random"] for r in result["rows"]]
        parts.append(
            f"'{pacing}' pacing: lower noise than random in {lower} of {len(ratios)} settings, higher in "
            f"{higher}, no clear difference in the rest (ratios {min(ratios):.2f} to {max(ratios):.2f})"
        )
    return "; ".join(parts) + "."


def _plot(result: dict[str, Any]) -> None:
    fig, axes = panels(len(CHECKPOINTS))
    for ax, checkpoint in zip(axes, CHECKPOINTS):
        for i, batch in enumerate(BATCH_SIZES):
            rows = [r for r in result["rows"] if r["checkpoint"] == checkpoint and r["batch_size"] == batch]
            ks = [r["clusters"] for r in rows]
            ax.plot(
                ks, [r["smart_balanced"] / r["random"] for r in rows], "o-", color=f"C{i}", label=f"B={batch}, balanced"
            )
            ax.plot(
                ks,
                [r["smart_proportional"] / r["random"] for r in rows],
                "s--",
                color=f"C{i}",
                label=f"B={batch}, proportional",
            )
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("K (clusters)")
        ax.set_title(f"after {checkpoint} SGD steps")
    axes[0].set_ylabel("noise ratio smart / random")
    axes[-1].legend(fontsize=7)
    fig.suptitle("Mini-batch gradient noise E||g_batch - g_full||^2, smart / random")
    save_figure(fig, NAME)
