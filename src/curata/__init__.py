"""curata: describe a dataset with a pretrained model, cluster the embeddings, curate balanced subsets and build
smart mini-batches.

Example:
    >>> import numpy as np, curata
    >>> ids = curata.curate(np.array([0] * 8 + [1] * 2), 4, seed=0)
    >>> np.bincount(np.array([0] * 8 + [1] * 2)[ids]).tolist()
    [2, 2]
"""

from curata.adapters import add_to_hf, add_to_pixeltable, table_from_hf, table_from_pixeltable
from curata.clusterize import cluster, reduce
from curata.contamination import contamination
from curata.curate import curate
from curata.dedup import dedup, dedup_curve
from curata.describe import describe
from curata.embed import TorchEmbedder
from curata.estimator import NotFittedError
from curata.exact_duplicates import exact_duplicates
from curata.hierarchical import HierarchicalKMeans
from curata.images import ImageFolder
from curata.kmeans import KMeans
from curata.locking import TableLockedError
from curata.multimodal import MultimodalEmbedder
from curata.report import report
from curata.sampler import ClusterBatchSampler
from curata.segment_labels import majority_labels, patch_labels
from curata.select import select
from curata.split import leakage, split
from curata.table import DamagedTableError, VectorTable
from curata.vectorize import Vectorizer, Vectors

__all__ = [
    "ClusterBatchSampler",
    "DamagedTableError",
    "HierarchicalKMeans",
    "ImageFolder",
    "KMeans",
    "MultimodalEmbedder",
    "NotFittedError",
    "TableLockedError",
    "TorchEmbedder",
    "VectorTable",
    "Vectorizer",
    "Vectors",
    "add_to_hf",
    "add_to_pixeltable",
    "cluster",
    "curate",
    "contamination",
    "dedup",
    "dedup_curve",
    "exact_duplicates",
    "describe",
    "leakage",
    "majority_labels",
    "patch_labels",
    "reduce",
    "report",
    "select",
    "split",
    "table_from_hf",
    "table_from_pixeltable",
]
__version__ = "0.1.0"
