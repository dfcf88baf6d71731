"""Progress lines of long fits: where a k-means or a tree is, at most one line every few seconds, on stderr.

Quiet unless a caller asks for it with ``fit_progress`` (the ``curata`` command does): the estimators' parameters
and results do not change, and a library user sees nothing. Fits call ``stage`` (a level, a resampling step) and
``note`` (a Lloyd iteration); a line is printed when ``interval`` seconds have passed since the last one.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TextIO

__all__ = ["fit_progress", "note", "stage"]

_CURRENT: ContextVar[_Lines | None] = ContextVar("curata_fit_progress", default=None)


class _Lines:
    def __init__(self, prefix: str, interval: float, stream: TextIO) -> None:
        self.prefix, self.interval, self.stream = prefix, interval, stream
        self.started = self.last = time.monotonic()
        self.stages: list[str] = []

    def line(self, text: str) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        where = ", ".join([*self.stages, text] if text else self.stages)
        # the time since the command started, not since this fit: one clock for all of a command's lines
        print(f"{self.prefix}: {where} (at {now - self.started:.0f} s)", file=self.stream, flush=True)


@contextlib.contextmanager
def fit_progress(prefix: str, interval: float = 5.0, stream: TextIO | None = None) -> Iterator[None]:
    """Within it, fits print where they are: one line at most every ``interval`` seconds, on ``stream``
    (default stderr).

    Example:
        >>> import io, numpy as np
        >>> from curata import HierarchicalKMeans
        >>> out = io.StringIO()
        >>> with fit_progress("curate", interval=0, stream=out):
        ...     _ = HierarchicalKMeans([8, 2], n_resampling_steps=1, n_iter=2).fit(np.eye(16))
        >>> out.getvalue().splitlines()[0]
        'curate: level 1 of 2 (8 clusters) (at 0 s)'
    """
    token = _CURRENT.set(_Lines(prefix, interval, stream or sys.stderr))
    try:
        yield
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def stage(text: str) -> Iterator[None]:
    """Name the part of a fit running within it (``level 1 of 2 (500 clusters)``); reported at once if due."""
    lines = _CURRENT.get()
    if lines is None:
        yield
        return
    lines.stages.append(text)
    try:
        lines.line("")
        yield
    finally:
        lines.stages.pop()


def note(text: str) -> None:
    """Report a step within the current stages (``k-means of 500 clusters: iteration 3 of 20``), if due."""
    lines = _CURRENT.get()
    if lines is not None:
        lines.line(text)
