"""Looking at the data: the static HTML report."""

from curata.explore.report import report

__all__ = ["report"]
