"""curata: describe a dataset with a pretrained model, cluster the embeddings, curate balanced subsets and build
smart mini-batches.

Example:
    >>> import numpy as np, curata
    >>> ids = curata.curate(np.array([0] * 8 + [1] * 2), 4, seed=0)
    >>> np.bincount(np.array([0] * 8 + [1] * 2)[ids]).tolist()
    [2, 2]
"""

from curata.batching.sampler import ClusterBatchSampler
from curata.clustering.clusterize import cluster, reduce
from curata.clustering.estimator import NotFittedError
from curata.clustering.hierarchical import HierarchicalKMeans
from curata.clustering.kmeans import KMeans
from curata.embedding.embed import TorchEmbedder
from curata.embedding.job import describe
from curata.embedding.multimodal import MultimodalEmbedder
from curata.embedding.segment_labels import majority_labels, patch_labels
from curata.embedding.vectorize import Vectorizer, Vectors
from curata.exploring.explorer import explore
from curata.exploring.report import report
from curata.exporting.export import export, read_ids
from curata.sources.embeddings import table_from_embeddings
from curata.sources.huggingface import HuggingFaceDisk
from curata.sources.images import ImageFolder
from curata.sources.locations import Locations, recorded_source
from curata.sources.texts import TextFiles
from curata.sources.unreadable import Unreadable
from curata.sources.webdataset import WebDatasetShards
from curata.store.adapters import add_to_hf, add_to_pixeltable, table_from_hf, table_from_pixeltable
from curata.store.locking import TableLockedError
from curata.store.table import DamagedTableError, VectorTable
from curata.subsets.contamination import contamination
from curata.subsets.curate import curate
from curata.subsets.dedup import dedup, dedup_curve
from curata.subsets.exact_duplicates import exact_duplicates
from curata.subsets.retrieve import retrieve
from curata.subsets.select import select
from curata.subsets.split import leakage, split

__all__ = [
    "ClusterBatchSampler",
    "DamagedTableError",
    "HierarchicalKMeans",
    "HuggingFaceDisk",
    "ImageFolder",
    "KMeans",
    "Locations",
    "MultimodalEmbedder",
    "NotFittedError",
    "TableLockedError",
    "TextFiles",
    "Unreadable",
    "WebDatasetShards",
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
    "explore",
    "export",
    "describe",
    "leakage",
    "majority_labels",
    "patch_labels",
    "read_ids",
    "recorded_source",
    "reduce",
    "report",
    "retrieve",
    "select",
    "split",
    "table_from_embeddings",
    "table_from_hf",
    "table_from_pixeltable",
]
__version__ = "0.1.0"
