"""What every command leaves in its run directory: ids as .npy files, the paths of those ids as .txt files when the
table records its source, then summary.json (written last)."""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np

from curata._internal.atomic import save_npy_atomically, write_atomically
from curata._internal.distributed import is_distributed, rank_and_world

__all__ = ["finish", "path_lists", "recorded_locations", "recorded_parameters", "writes_outputs"]

_PARAMETERS: ContextVar[tuple[Any, list[str]] | None] = ContextVar("curata_run_parameters", default=None)


@contextlib.contextmanager
def recorded_parameters(args: Any, names: list[str]) -> Iterator[None]:
    """Within it, ``finish`` writes the values of ``names`` in ``args`` (a command's parsed arguments, as the
    command used them: defaults it resolved included) into ``summary.json`` as ``parameters``, so that a run says
    how it was made.

    Example:
        >>> import argparse, tempfile
        >>> out = Path(tempfile.mkdtemp())
        >>> with recorded_parameters(argparse.Namespace(n=3, out=out), ["n"]):
        ...     finish(out, "select", 0.0, {})  # doctest: +ELLIPSIS
        {"command": "select", "files": [], "parameters": {"n": 3}, ...}
    """
    token = _PARAMETERS.set((args, list(names)))
    try:
        yield
    finally:
        _PARAMETERS.reset(token)


def _parameters() -> dict[str, Any] | None:
    recorded = _PARAMETERS.get()
    if recorded is None:
        return None
    args, names = recorded
    values = {name: getattr(args, name, None) for name in names}
    return {name: str(v) if isinstance(v, Path) else v for name, v in values.items()}


def writes_outputs() -> bool:
    """Whether this process writes the run's files: always, except the ranks other than 0 under torchrun."""
    return not is_distributed() or rank_and_world()[0] == 0


def recorded_locations(table: Any) -> Any:
    """The source ``describe`` recorded with ``table`` (``Locations``), or None: none recorded, or a record that
    cannot be read (warned; a run's ids are written all the same)."""
    from curata.sources.locations import recorded_source

    try:
        return recorded_source(table)
    except ValueError as error:
        warnings.warn(f"no paths written beside the ids: {error}", RuntimeWarning, stacklevel=2)
        return None


def path_lists(table: Any, ids: dict[str, np.ndarray]) -> dict[str, str]:
    """For each ``name -> sample ids``, ``{"name.txt": text}``: each id's file (or ``shard.tar:member``,
    ``file:line``) a line, in the order of the ids; {} when the table records no source.

    Example:
        >>> import tempfile, os
        >>> from curata import VectorTable
        >>> table = VectorTable.from_arrays(os.path.join(tempfile.mkdtemp(), "t"), np.ones((2, 2)))
        >>> path_lists(table, {"selected": np.array([1])})
        {}
    """
    places = recorded_locations(table)
    if places is None:
        return {}
    return {f"{name}.txt": "".join(f"{places.where(i)}\n" for i in np.asarray(v).tolist()) for name, v in ids.items()}


def finish(
    out: Path,
    command: str,
    started: float,
    arrays: dict[str, np.ndarray],
    texts: dict[str, str] | None = None,
    **summary: Any,
) -> None:
    """Save ``arrays`` as ``out/NAME.npy`` and ``texts`` as ``out/NAME`` (e.g. ``selected.txt``, ``duplicates.jsonl``),
    then ``out/summary.json`` (the run is complete once it exists; with the command's parsed arguments as
    ``parameters`` under ``recorded_parameters``), and print the summary; under torchrun only rank 0 does."""
    if not writes_outputs():
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, values in arrays.items():
        save_npy_atomically(out / f"{name}.npy", values)
    for name, text in (texts or {}).items():
        write_atomically(out / name, lambda f, text=text: f.write_text(text, encoding="utf-8"))
    summary = {
        "command": command,
        "seconds": round(time.perf_counter() - started, 3),
        "files": sorted([*(f"{name}.npy" for name in arrays), *(texts or {})]),
        **summary,
    }
    parameters = _parameters()
    if parameters is not None:
        summary["parameters"] = parameters
    text = json.dumps(summary, indent=1, sort_keys=True, default=str)
    write_atomically(out / "summary.json", lambda f: f.write_text(text))  # last: the run is complete
    print(json.dumps(summary, sort_keys=True, default=str))
