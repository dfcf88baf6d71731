"""Run by tests/clustering/test_hierarchical.py: HierarchicalKMeans.fit with a checkpoint, SIGKILLed after the
N-th file rename.

Usage: checkpoint_job.py CHECKPOINT_DIR OUT.npy [N]   (no N: run to the end and save the labels to OUT.npy)
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np

from curata import HierarchicalKMeans


def data() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(3000, 6)).astype(np.float32)


def fit(checkpoint: str) -> np.ndarray:
    return (
        HierarchicalKMeans([30, 8, 3], n_resampling_steps=1, n_iter=5, seed=0)
        .fit(data(), checkpoint=checkpoint)
        .labels_
    )


if __name__ == "__main__":
    if len(sys.argv) > 3:
        kill_at, renames, replace = int(sys.argv[3]), [0], os.replace

        def dying_replace(source, target):  # every file of a checkpoint is staged, then renamed into place
            replace(source, target)
            renames[0] += 1
            if renames[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

        os.replace = dying_replace
    np.save(sys.argv[2], fit(sys.argv[1]))
