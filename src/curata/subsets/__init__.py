"""Everything that returns a subset of rows: curate, select, split and leakage, dedup, exact duplicates,
contamination, retrieve."""

from curata.subsets.contamination import contamination
from curata.subsets.curate import curate
from curata.subsets.dedup import dedup, dedup_curve
from curata.subsets.exact_duplicates import exact_duplicates
from curata.subsets.retrieve import retrieve
from curata.subsets.select import select
from curata.subsets.split import leakage, split

__all__ = [
    "contamination",
    "curate",
    "dedup",
    "dedup_curve",
    "exact_duplicates",
    "leakage",
    "retrieve",
    "select",
    "split",
]
