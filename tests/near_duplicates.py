"""Real near-duplicates for the dedup tests and bench/dedup.py: augmented copies of real grey images.

Each copy gets one augmentation, drawn with a seeded generator: a shift of 1-2 pixels, a crop of 85-95 % of the
side resized back, a horizontal flip, a brightness change of 15-30 %, or a JPEG re-encoding at quality 40-75.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

__all__ = ["AUGMENTATIONS", "augment", "with_copies", "mild_copies", "precision_recall"]


def _shift(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    dx, dy = rng.choice([-2, -1, 1, 2], size=2)
    return image.transform(image.size, Image.AFFINE, (1, 0, int(dx), 0, 1, int(dy)), fillcolor=0)


def _crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    side = image.size[0]
    keep = int(round(side * rng.uniform(0.85, 0.95)))
    left, top = rng.integers(0, side - keep + 1, size=2)
    return image.crop((int(left), int(top), int(left) + keep, int(top) + keep)).resize(image.size, Image.BILINEAR)


def _flip(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageOps.mirror(image)


def _brightness(image: Image.Image, rng: np.random.Generator, change: tuple[float, float] = (0.15, 0.3)) -> Image.Image:
    factor = rng.uniform(*change) * rng.choice([-1, 1]) + 1
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.float32) * factor, 0, 255).astype(np.uint8))


def _jpeg(image: Image.Image, rng: np.random.Generator, quality: tuple[int, int] = (40, 76)) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(*quality)))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("L")


AUGMENTATIONS = {"shift": _shift, "crop": _crop, "flip": _flip, "brightness": _brightness, "jpeg": _jpeg}


def augment(image: np.ndarray, name: str, rng: np.random.Generator, **strength: tuple[float, float]) -> np.ndarray:
    """One augmented copy of a (H, W) uint8 image; ``strength`` overrides the ranges (``quality=(85, 96)`` for
    "jpeg", ``change=(0.0, 0.07)`` for "brightness")."""
    return np.asarray(AUGMENTATIONS[name](Image.fromarray(image), rng, **strength), dtype=np.uint8)


def with_copies(images: np.ndarray, copies: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``images`` followed by ``copies`` augmented copies of distinct randomly chosen ones.

    Returns (all images, source index of each copy, augmentation name of each copy).
    """
    rng = np.random.default_rng(seed)
    sources = rng.choice(len(images), copies, replace=False)
    names = rng.choice(list(AUGMENTATIONS), copies)
    made = np.stack([augment(images[s], n, rng) for s, n in zip(sources, names)])
    return np.concatenate([images, made]), sources, names


def mild_copies(originals: np.ndarray, copies: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``originals`` followed by copies of distinct random ones: a third JPEG re-encoded at quality 85-95, a third
    with brightness changed by up to 7 %, a third exact. Returns (all images, source index of each copy)."""
    rng = np.random.default_rng(seed)
    sources = rng.choice(len(originals), copies, replace=False)
    made = []
    for k, source in enumerate(sources):
        if k % 3 == 0:
            made.append(augment(originals[source], "jpeg", rng, quality=(85, 96)))
        elif k % 3 == 1:
            made.append(augment(originals[source], "brightness", rng, change=(0.0, 0.07)))
        else:
            made.append(originals[source].copy())
    return np.concatenate([originals, np.stack(made)]), sources


def precision_recall(kept: np.ndarray, originals: int, sources: np.ndarray) -> dict[str, float]:
    """Scores of a dedup over ``with_copies`` output: a removed copy, or a removed original whose copy was kept in
    its place, is a true removal; every other removal is a distinct image lost."""
    total = originals + len(sources)
    removed = np.setdiff1d(np.arange(total), kept)
    copy_of = {originals + i: int(s) for i, s in enumerate(sources)}
    source_of = {int(s): originals + i for i, s in enumerate(sources)}
    kept_set = set(kept.tolist())
    right = 0
    for row in removed.tolist():
        if row in copy_of and copy_of[row] in kept_set:
            right += 1
        elif row in source_of and source_of[row] in kept_set:
            right += 1
    pairs_resolved = sum(1 for i, s in enumerate(sources) if (int(s) in kept_set) != (originals + i in kept_set))
    distinct_lost = len(removed) - right
    return {
        "removed": len(removed),
        "precision": right / len(removed) if len(removed) else 1.0,
        "recall": pairs_resolved / len(sources),
        "distinct_removed": distinct_lost / originals,
    }
