"""From samples to vectors: TorchEmbedder, MultimodalEmbedder, Vectorizer, segmentation labels, describe()."""

from curata.embedding.embed import TorchEmbedder
from curata.embedding.job import describe
from curata.embedding.multimodal import MultimodalEmbedder
from curata.embedding.segment_labels import majority_labels, patch_labels
from curata.embedding.vectorize import Vectorizer, Vectors

__all__ = [
    "MultimodalEmbedder",
    "TorchEmbedder",
    "Vectorizer",
    "Vectors",
    "describe",
    "majority_labels",
    "patch_labels",
]
