"""Looking at the data: the interactive explorer page and the static HTML report."""

from curata.explore.explorer import explore
from curata.explore.report import report

__all__ = ["explore", "report"]
