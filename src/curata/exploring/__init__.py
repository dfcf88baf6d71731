"""Looking at the data: the interactive explorer page and the static HTML report."""

from curata.exploring.explorer import explore
from curata.exploring.report import report

__all__ = ["explore", "report"]
