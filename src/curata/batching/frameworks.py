"""What a batch sampler that deals its own batches to ranks needs to live inside Lightning, accelerate and torchdata.

Three frameworks touch a DataLoader's batch sampler, each in its own way:

- **Lightning** (``use_distributed_sampler=True``, its default under DDP) re-creates a custom batch sampler with a
  ``DistributedSampler`` passed as its ``sampler`` argument. It reads the constructor's arguments from attributes it
  records itself, but only for ``BatchSampler`` subclasses built inside a ``*_dataloader`` hook; for any other, it
  calls ``cls(sampler, batch_size=..., drop_last=...)``. :func:`record_init_arguments` records them for a sampler
  built anywhere, so that the re-creation keeps every setting.
- **accelerate** wraps the batch sampler in its own shard (``BatchSamplerShard``), which deals the batches it reads
  to the processes. A sampler that deals per rank itself would then be dealt twice (each rank sees 1/world^2 of the
  data). :func:`outer_shards` tells the sampler, from the object iterating it, that it must yield the whole epoch.
- **torchdata**'s ``StatefulDataLoader`` calls ``state_dict``/``load_state_dict`` of the batch sampler; a plain
  DataLoader cannot resume mid-epoch, which :func:`warn_if_not_resumable` says once where Lightning is in use.
"""

from __future__ import annotations

import sys
import warnings
from types import FrameType
from typing import Any

from curata._internal.checks import is_int

__all__ = ["record_init_arguments", "outer_shards", "warn_if_not_resumable"]

_LIGHTNING_MODULES = ("lightning", "pytorch_lightning")
_warned_not_resumable = False


def record_init_arguments(sampler: object, arguments: dict[str, Any]) -> None:
    """Record ``sampler``'s constructor arguments where Lightning looks when it re-creates a batch sampler.

    ``arguments`` must name every parameter (Lightning then replaces ``sampler`` and calls ``cls(**arguments)``).

    Example:
        >>> class Batches:
        ...     def __init__(self, size, *, sampler=None):
        ...         record_init_arguments(self, {"size": size, "sampler": sampler})
        >>> getattr(Batches(4), "__pl_saved_kwargs")
        {'size': 4, 'sampler': None}
    """
    # Lightning's names (lightning.fabric.utilities.data._wrap_init_method); a copy, since it edits the dict in place
    object.__setattr__(sampler, "__pl_saved_args", ())
    object.__setattr__(sampler, "__pl_saved_kwargs", dict(arguments))
    object.__setattr__(sampler, "__pl_saved_arg_names", ())
    object.__setattr__(sampler, "__pl_saved_default_kwargs", {})


def outer_shards(caller: FrameType | None, sampler: object) -> int:
    """How many processes the object iterating ``sampler`` deals its batches to (1 when it deals nothing).

    ``caller`` is the frame that called ``iter(sampler)`` or ``len(sampler)``. A batch-sharding wrapper (accelerate's
    ``BatchSamplerShard``) holds the sampler as ``batch_sampler`` and states ``num_processes``; under it, the
    sampler must yield the whole epoch's batches, as a plain ``BatchSampler`` does.

    Example:
        >>> import sys
        >>> outer_shards(sys._getframe(), object())
        1
    """
    owner = caller.f_locals.get("self") if caller is not None else None
    if owner is None or getattr(owner, "batch_sampler", None) is not sampler:
        return 1
    processes = getattr(owner, "num_processes", None)
    return int(processes) if is_int(processes) and processes >= 1 else 1


def warn_if_not_resumable(caller: FrameType | None) -> None:
    """Warn once per process when Lightning is in use and a plain DataLoader iterates the sampler.

    Lightning restores a mid-epoch checkpoint exactly only through a loader with ``state_dict``; a plain DataLoader
    replays the epoch's first batches and skips others.
    """
    global _warned_not_resumable
    if _warned_not_resumable or not any(name in sys.modules for name in _LIGHTNING_MODULES):
        return
    frame, depth = caller, 0
    while frame is not None and depth < 4:  # the DataLoader's iterator is at most a wrapper or two above
        owner = frame.f_locals.get("self")
        if type(owner).__name__.endswith("DataLoaderIter") and type(owner).__module__.startswith("torch.utils.data"):
            _warned_not_resumable = True
            warnings.warn(
                "ClusterBatchSampler is iterated by a plain torch DataLoader: a checkpoint saved mid-epoch cannot "
                "resume at the same batch (Lightning replays the epoch's first batches and skips others). Build the "
                "loader with torchdata.stateful_dataloader.StatefulDataLoader(dataset, batch_sampler=...) to resume "
                "exactly.",
                stacklevel=2,
            )
            return
        frame, depth = frame.f_back, depth + 1
