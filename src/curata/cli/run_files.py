"""What every command leaves in its run directory: row ids as .npy files, then summary.json (written last)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from curata._internal.atomic import save_npy_atomically, write_atomically
from curata._internal.distributed import is_distributed, rank_and_world

__all__ = ["finish", "writes_outputs"]


def writes_outputs() -> bool:
    """Whether this process writes the run's files: always, except the ranks other than 0 under torchrun."""
    return not is_distributed() or rank_and_world()[0] == 0


def finish(out: Path, command: str, started: float, arrays: dict[str, np.ndarray], **summary: Any) -> None:
    """Save ``arrays`` as ``out/NAME.npy``, then ``out/summary.json`` (the run is complete once it exists), and
    print the summary; under torchrun only rank 0 does."""
    if not writes_outputs():
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, values in arrays.items():
        save_npy_atomically(out / f"{name}.npy", values)
    summary = {
        "command": command,
        "seconds": round(time.perf_counter() - started, 3),
        "files": sorted(f"{name}.npy" for name in arrays),
        **summary,
    }
    text = json.dumps(summary, indent=1, sort_keys=True, default=str)
    write_atomically(out / "summary.json", lambda f: f.write_text(text))  # last: the run is complete
    print(json.dumps(summary, sort_keys=True, default=str))
