"""Clustering: KMeans, HierarchicalKMeans, cluster() and reduce() over a table."""

from curata.clustering.clusterize import cluster, reduce
from curata.clustering.estimator import NotFittedError
from curata.clustering.hierarchical import HierarchicalKMeans
from curata.clustering.kmeans import KMeans

__all__ = ["HierarchicalKMeans", "KMeans", "NotFittedError", "cluster", "reduce"]
