"""Where vectors live: VectorTable (Lance), row access in memory or streamed under a budget, locks, adapters."""

from curata.store.adapters import add_to_hf, add_to_pixeltable, table_from_hf, table_from_pixeltable
from curata.store.locking import TableLockedError
from curata.store.table import DamagedTableError, VectorTable

__all__ = [
    "DamagedTableError",
    "TableLockedError",
    "VectorTable",
    "add_to_hf",
    "add_to_pixeltable",
    "table_from_hf",
    "table_from_pixeltable",
]
