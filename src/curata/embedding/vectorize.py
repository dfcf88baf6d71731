"""Vectorizer: turns a batch of features into vectors, one per sample (pooled) or one per token or pixel."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from curata._internal.checks import check_int

__all__ = ["Vectorizer", "Vectors"]

_POOLS = ("mean", "max")
PositionSpec = int | slice | list[int] | tuple[int, ...] | None


class Vectors(NamedTuple):
    """Vectors of a batch: ``vectors`` (R, C), ``sample`` (R,) the row's position in the batch, ``idx_vector`` (R,),
    and ``label`` (R,) when a label map gave each row its own label (else None)."""

    vectors: torch.Tensor
    sample: torch.Tensor
    idx_vector: torch.Tensor
    label: torch.Tensor | None = None


def _check_positions(spec: Any, name: str) -> PositionSpec:
    if spec is None or isinstance(spec, slice):
        return spec
    if isinstance(spec, bool) or not isinstance(spec, (int, list, tuple)):
        raise TypeError(
            f"{name} must be an int (first N positions, or last N when negative), a slice or a list "
            f"of positions, got {type(spec).__name__}"
        )
    if isinstance(spec, (list, tuple)) and not all(isinstance(p, int) and not isinstance(p, bool) for p in spec):
        raise TypeError(f"{name} must list int positions, got {spec!r}")
    return spec


def _position_mask(spec: PositionSpec, count: int) -> torch.Tensor:
    """Which of ``count`` positions a spec names."""
    chosen = torch.zeros(count, dtype=torch.bool)
    if isinstance(spec, int):
        if spec >= 0:
            chosen[:spec] = True
        else:
            chosen[spec:] = True
    elif isinstance(spec, slice):
        chosen[spec] = True
    else:
        positions = torch.tensor(list(spec), dtype=torch.long)
        if positions.numel() and (positions.max() >= count or positions.min() < -count):
            raise ValueError(f"position {positions.tolist()} out of range for {count} positions")
        chosen[positions] = True
    return chosen


def _as_positions(features: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """(B, C) -> (B, 1, C); (B, T, C) stays; (B, C, *S) -> (B, prod(S), C). Also returns the spatial shape."""
    if features.ndim == 2:
        return features.unsqueeze(1), (1,)
    if features.ndim == 3:
        return features, (features.shape[1],)
    if features.ndim >= 4:
        spatial = tuple(features.shape[2:])
        return features.flatten(2).transpose(1, 2), spatial
    raise ValueError(f"features must be (B, C), (B, T, C) or (B, C, H, W), got shape {tuple(features.shape)}")


def _resize_mask(mask: torch.Tensor, batch: int, spatial: tuple[int, ...]) -> torch.Tensor:
    mask = torch.as_tensor(mask)
    if mask.shape[0] != batch:
        raise ValueError(f"mask must have one entry per sample ({batch}), got shape {tuple(mask.shape)}")
    if mask.ndim == len(spatial) + 2 and mask.shape[1] == 1:
        mask = mask[:, 0]
    if mask.ndim != len(spatial) + 1:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not match features with spatial shape {spatial}")
    if tuple(mask.shape[1:]) != spatial:
        mask = F.interpolate(mask.unsqueeze(1).float(), size=spatial, mode="nearest")[:, 0]
    return (mask > 0).reshape(batch, -1)


def _sample_rng(seed: int, idx: int) -> np.random.Generator:
    return np.random.default_rng([seed, idx])


class Vectorizer:
    """Turns (B, C), (B, T, C) or (B, C, H, W) features into vectors.

    Args:
        pool: "mean" or "max" gives one vector per sample (over the kept positions); ``None`` gives one vector per
            kept token or pixel, with ``idx_vector`` its position (row-major over H, W).
        keep: positions to keep: an int N (the first N; negative: the last N), a slice, or a list of positions.
            ``keep=1`` keeps the first token (the CLS token of a ViT).
        remove: positions to drop, same forms (``remove=1`` drops the CLS token).
        max_vectors: keep at most K vectors per sample, drawn at random from a generator seeded by
            (seed, sample idx), so a sample gets the same vectors whatever batch it lands in.
        select: pick those K vectors with a ``curata.subsets.select`` method instead of at random ("kcenter" keeps the
            K most spread-out patches of a sample, "kernel_points" the K that best match its distribution, ...),
            seeded by (seed, sample idx) too.
        mask_key: the key of a per-pixel mask in the dataset items; only positions where the mask is non-zero are
            kept (the mask is resized, nearest, to the feature map).
        label_mask_key: the key of a segmentation map in the dataset items: integer labels per pixel ((H, W),
            brought to the feature map by majority per cell, ``curata.majority_labels``) or per token ((T,), one per
            position of the features, e.g. from ``curata.patch_labels``). Each row gets its position's label; with
            ``pool``, a sample gives one vector per label present (pooled over that label's positions), with
            ``idx_vector`` = the label. Rows replace the dataset's label (``describe`` refuses ``label_key`` too).
        ignore_label: the label of positions to drop (e.g. 255, the "void" of VOC masks); None keeps every label.
        seed: seed of the ``max_vectors`` draws.

    Example:
        >>> out = Vectorizer(remove=1)(torch.rand(2, 5, 8))  # ViT tokens without CLS
        >>> out.vectors.shape, out.idx_vector.tolist()[:4]
        (torch.Size([8, 8]), [1, 2, 3, 4])
    """

    def __init__(
        self,
        pool: str | None = None,
        *,
        keep: PositionSpec = None,
        remove: PositionSpec = None,
        max_vectors: int | None = None,
        mask_key: str | None = None,
        select: str | None = None,
        label_mask_key: str | None = None,
        ignore_label: int | None = None,
        seed: int = 0,
    ) -> None:
        if pool is not None and pool not in _POOLS:
            raise ValueError(f"pool must be None, 'mean' or 'max', got {pool!r}")
        check_int(max_vectors, "max_vectors", minimum=1, allow_none=True)
        if max_vectors is not None and pool is not None:
            raise ValueError("max_vectors applies only without pool (pooling already gives one vector per sample)")
        if not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        if select is not None:
            from curata.subsets.select import METHODS

            if select not in METHODS:
                raise ValueError(f"select must be None or one of {METHODS}, got {select!r}")
            if max_vectors is None:
                raise ValueError("select needs max_vectors: how many vectors of each sample to keep")
        self.pool = pool
        self.keep = _check_positions(keep, "keep")
        self.remove = _check_positions(remove, "remove")
        self.max_vectors = max_vectors
        check_int(ignore_label, "ignore_label", allow_none=True)
        if ignore_label is not None and label_mask_key is None:
            raise ValueError("ignore_label applies to a label map: pass label_mask_key too")
        self.mask_key = mask_key
        self.label_mask_key = label_mask_key
        self.ignore_label = ignore_label
        self.select = select
        self.seed = seed

    def fingerprint(self) -> dict[str, Any]:
        """The settings that decide the output, for the table's fingerprint."""

        def show(spec: PositionSpec) -> Any:
            return [spec.start, spec.stop, spec.step] if isinstance(spec, slice) else spec

        return {
            "pool": self.pool,
            "keep": show(self.keep),
            "remove": show(self.remove),
            "max_vectors": self.max_vectors,
            "mask_key": self.mask_key,
            "select": self.select,
            "seed": self.seed,
            "label_mask_key": self.label_mask_key,  # None, as in tables written before it existed
            "ignore_label": self.ignore_label,
        }

    def __call__(self, features: torch.Tensor, *, idx: Any = None, mask: Any = None, label_mask: Any = None) -> Vectors:
        """Vectorize a batch. ``idx`` holds the samples' ids (for ``max_vectors`` draws; default 0..B-1);
        ``mask`` and ``label_mask`` the batch's ``mask_key`` and ``label_mask_key`` entries."""
        if not isinstance(features, torch.Tensor):
            raise TypeError(f"features must be a torch.Tensor, got {type(features).__name__}")
        x, spatial = _as_positions(features)
        batch, count, _ = x.shape
        chosen = torch.ones(count, dtype=torch.bool)
        if self.keep is not None:
            chosen &= _position_mask(self.keep, count)
        if self.remove is not None:
            chosen &= ~_position_mask(self.remove, count)
        selected = chosen.to(x.device).expand(batch, count)
        if mask is not None:
            selected = selected & _resize_mask(mask, batch, spatial).to(x.device)
        elif self.mask_key is not None:
            raise ValueError(f"this Vectorizer needs the mask {self.mask_key!r}, but no mask was given")
        labels = None
        if self.label_mask_key is not None:
            if label_mask is None:
                raise ValueError(f"this Vectorizer needs the label map {self.label_mask_key!r}, but none was given")
            labels = self._position_labels(features, label_mask, batch, spatial).to(x.device)
            if self.ignore_label is not None:
                selected = selected & (labels != self.ignore_label)
        ids = torch.arange(batch) if idx is None else torch.as_tensor(idx).reshape(-1).cpu()
        if self.pool is not None:
            return self._pooled(x, selected) if labels is None else self._pooled_per_label(x, selected, labels)
        if self.max_vectors is not None:
            selected = self._draw(x, selected, ids)
        sample, position = selected.nonzero(as_tuple=True)
        return Vectors(x[sample, position], sample, position, None if labels is None else labels[sample, position])

    def _position_labels(
        self, features: torch.Tensor, label_mask: Any, batch: int, spatial: tuple[int, ...]
    ) -> torch.Tensor:
        """(B, positions) labels from per-pixel maps (majority per cell) or per-token labels."""
        from curata.embedding.segment_labels import majority_labels

        if features.ndim == 2:
            raise ValueError("label_mask_key needs token (B, T, C) or spatial (B, C, H, W) features, got (B, C)")
        maps = torch.as_tensor(label_mask)
        if maps.ndim == len(spatial) + 2 and maps.shape[1] == 1:
            maps = maps[:, 0]
        if maps.shape[0] != batch or maps.ndim != len(spatial) + 1:
            hint = " (curata.patch_labels turns pixel maps into one label per token)" if features.ndim == 3 else ""
            raise ValueError(
                f"label map of shape {tuple(maps.shape)} does not match {batch} samples of features with spatial "
                f"shape {spatial}{hint}"
            )
        if features.ndim == 3 and tuple(maps.shape[1:]) != spatial:
            raise ValueError(
                f"a per-token label map needs one label per position ({spatial[0]}), got {maps.shape[1]}: "
                "curata.patch_labels(mask, patch_size, prefix_tokens=...) makes one"
            )
        return majority_labels(maps, spatial, self.ignore_label).reshape(batch, -1)

    def _pooled_per_label(self, x: torch.Tensor, selected: torch.Tensor, labels: torch.Tensor) -> Vectors:
        sample, position = selected.nonzero(as_tuple=True)
        pairs, group = torch.unique(torch.stack([sample, labels[sample, position]], dim=1), dim=0, return_inverse=True)
        rows = x[sample, position]
        if self.pool == "mean":
            total = torch.zeros(len(pairs), x.shape[2], dtype=x.dtype, device=x.device).index_add_(0, group, rows)
            counts = torch.bincount(group, minlength=len(pairs)).to(x.dtype).unsqueeze(1)
            pooled = total / counts
        else:
            empty = torch.full((len(pairs), x.shape[2]), float("-inf"), dtype=x.dtype, device=x.device)
            index = group.unsqueeze(1).expand_as(rows)
            pooled = empty.scatter_reduce(0, index, rows, reduce="amax", include_self=True)
        return Vectors(pooled, pairs[:, 0], pairs[:, 1], pairs[:, 1])

    def _pooled(self, x: torch.Tensor, selected: torch.Tensor) -> Vectors:
        counts = selected.sum(dim=1)
        if bool(selected.all()):
            pooled = x.mean(dim=1) if self.pool == "mean" else x.amax(dim=1)
        elif self.pool == "mean":
            pooled = (x * selected.unsqueeze(-1)).sum(dim=1) / counts.clamp(min=1).unsqueeze(-1)
        else:
            pooled = x.masked_fill(~selected.unsqueeze(-1), float("-inf")).amax(dim=1)
        sample = torch.nonzero(counts > 0).reshape(-1)
        return Vectors(pooled[sample], sample, torch.zeros_like(sample))

    def _draw(self, x: torch.Tensor, selected: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        limit = self.max_vectors
        assert limit is not None
        counts = selected.sum(dim=1).tolist()
        drawn = selected.clone()
        for row, count in enumerate(counts):
            if count > limit:
                candidates = torch.nonzero(selected[row]).reshape(-1).cpu().numpy()
                rng = _sample_rng(self.seed, int(ids[row]))
                if self.select is None:
                    keep = rng.choice(candidates, size=limit, replace=False)
                else:
                    from curata.subsets.select import select

                    own = x[row, torch.from_numpy(candidates).to(x.device)].detach().float().cpu()
                    keep = candidates[select(own, limit, method=self.select, seed=int(rng.integers(2**31)))]
                drawn[row] = False
                drawn[row, torch.as_tensor(keep, device=drawn.device)] = True
        return drawn
