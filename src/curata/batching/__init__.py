"""Smart mini-batches: ClusterBatchSampler and what it needs inside Lightning, accelerate and torchdata."""

from curata.batching.sampler import ClusterBatchSampler

__all__ = ["ClusterBatchSampler"]
