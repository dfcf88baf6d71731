"""curata: describe a dataset with a pretrained model, cluster the embeddings, curate balanced subsets and build
smart mini-batches.

Example:
    >>> import curata
    >>> sorted(curata.__all__)[:3]
    ['TorchEmbedder', 'VectorTable', 'Vectorizer']
"""

from curata.curate import curate
from curata.describe import describe
from curata.embed import TorchEmbedder
from curata.hierarchical import HierarchicalKMeans
from curata.kmeans import KMeans
from curata.sampler import ClusterBatchSampler
from curata.table import VectorTable
from curata.vectorize import Vectorizer, Vectors

__all__ = [
    "ClusterBatchSampler",
    "HierarchicalKMeans",
    "KMeans",
    "TorchEmbedder",
    "VectorTable",
    "Vectorizer",
    "Vectors",
    "curate",
    "describe",
]
__version__ = "0.1.0"
