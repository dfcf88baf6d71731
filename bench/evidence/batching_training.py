"""Study 3: does training on cluster-mixed batches reach a target accuracy sooner, or end higher, than random?

A one-hidden-layer MLP (1280 -> 256 -> 10) on the balanced training set (10,000 vectors), SGD with momentum 0.9,
batch 64, 3 epochs (468 steps), test accuracy every 26 steps. Arms: random batches, ClusterBatchSampler over
K = 64 k-means clusters with the default "balanced" pacing, and with "proportional" pacing. 16 seeds per arm; a
seed fixes the MLP's init and the sampler's seed, the same init in every arm (paired). Learning rates from a
stable one upwards: the claim under test is stability.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from common import Vectors, make_head, mean_std, paired, panels, save_figure, save_json

from curata import ClusterBatchSampler, KMeans

NAME = "batching_training"
HYPOTHESIS = (
    "With cluster-mixed batches the MLP reaches the target test accuracy in fewer steps and ends at a higher "
    "accuracy than with random batches, and the gap grows with the learning rate (smart batches are claimed "
    "to stabilise training). The target is fixed by a rule before looking at the smart arms: 97 % of the random "
    "arm's mean final accuracy at the smallest learning rate. Null: no paired difference."
)
SEEDS = tuple(range(16))
LEARNING_RATES = (0.01, 0.05, 0.2)
BATCH, EPOCHS, EVERY, CLUSTERS, HIDDEN = 64, 3, 26, 64, 256


def _epoch_batches(arm: str, clusters: np.ndarray, n: int, seed: int, epoch: int) -> list[np.ndarray]:
    if arm == "random":
        order = np.random.default_rng([seed, epoch]).permutation(n)
        return [order[i : i + BATCH] for i in range(0, n - BATCH + 1, BATCH)]
    sampler = ClusterBatchSampler(clusters, BATCH, seed=seed, pacing=arm.split()[-1], drop_last=True)
    sampler.set_epoch(epoch)
    return [np.asarray(b) for b in sampler]


def _train(arm: str, clusters: np.ndarray, vectors: Vectors, seed: int, lr: float) -> list[float]:
    x = torch.from_numpy(vectors.train[vectors.balanced])
    y = torch.from_numpy(vectors.train_labels[vectors.balanced])
    x_test, y_test = torch.from_numpy(vectors.test), torch.from_numpy(vectors.test_labels)
    head = make_head(x.shape[1], HIDDEN, seed)
    optimiser = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9)
    curve: list[float] = []
    step = 0
    for epoch in range(EPOCHS):
        for ids in _epoch_batches(arm, clusters, len(x), seed, epoch):
            index = torch.from_numpy(ids)
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(head(x[index]), y[index]).backward()
            optimiser.step()
            step += 1
            if step % EVERY == 0:
                with torch.no_grad():
                    curve.append(float((head(x_test).argmax(dim=1) == y_test).float().mean()))
    return curve


def run(vectors: Vectors) -> dict[str, Any]:
    torch.set_num_threads(1)  # small matrices: one thread is faster and the runs are exactly repeatable
    clusters = KMeans(CLUSTERS, n_iter=20, seed=0).fit(vectors.train[vectors.balanced]).labels_
    curves: dict[str, dict[str, list[list[float]]]] = {}
    start = time.perf_counter()
    for lr in LEARNING_RATES:
        curves[str(lr)] = {}
        for arm in ("random", "smart balanced", "smart proportional"):
            curves[str(lr)][arm] = [_train(arm, clusters, vectors, seed, lr) for seed in SEEDS]
        print(f"  training: lr {lr} done ({time.perf_counter() - start:.0f} s)", flush=True)
    base = np.mean([c[-1] for c in curves[str(LEARNING_RATES[0])]["random"]])
    result = {
        "hypothesis": HYPOTHESIS,
        "learning_rates": LEARNING_RATES,
        "seeds": SEEDS,
        "eval_every": EVERY,
        "target_accuracy": float(0.97 * base),
        "curves": curves,
    }
    save_json(NAME, result)
    _plot(result)
    return result


def _steps_to(curve: list[float], target: float, every: int) -> float:
    reached = [i for i, a in enumerate(curve) if a >= target]
    return float((reached[0] + 1) * every) if reached else float("nan")


def markdown(result: dict[str, Any]) -> str:
    target, every = result["target_accuracy"], result["eval_every"]
    lines = [
        f"Target accuracy (rule above): **{target:.4f}**. Steps are counted at evaluations every {every} steps; a "
        "run that never reaches the target counts as not reached.",
        "",
        "| lr | arm | final accuracy | best accuracy | reached target | steps to target (runs that reached) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    tests = [
        "",
        "Paired across the 16 seeds (difference = smart − random; p-values two-sided):",
        "",
        "| lr | arm | final accuracy diff ± std | paired t p | Wilcoxon p |",
        "|---:|---|---:|---:|---:|",
    ]
    for lr, arms in result["curves"].items():
        for arm, runs in arms.items():
            steps = [_steps_to(c, target, every) for c in runs]
            reached = [s for s in steps if not np.isnan(s)]
            lines.append(
                f"| {lr} | {arm} | {mean_std([c[-1] for c in runs])} | {mean_std([max(c) for c in runs])} | "
                f"{len(reached)}/{len(runs)} | {mean_std(reached) if len(reached) > 1 else '—'} |"
            )
            if arm != "random":
                test = paired([c[-1] for c in arms["random"]], [c[-1] for c in runs])
                tests.append(
                    f"| {lr} | {arm} | {test['mean_diff']:+.4f} ± {test['std_diff']:.4f} | "
                    f"{test['t_p']:.3g} | {test['wilcoxon_p']:.3g} |"
                )
    return "\n".join(lines + tests)


def reading(result: dict[str, Any]) -> str:
    """Per learning rate and smart arm: the sign and significance (Wilcoxon, 5 %) of the final-accuracy gap."""
    out = []
    for lr, arms in result["curves"].items():
        for arm, runs in arms.items():
            if arm == "random":
                continue
            test = paired([c[-1] for c in arms["random"]], [c[-1] for c in runs])
            significant = "significant" if test["wilcoxon_p"] < 0.05 else "not significant"
            out.append(f"lr {lr}, {arm}: {test['mean_diff']:+.4f} ({significant}, p = {test['wilcoxon_p']:.3g})")
    return "Final accuracy, smart minus random: " + "; ".join(out) + "."


def _plot(result: dict[str, Any]) -> None:
    rates = list(result["curves"])
    fig, axes = panels(len(rates))
    for ax, lr in zip(axes, rates):
        for i, (arm, runs) in enumerate(result["curves"][lr].items()):
            array = np.array(runs)
            steps = (np.arange(array.shape[1]) + 1) * result["eval_every"]
            ax.plot(steps, array.mean(axis=0), color=f"C{i}", label=arm)
            ax.fill_between(steps, array.min(axis=0), array.max(axis=0), color=f"C{i}", alpha=0.15)
        ax.axhline(result["target_accuracy"], color="grey", lw=0.8, ls=":")
        ax.set_title(f"lr = {lr}")
        ax.set_xlabel("SGD step")
    axes[0].set_ylabel("test accuracy (mean, min-max of 16 seeds)")
    axes[-1].legend(fontsize=8)
    save_figure(fig, NAME)
