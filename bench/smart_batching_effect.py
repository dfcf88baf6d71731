"""Do smart batches change training? Random vs ClusterBatchSampler batches on Fashion-MNIST EfficientNet vectors.

Train an MLP head (1280 -> 256 -> 10) on the demo's vectors of 10,000 training images, test on 2,000 test
images; k-means K = 64 on the training vectors, B = 64, Adam lr 1e-3, 3 epochs, 5 seeds per arm, the same
initialisation per seed in every arm. Arms: random batches; ClusterBatchSampler with the seed's round-robin
("balanced") pacing; and with "proportional" (stratified) pacing. Prints the mean total-variation distance
between each batch's label histogram and the data's, the standard deviation of the per-batch loss in epoch 1,
and test accuracy per epoch (mean +- std over seeds). Whatever the outcome, it is reported as measured.

    python bench/smart_batching_effect.py [--train 10000 --test 2000 --epochs 3 --seeds 5 --strategy exclude]
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Subset

from curata import ClusterBatchSampler, KMeans, TorchEmbedder, Vectorizer, describe
from curata.cli.demo import FashionMNIST
from curata.models import ImagePreprocess, efficientnet_lite0


def vectors(split: str, count: int, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    model = nn.Sequential(ImagePreprocess(64), efficientnet_lite0())
    table = describe(
        Subset(FashionMNIST(split), range(count)),
        TorchEmbedder(model, ["1._avg_pooling"]),
        cache / f"{split}-{count}",
        vectorizer=Vectorizer("mean"),
        label_key="label",
    )
    order = np.argsort(table.column("idx"))
    return table.vectors()[order], table.column("label")[order]


def batches_random(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def train(X, y, Xt, yt, batch_fn, seed: int, epochs: int) -> tuple[list[float], list[float], list[float]]:
    torch.manual_seed(seed)  # the same initial head in both arms for this seed
    model = nn.Sequential(nn.Linear(X.shape[1], 256), nn.ReLU(), nn.Linear(256, 10))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    X, y, Xt = torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(Xt)
    overall = np.bincount(y.numpy(), minlength=10) / len(y)
    accuracy, losses, tvs = [], [], []
    for epoch in range(epochs):
        for batch in batch_fn(epoch):
            batch = torch.as_tensor(batch)
            loss = nn.functional.cross_entropy(model(X[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if epoch == 0:
                losses.append(loss.item())
                histogram = np.bincount(y[batch].numpy(), minlength=10) / len(batch)
                tvs.append(0.5 * np.abs(histogram - overall).sum())
        with torch.no_grad():
            accuracy.append(float((model(Xt).argmax(1).numpy() == yt).mean()))
    return accuracy, losses, tvs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=10_000)
    parser.add_argument("--test", type=int, default=2_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--clusters", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--strategy", default="exclude", choices=["exclude", "restart", "stop"])
    parser.add_argument("--cache", type=Path, default=Path("runs/bench-vectors"))
    args = parser.parse_args()
    X, y = vectors("train", args.train, args.cache)
    Xt, yt = vectors("test", args.test, args.cache)
    start = time.perf_counter()
    clusters = KMeans(args.clusters, seed=0).fit(X).labels_
    print(
        f"# bench/smart_batching_effect.py, {date.today()}: {args.train} train / {args.test} test vectors, "
        f"K = {args.clusters}, B = {args.batch_size}, strategy {args.strategy}, {args.seeds} seeds, "
        f"k-means {time.perf_counter() - start:.1f} s"
    )
    arms = {}
    for arm in ("random", f"smart ({args.strategy}, balanced)", "smart (exclude, proportional)"):
        runs = []
        for seed in range(args.seeds):
            if arm == "random":

                def batch_fn(epoch, seed=seed):
                    return batches_random(len(X), args.batch_size, seed, epoch)
            else:
                pacing = "proportional" if "proportional" in arm else "balanced"
                strategy = "exclude" if pacing == "proportional" else args.strategy
                sampler = ClusterBatchSampler(clusters, args.batch_size, seed=seed, strategy=strategy, pacing=pacing)

                def batch_fn(epoch, sampler=sampler):
                    sampler.set_epoch(epoch)
                    return list(sampler)

            runs.append(train(X, y, Xt, yt, batch_fn, seed, args.epochs))
        arms[arm] = runs
    print()
    header = " | ".join(f"test acc. epoch {e + 1}" for e in range(args.epochs))
    print(f"| batches | mean label TV (epoch 1) | std of batch loss (epoch 1) | {header} |")
    print("|---|---:|---:|" + "---:|" * args.epochs)
    for arm, runs in arms.items():
        acc = np.array([r[0] for r in runs])
        loss_std = np.array([np.std(r[1]) for r in runs])
        tv = np.array([np.mean(r[2]) for r in runs])
        cells = " | ".join(f"{acc[:, e].mean():.4f} +- {acc[:, e].std():.4f}" for e in range(args.epochs))
        print(f"| {arm} | {tv.mean():.3f} | {loss_std.mean():.3f} +- {loss_std.std():.3f} | {cells} |")
    print()
    for arm in list(arms)[1:]:
        diff = np.array([r[0][-1] for r in arms[arm]]) - np.array([r[0][-1] for r in arms["random"]])
        print(
            f"final accuracy, {arm} - random, paired by seed: {diff.mean():+.4f} +- {diff.std():.4f} "
            f"(per seed: {', '.join(f'{d:+.4f}' for d in diff)})"
        )


if __name__ == "__main__":
    main()
