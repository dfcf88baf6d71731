"""Segmentation masks as labels: per-pixel label maps brought to a feature map's grid, or to a ViT's tokens.

A (H, W) map of integer labels is reduced to a coarser (h, w) grid by majority: each cell takes the label most of
its pixels carry (ignored pixels do not vote; the smallest label wins a tie; a cell of ignored pixels only is
ignored). Nearest-neighbour resizing instead takes one pixel per cell, so a thin object can vanish or a cell be
labelled by its corner.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from curata._internal.checks import check_int

__all__ = ["majority_labels", "patch_labels"]


def _as_label_maps(mask: Any, name: str) -> torch.Tensor:
    maps = torch.as_tensor(mask)
    if maps.is_floating_point() or maps.is_complex() or maps.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer labels, got {maps.dtype}")
    return maps.long()


def majority_labels(mask: Any, size: tuple[int, ...], ignore_label: int | None = None) -> torch.Tensor:
    """(B, *S) integer label maps -> (B, *size): the majority label of each cell when S is a multiple of ``size``,
    else the nearest pixel's label.

    Example:
        >>> mask = torch.tensor([[[1, 1, 2, 2], [1, 3, 2, 2], [0, 0, 9, 9], [0, 5, 9, 9]]])
        >>> majority_labels(mask, (2, 2)).tolist()
        [[[1, 2], [0, 9]]]
        >>> majority_labels(mask, (2, 2), ignore_label=9).tolist()  # a cell of ignored pixels stays ignored
        [[[1, 2], [0, 9]]]
    """
    maps = _as_label_maps(mask, "mask")
    spatial = tuple(maps.shape[1:])
    if len(spatial) != len(size):
        raise ValueError(f"mask of shape {tuple(maps.shape)} does not match a grid of {len(size)} dimensions {size}")
    if spatial == tuple(size):
        return maps
    if any(s % t for s, t in zip(spatial, size)):
        return F.interpolate(maps.unsqueeze(1).double(), size=size, mode="nearest")[:, 0].long()
    factors = [s // t for s, t in zip(spatial, size)]
    blocks = maps
    for axis, (cells, factor) in enumerate(zip(size, factors)):  # (B, c0, f0, c1, f1, ...)
        blocks = blocks.unflatten(1 + 2 * axis, (cells, factor))
    cell_axes = [1 + 2 * a for a in range(len(size))]
    blocks = blocks.permute(0, *cell_axes, *[a + 1 for a in cell_axes]).flatten(1 + len(size))
    present = torch.unique(maps)
    if ignore_label is not None:
        present = present[present != ignore_label]
    if len(present) == 0:
        return torch.full((len(maps), *size), ignore_label if ignore_label is not None else 0, dtype=torch.long)
    counts = torch.stack([(blocks == label).sum(dim=-1) for label in present.tolist()], dim=-1)
    winner = present[counts.argmax(dim=-1)]  # argmax takes the first maximum: the smallest label of a tie
    if ignore_label is not None:
        winner = torch.where(counts.sum(dim=-1) == 0, ignore_label, winner)
    return winner


def patch_labels(mask: Any, patch_size: int, *, ignore_label: int = -1, prefix_tokens: int = 0) -> torch.Tensor:
    """One label per ViT token from (B, H, W) or (H, W) label maps: the majority label of each patch_size x
    patch_size patch (row-major, as ViTs flatten patches), after ``prefix_tokens`` entries of ``ignore_label`` for
    the CLS and register tokens.

    Pixels labelled ``ignore_label`` do not vote. Feed the result as the ``label_mask_key`` entry of a
    ``Vectorizer`` to give every token vector its patch's label.

    Example:
        >>> mask = torch.tensor([[1, 1, 2, 2], [1, 1, 2, 0], [3, 3, 0, 0], [3, 3, 0, 0]])
        >>> patch_labels(mask, 2, prefix_tokens=1).tolist()
        [-1, 1, 2, 3, 0]
    """
    check_int(patch_size, "patch_size", minimum=1)
    check_int(prefix_tokens, "prefix_tokens", minimum=0)
    maps = _as_label_maps(mask, "mask")
    single = maps.ndim == 2
    if single:
        maps = maps.unsqueeze(0)
    if maps.ndim != 3:
        raise ValueError(f"mask must be (H, W) or (B, H, W) label maps, got shape {tuple(maps.shape)}")
    height, width = maps.shape[1:]
    if height % patch_size or width % patch_size:
        raise ValueError(f"mask of {height} x {width} pixels is not a whole number of {patch_size}-pixel patches")
    grid = majority_labels(maps, (height // patch_size, width // patch_size), ignore_label).flatten(1)
    tokens = torch.cat([torch.full((len(maps), prefix_tokens), ignore_label, dtype=torch.long), grid], dim=1)
    return tokens[0] if single else tokens
