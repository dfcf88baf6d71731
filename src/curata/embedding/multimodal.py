"""MultimodalEmbedder: one embedder per modality of a sample (image, text, audio...), their outputs fused."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from curata.embedding.embed import _check_fusion, as_embedder, embedder_fingerprint, fuse

__all__ = ["MultimodalEmbedder"]


class MultimodalEmbedder:
    """Embeds each modality of a batch with its own embedder and fuses the results into one tensor.

    The batch is a mapping holding every modality's key (dict items whose ``data_key`` entry is itself a dict, e.g.
    ``{"data": {"image": ..., "text": ...}, "label": 3}``, collate into one). Each embedder gives (B, C) vectors,
    (B, T, C) tokens or (B, C, H, W) maps; they are fused as ``TorchEmbedder`` fuses layers: "concat" along the
    channels, or "mean" / "sum" / "max" of equal-width outputs (maps resized to the largest, vectors spread over
    every position). Put both modalities in one space first (e.g. CLIP's two towers) for mean/sum/max to mean
    anything.

    Args:
        embedders: modality key -> a ``TorchEmbedder``, an ``nn.Module`` or a callable batch -> Tensor.
        fusion: "concat", "mean", "sum" or "max".

    Example:
        >>> from torch import nn
        >>> image, text = nn.Linear(4, 3), nn.Linear(6, 2)
        >>> both = MultimodalEmbedder({"image": image, "text": text})
        >>> both({"image": torch.rand(5, 4), "text": torch.rand(5, 6)}).shape
        torch.Size([5, 5])
    """

    def __init__(self, embedders: Mapping[str, Any], *, fusion: str = "concat") -> None:
        if not isinstance(embedders, Mapping) or not embedders:
            raise ValueError(f"embedders must be a non-empty dict of modality -> embedder, got {embedders!r}")
        self.embedders = {str(key): as_embedder(embedder) for key, embedder in embedders.items()}
        self.fusion = _check_fusion(fusion, "fusion")

    def fingerprint(self) -> dict[str, Any]:
        """Each modality's embedder fingerprint and the fusion."""
        return {
            "kind": "MultimodalEmbedder",
            "fusion": self.fusion,
            "embedders": {key: embedder_fingerprint(embedder) for key, embedder in self.embedders.items()},
        }

    def __call__(self, batch: Any) -> torch.Tensor:
        """Run every modality's embedder on its entry of ``batch`` and fuse the outputs."""
        if not isinstance(batch, Mapping):
            raise TypeError(
                f"a MultimodalEmbedder needs a dict batch with keys {sorted(self.embedders)}, got "
                f"{type(batch).__name__}"
            )
        missing = sorted(set(self.embedders) - set(batch))
        if missing:
            raise KeyError(f"the batch lacks the modalities {missing}; its keys are {sorted(batch)}")
        outputs = []
        for key, embedder in self.embedders.items():
            out = embedder(batch[key])
            if not isinstance(out, torch.Tensor) or out.ndim < 2:
                shown = type(out).__name__ if not isinstance(out, torch.Tensor) else f"shape {tuple(out.shape)}"
                raise TypeError(f"the {key!r} embedder must return a (B, C, ...) tensor, got {shown}")
            outputs.append(out.movedim(-1, 1) if out.ndim == 3 else out)  # tokens to channels-first for fuse
        sizes = {len(out) for out in outputs}
        if len(sizes) > 1:
            raise ValueError(f"the modalities' embedders returned different batch sizes: {sorted(sizes)}")
        fused = fuse(outputs, self.fusion)
        return fused.movedim(1, -1) if fused.ndim == 3 else fused
