"""ClusterBatchSampler: mini-batches drawn across clusters for DataLoader(batch_sampler=...); DDP-aware, resumable."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from curata._internal.checks import check_int, is_int
from curata._internal.distributed import rank_and_world
from curata.batching.frameworks import outer_shards, record_init_arguments, warn_if_not_resumable
from curata.clustering.clusterize import cluster, per_sample_majority
from curata.clustering.kmeans import KMeans
from curata.embedding.job import describe
from curata.embedding.vectorize import Vectorizer
from curata.store.table import VectorTable

__all__ = ["ClusterBatchSampler"]

_STRATEGIES = ("exclude", "restart", "stop")
_PACINGS = ("balanced", "proportional")
_STATE_KEYS = ("epoch", "seed", "batches_yielded", "world_size", "fingerprint")
_STATE_MINIMUMS = {"epoch": 0, "seed": None, "batches_yielded": 0, "world_size": 1}
_Plan = tuple[np.ndarray, np.ndarray | None, np.ndarray]


def _dense_labels(clusters: np.ndarray) -> tuple[np.ndarray, int]:
    """Cluster ids relabelled 0..K-1 in O(N + max id) when the ids are small, else via np.unique."""
    top = int(clusters.max())
    if top < 4 * len(clusters) + 1024:
        present = np.bincount(clusters, minlength=top + 1) > 0
        new_ids = np.cumsum(present) - 1
        return new_ids[clusters], int(present.sum())
    unique, inverse = np.unique(clusters, return_inverse=True)
    return inverse.astype(np.int64), len(unique)


class _EpochForwarder:
    """The ``.sampler`` of the batch sampler: Lightning and accelerate call ``set_epoch`` only there."""

    def __init__(self, owner: ClusterBatchSampler) -> None:
        self._owner = owner

    def set_epoch(self, epoch: int) -> None:
        self._owner.set_epoch(epoch)

    def __len__(self) -> int:
        return self._owner.num_samples

    def __iter__(self) -> Iterator[int]:
        for batch in self._owner:
            yield from batch


class ClusterBatchSampler(Sampler[list[int]]):
    """Batches that mix clusters: each batch takes its samples from as many distinct clusters as it can.

    The active clusters are visited round-robin in a random order (fixed for the epoch): with K active clusters
    and K >= B (the batch size), a batch takes B samples from B distinct clusters and every active cluster
    appears at least once in any ceil(K / B) consecutive batches; with K < B each cluster gets floor(B / K)
    slots plus rotating extra slots. Samples inside a batch are shuffled when ``shuffle``.

    Exhausted clusters, by ``strategy``:
        "exclude": the cluster leaves the rotation; every sample exactly once per epoch.
        "restart": the cluster is reshuffled and drawn again until every sample has been drawn at least once
            (the epoch lasts as long as the largest cluster: K * max size draws).
        "stop": the epoch ends when the first cluster is exhausted (K * min size draws).

    ``pacing="proportional"`` (with "exclude") spreads every cluster evenly over the epoch instead: each batch then
    holds the clusters in proportion to their sizes (stratified batches, all clusters running out together at the
    end), rather than one sample per cluster with the large clusters left alone at the end of the epoch.

    ``force_same_size=True``: every batch has exactly B samples; a short last batch is completed with the first
    samples of the epoch's order (so those few appear twice). ``drop_last=True`` drops it instead.

    DDP: rank and world size are read when an epoch starts (``iter``, ``len``), not when the sampler is built: from
    the arguments, else the ``sampler`` a framework passed in, else the initialised process group, else ``RANK`` and
    ``WORLD_SIZE``. The epoch's batches are dealt to the ranks in turn; every rank yields the same number of
    batches (with ``drop_last=False`` the last ranks repeat early batches to even the count, as DistributedSampler
    pads), and the ranks' samples are otherwise disjoint. Under a wrapper that deals batches to processes itself
    (accelerate's ``prepare``), the sampler yields the whole epoch and lets the wrapper deal it (accelerate pads
    with the epoch's first samples). Lightning's re-creation of the sampler (``use_distributed_sampler=True``)
    keeps every setting and takes rank and world size from Lightning's ``DistributedSampler``.

    Output is a pure function of (seed, epoch, rank, world size, clusters, settings): call ``set_epoch`` every
    epoch. ``state_dict``/``load_state_dict`` resume mid-epoch (torchdata's ``StatefulDataLoader`` uses them).

    Args:
        clusters: one cluster id (int >= 0; -1: a sample with no cluster, never drawn, as ``cluster()`` gives
            samples with no vector) per sample; or (sample, cluster) pairs, shape (P, 2), to list a
            sample in every cluster it falls in (``cluster(..., per_sample="all")``; "exactly once" then holds
            per pair); or a column name of ``table`` (its vector-level ids reduced to one per sample by majority).
        batch_size: B.
        strategy: "exclude", "restart" or "stop".
        pacing: "balanced" (round-robin, one sample per cluster per round) or "proportional" (stratified).
        shuffle: random cluster order, random order inside clusters and batches; else everything in id order.
        seed: seed of every draw.
        drop_last, force_same_size: how the last, short batch is handled.
        num_replicas, rank: DDP world size and rank; None reads them when each epoch starts.
        table: the VectorTable that ``clusters`` names a column of.
        sampler: set by frameworks that re-create batch samplers (Lightning): a ``DistributedSampler`` whose
            ``num_replicas`` and ``rank`` are used; its order is not (the clusters decide the order).

    Example:
        >>> ids = np.array([0, 0, 0, 1, 1, 2])
        >>> sampler = ClusterBatchSampler(ids, batch_size=3, seed=0)
        >>> len(sampler), [sorted(ids[batch].tolist()) for batch in sampler]
        (2, [[0, 1, 2], [0, 0, 1]])
    """

    def __init__(
        self,
        clusters: Any,
        batch_size: int,
        *,
        strategy: str = "exclude",
        pacing: str = "balanced",
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        force_same_size: bool = False,
        num_replicas: int | None = None,
        rank: int | None = None,
        table: VectorTable | None = None,
        sampler: Any = None,
    ) -> None:
        arguments = {name: value for name, value in locals().items() if name not in ("self", "__class__")}
        record_init_arguments(self, arguments)
        check_int(batch_size, "batch_size", minimum=1)
        if strategy not in _STRATEGIES:
            raise ValueError(f"strategy must be one of {_STRATEGIES}, got {strategy!r}")
        if pacing not in _PACINGS:
            raise ValueError(f"pacing must be one of {_PACINGS}, got {pacing!r}")
        if pacing == "proportional" and strategy != "exclude":
            raise ValueError(
                "pacing='proportional' exhausts every cluster at the end of the epoch: use it with "
                f"strategy='exclude', not {strategy!r}"
            )
        check_int(seed, "seed")
        ids, self._samples = self._cluster_ids(clusters, table)
        self.batch_size = int(batch_size)
        self.strategy = strategy
        self.pacing = pacing
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.force_same_size = bool(force_same_size)
        check_int(rank, "rank", minimum=0, allow_none=True)
        check_int(num_replicas, "num_replicas", minimum=1, allow_none=True)
        if rank is not None and num_replicas is not None:
            rank_and_world(rank, num_replicas)  # a bad pair is refused now, not at the first epoch
        self._given_rank, self._given_world = rank, num_replicas
        self._framework_placement = self._placement_of(sampler)
        self.epoch = 0
        self.sampler = _EpochForwarder(self)
        labels, self.n_clusters = _dense_labels(ids)
        self._sizes = np.bincount(labels, minlength=self.n_clusters)
        # Samples grouped by cluster, the clusters laid out by size: all clusters of one size then form a
        # (clusters, size) matrix that one vectorised call shuffles row by row every epoch.
        self._layout = np.argsort(self._sizes, kind="stable")
        laid_sizes = self._sizes[self._layout]
        offsets = np.r_[0, np.cumsum(laid_sizes)]
        self._starts = np.empty(self.n_clusters, dtype=np.int64)
        self._starts[self._layout] = offsets[:-1]
        slot = np.empty(self.n_clusters, dtype=np.uint16 if self.n_clusters <= 1 << 16 else np.int64)
        slot[self._layout] = np.arange(self.n_clusters)
        # 32-bit indices halve the memory traffic of the epoch's gathers when they fit
        index_dtype = np.int32 if len(labels) < 2**31 - 1 else np.int64
        self._by_cluster = np.argsort(slot[labels], kind="stable").astype(index_dtype)  # radix sort for 16 bits
        # (size, first, end) of every run of same-size clusters in the layout
        run_edges = np.r_[0, np.flatnonzero(np.diff(laid_sizes)) + 1, self.n_clusters]
        self._size_runs = [
            (int(laid_sizes[a]), int(offsets[a]), int(offsets[b])) for a, b in zip(run_edges[:-1], run_edges[1:])
        ]
        digest = hashlib.blake2b(np.ascontiguousarray(ids).tobytes(), digest_size=16)
        if self._samples is not None:  # which sample each entry draws decides the batches too
            digest.update(np.ascontiguousarray(self._samples).tobytes())
        settings = (self.batch_size, strategy, pacing, self.shuffle, self.drop_last, self.force_same_size)
        digest.update(repr(settings).encode())
        self._fingerprint = digest.hexdigest()
        self._resume_at = 0
        self._yielded = 0
        self._cache: tuple[tuple[Any, ...], _Plan] | None = None

    @classmethod
    def from_dataset(
        cls,
        dataset: Any,
        embedder: Any,
        *,
        n_clusters: int,
        batch_size: int,
        path: str | os.PathLike[str],
        vectorizer: Vectorizer | None = None,
        clusterer: Any = None,
        label_key: Any = None,
        seed: int = 0,
        **sampler_kwargs: Any,
    ) -> ClusterBatchSampler:
        """The one-call path: describe ``dataset`` into ``path``, cluster the vectors, build the sampler.

        Both stages reuse what is stored under ``path``: describe resumes or returns at once, and the clustering
        is redone only when its settings (clusterer, n_clusters, seed) differ from the stored ones.

        Example:
            >>> import tempfile, torch
            >>> data = np.random.default_rng(0).random((40, 3), dtype=np.float32)
            >>> s = ClusterBatchSampler.from_dataset(data, torch.nn.Identity(), n_clusters=4, batch_size=4,
            ...                                      path=tempfile.mkdtemp())
            >>> len(s), s.n_clusters
            (10, 4)
        """
        table = describe(
            dataset, embedder, Path(path) / "vectors", vectorizer=vectorizer, label_key=label_key, progress=False
        )
        clusterer = KMeans(n_clusters, seed=seed) if clusterer is None else clusterer
        settings = {"clusterer": repr(clusterer), "n_clusters": n_clusters, "seed": seed}
        if table.get_attr("cluster_settings") == settings and "cluster" in table.columns:
            per_sample = per_sample_majority(table.column("idx"), table.column("cluster"), len(dataset))
        else:
            per_sample = cluster(table, clusterer, n_clusters=n_clusters, seed=seed)
            table.set_attr("cluster_settings", settings)
        return cls(per_sample, batch_size, seed=seed, **sampler_kwargs)

    @staticmethod
    def _cluster_ids(clusters: Any, table: VectorTable | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Cluster id per entry, and the sample of each entry when entries are (sample, cluster) pairs."""
        if isinstance(clusters, Sampler):
            raise TypeError(
                f"clusters must be cluster ids, got a {type(clusters).__name__}: a framework re-created "
                "ClusterBatchSampler as if it were a plain BatchSampler. ClusterBatchSampler deals batches to ranks "
                "itself; pass the framework's sampler as sampler=..., or turn its injection off (Lightning: "
                "Trainer(use_distributed_sampler=False))"
            )
        if isinstance(clusters, str):
            if table is None:
                raise ValueError(f"clusters names a column ({clusters!r}); pass the VectorTable as table=")
            ids = per_sample_majority(table.column("idx"), table.column(clusters).astype(np.int64))
            return ClusterBatchSampler._cluster_ids(ids, None)
        ids = np.asarray(clusters.cpu() if hasattr(clusters, "cpu") else clusters)
        samples = None
        if ids.ndim == 2 and ids.shape[1] == 2:  # (sample, cluster) pairs: a sample listed in several clusters
            samples, ids = ids[:, 0].astype(np.int64), ids[:, 1]
        if ids.ndim != 1 or len(ids) == 0:
            raise ValueError(
                f"clusters must be a non-empty 1-D array of cluster ids (or (sample, cluster) pairs), "
                f"got shape {ids.shape}"
            )
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"clusters must hold integer ids, got dtype {ids.dtype}")
        if ids.min() < -1:
            raise ValueError(
                f"clusters must be >= 0, or -1 for a sample with no cluster (no vector), got {int(ids.min())} at "
                f"sample {int(np.argmin(ids))}"
            )
        if samples is not None and samples.min() < 0:
            raise ValueError("sample ids in (sample, cluster) pairs must be >= 0")
        if ids.min() == -1:  # samples with no cluster (unreadable, empty mask) are never drawn
            drawn = np.flatnonzero(ids >= 0)
            if len(drawn) == 0:
                raise ValueError("clusters holds no sample with a cluster (all are -1): nothing to draw")
            samples = drawn if samples is None else samples[drawn]
            ids = ids[drawn]
        return ids.astype(np.int64), samples

    @staticmethod
    def _placement_of(sampler: Any) -> tuple[int, int] | None:
        """(rank, world size) of a framework's distributed sampler; None when no sampler was passed."""
        if sampler is None:
            return None
        rank, world = getattr(sampler, "rank", None), getattr(sampler, "num_replicas", None)
        if not (isinstance(sampler, Sampler) and is_int(rank) and is_int(world)):
            raise TypeError(
                "sampler must be a framework's distributed sampler with int rank and num_replicas (as Lightning "
                f"passes), got {type(sampler).__name__}"
            )
        return rank_and_world(rank, world)

    @property
    def rank(self) -> int:
        """This process's rank, as read now (see the class docstring)."""
        return self._rank_world(sys._getframe(1))[0]

    @property
    def num_replicas(self) -> int:
        """The world size the epoch is dealt to, as read now."""
        return self._rank_world(sys._getframe(1))[1]

    def _rank_world(self, caller: Any) -> tuple[int, int]:
        """(rank, world size) for an epoch that ``caller`` (the frame calling iter/len) starts."""
        given_rank, given_world = self._given_rank, self._given_world
        shards = outer_shards(caller, self)
        if shards > 1:  # the wrapper deals the whole epoch's batches itself
            if given_world not in (None, shards):
                raise ValueError(
                    f"num_replicas={given_world} was given, but ClusterBatchSampler is dealt to {shards} processes "
                    "by a wrapper (accelerate's prepare): leave num_replicas and rank unset"
                )
            return 0, 1
        if self._framework_placement is not None:
            found_rank, found_world = self._framework_placement
            if (given_rank, given_world) not in ((None, None), (found_rank, found_world)):
                raise ValueError(
                    f"rank={given_rank}, num_replicas={given_world} were given, but the framework's sampler says "
                    f"rank {found_rank} of {found_world}: leave them unset"
                )
            return found_rank, found_world
        found_rank, found_world = rank_and_world()
        return rank_and_world(
            found_rank if given_rank is None else given_rank, found_world if given_world is None else given_world
        )

    # ------------------------------------------------------------------ sizes
    @property
    def num_samples(self) -> int:
        """Draws in one epoch over all ranks, before cutting into batches."""
        k = self.n_clusters
        if self.strategy == "exclude":
            return int(self._sizes.sum())
        return int(k * (self._sizes.max() if self.strategy == "restart" else self._sizes.min()))

    def _global_batches(self) -> int:
        draws, b = self.num_samples, self.batch_size
        return draws // b if self.drop_last else -(-draws // b)

    def _batches_per_rank(self, world: int) -> int:
        total = self._global_batches()
        return total // world if self.drop_last else -(-total // world)

    def __len__(self) -> int:
        return self._batches_per_rank(self._rank_world(sys._getframe(1))[1])

    # ------------------------------------------------------------------ epochs and state
    def set_epoch(self, epoch: int) -> None:
        """Use the draws of ``epoch`` from the next iteration on (and forget any mid-epoch resume point)."""
        check_int(epoch, "epoch", minimum=0)
        if int(epoch) != self.epoch:
            self._resume_at = 0
        self.epoch = int(epoch)

    def state_dict(self) -> dict[str, Any]:
        """Where the sampler is: epoch, seed, batches yielded this epoch, world size and a fingerprint."""
        return {
            "epoch": self.epoch,
            "seed": self.seed,
            "batches_yielded": self._yielded,
            "world_size": self._rank_world(None)[1],
            "fingerprint": self._fingerprint,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from ``state``: the next iteration yields exactly the batches not yet yielded in that epoch.

        Every key is checked (type, range, world size, fingerprint) before anything changes.
        """
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict from ClusterBatchSampler.state_dict(), got {type(state).__name__}")
        missing = [key for key in _STATE_KEYS if key not in state]
        unknown = sorted(map(str, set(state) - set(_STATE_KEYS)))
        if missing or unknown:
            raise ValueError(
                f"state is missing {missing} and has unknown keys {unknown}; expected a "
                "ClusterBatchSampler.state_dict()"
            )
        for key, minimum in _STATE_MINIMUMS.items():
            check_int(state[key], f"state[{key!r}]", minimum=minimum)
        world = self._rank_world(None)[1]
        if state["world_size"] != world:
            raise ValueError(
                f"state was saved with world size {state['world_size']}, this sampler has {world}: a resume needs the "
                "same number of ranks"
            )
        if not isinstance(state["fingerprint"], str) or state["fingerprint"] != self._fingerprint:
            raise ValueError("state was saved for other clusters or settings (fingerprint differs)")
        if state["batches_yielded"] > self._batches_per_rank(world):
            raise ValueError(
                f"state['batches_yielded'] must be at most the epoch's {self._batches_per_rank(world)} batches, got "
                f"{state['batches_yielded']}"
            )
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self._resume_at = self._yielded = int(state["batches_yielded"])

    # ------------------------------------------------------------------ drawing
    def _sequence(self, rng: np.random.Generator) -> np.ndarray:
        """The epoch's draws in round-robin order (before batching)."""
        k, sizes, starts = self.n_clusters, self._sizes, self._starts
        if self.shuffle:
            grouped = self._by_cluster.copy()
            for size, a, b in self._size_runs:  # a uniform shuffle inside every cluster
                if size > 1:
                    same_size = grouped[a:b].reshape(-1, size)
                    rng.permuted(same_size, axis=1, out=same_size)
            rotation = rng.permutation(k)
        else:
            grouped, rotation = self._by_cluster, np.arange(k)
        if self.pacing == "proportional":
            # the j-th draw of cluster c lands at (j + u_c) / size_c of the epoch: every cluster is spread evenly
            # over the epoch, so each window of B draws holds clusters in proportion to their sizes
            laid_sizes = sizes[self._layout]
            cluster_of = np.repeat(self._layout, laid_sizes)
            within = np.arange(len(grouped)) - np.repeat(starts[self._layout], laid_sizes)
            phase = rng.random(k) if self.shuffle else np.full(k, 0.5)
            return grouped[np.argsort((within + phase[cluster_of]) / sizes[cluster_of], kind="stable")]
        if self.strategy == "stop":
            rounds = np.arange(int(sizes.min()))
            return grouped[(starts[rotation][None, :] + rounds[:, None]).ravel()]
        if self.strategy == "restart":
            longest = int(sizes.max())
            columns = np.empty((longest, k), dtype=np.int64)
            for position, c in enumerate(rotation):
                members = grouped[starts[c] : starts[c] + sizes[c]]
                cycles = [members] + [
                    rng.permutation(members) if self.shuffle else members for _ in range(-(-longest // sizes[c]) - 1)
                ]
                columns[:, position] = np.concatenate(cycles)[:longest]
            return columns.ravel()
        # exclude: between two distinct cluster sizes the active set is fixed; emit those rounds as one block
        rotated_sizes = sizes[rotation]
        positions = np.empty(len(grouped), dtype=self._by_cluster.dtype)
        written, done = 0, 0
        for size in np.unique(rotated_sizes):
            active_starts = starts[rotation[rotated_sizes >= size]]
            rounds = np.arange(done, int(size))
            block = positions[written : written + len(rounds) * len(active_starts)]
            np.add(active_starts[None, :], rounds[:, None], out=block.reshape(len(rounds), len(active_starts)))
            written += len(block)
            done = int(size)
        return grouped[positions]

    def _epoch_plan(self, rank: int, world: int) -> _Plan:
        """(full batches as rows, the short last batch or None, this rank's batch numbers) of the current epoch."""
        # everything the plan is a function of: load_state_dict changes the seed and the epoch, and the settings
        # are plain attributes a user may assign between epochs
        key = (
            self.seed,
            self.epoch,
            rank,
            world,
            self.batch_size,
            self.strategy,
            self.pacing,
            self.shuffle,
            self.drop_last,
            self.force_same_size,
        )
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, self.epoch])
        sequence = self._sequence(rng)
        b, total = self.batch_size, self._global_batches()
        tail = len(sequence) % b
        if tail and not self.drop_last and self.force_same_size:
            sequence = np.r_[sequence, sequence[: b - tail]]
        full = (len(sequence) // b) * b
        rows = sequence[:full].reshape(-1, b)
        if self.shuffle:
            rows = rng.permuted(rows, axis=1)  # an independent shuffle of every batch, O(N)
        last = None
        if len(sequence) > full and not self.drop_last:
            last = sequence[full:]
            last = last[rng.permutation(len(last))] if self.shuffle else last
        assert len(rows) + (last is not None) == total
        mine = np.arange(rank, self._batches_per_rank(world) * world, world) % total
        plan = (rows, last, mine)
        self._cache = (key, plan)
        return plan

    def __iter__(self) -> Iterator[list[int]]:
        caller = sys._getframe(1)
        warn_if_not_resumable(caller)
        plan = self._epoch_plan(*self._rank_world(caller))  # rank and world size as this epoch starts
        start, self._resume_at = self._resume_at, 0
        return self._yield_batches(plan, start)

    def _yield_batches(self, plan: _Plan, start: int) -> Iterator[list[int]]:
        rows, last, mine = plan
        self._yielded = start
        for number in mine[start:]:
            self._yielded += 1
            batch = rows[number] if number < len(rows) else last
            yield (batch if self._samples is None else self._samples[batch]).tolist()  # type: ignore[index]
