"""Vectorizer: turns a batch of features into vectors, one per sample (pooled) or one per token or pixel."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from curata.checks import check_int

__all__ = ["Vectorizer", "Vectors"]

_POOLS = ("mean", "max")
PositionSpec = int | slice | list[int] | tuple[int, ...] | None


class Vectors(NamedTuple):
    """Vectors of a batch: ``vectors`` (R, C), ``sample`` (R,) the row's position in the batch, ``idx_vector`` (R,)."""

    vectors: torch.Tensor
    sample: torch.Tensor
    idx_vector: torch.Tensor


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
        select: pick those K vectors with a ``curata.select`` method instead of at random ("kcenter" keeps the
            K most spread-out patches of a sample, "kernel_points" the K that best match its distribution, ...),
            seeded by (seed, sample idx) too.
        mask_key: the key of a per-pixel mask in the dataset items; only positions where the mask is non-zero are
            kept (the mask is resized, nearest, to the feature map).
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
            from curata.select import METHODS

            if select not in METHODS:
                raise ValueError(f"select must be None or one of {METHODS}, got {select!r}")
            if max_vectors is None:
                raise ValueError("select needs max_vectors: how many vectors of each sample to keep")
        self.pool = pool
        self.keep = _check_positions(keep, "keep")
        self.remove = _check_positions(remove, "remove")
        self.max_vectors = max_vectors
        self.mask_key = mask_key
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
        }

    def __call__(self, features: torch.Tensor, *, idx: Any = None, mask: Any = None) -> Vectors:
        """Vectorize a batch. ``idx`` holds the samples' ids (for ``max_vectors`` draws; default 0..B-1)."""
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
        ids = torch.arange(batch) if idx is None else torch.as_tensor(idx).reshape(-1).cpu()
        if self.pool is not None:
            return self._pooled(x, selected)
        if self.max_vectors is not None:
            selected = self._draw(x, selected, ids)
        sample, position = selected.nonzero(as_tuple=True)
        return Vectors(x[sample, position], sample, position)

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
                    from curata.select import select

                    own = x[row, torch.from_numpy(candidates).to(x.device)].detach().float().cpu()
                    keep = candidates[select(own, limit, method=self.select, seed=int(rng.integers(2**31)))]
                drawn[row] = False
                drawn[row, torch.as_tensor(keep, device=drawn.device)] = True
        return drawn
