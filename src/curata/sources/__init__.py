"""Where samples come from: image folders, WebDataset shards, text files, saved Hugging Face datasets, embeddings
already computed. A source returns ``Unreadable`` for an item it cannot read; ``describe`` skips and counts it."""

from curata.sources.embeddings import table_from_embeddings
from curata.sources.huggingface import HuggingFaceDisk
from curata.sources.images import ImageFolder
from curata.sources.locations import Locations, open_source, record_source, recorded_source
from curata.sources.text_paths import expand_text_paths
from curata.sources.texts import TextFiles
from curata.sources.unreadable import Unreadable
from curata.sources.webdataset import WebDatasetShards

__all__ = [
    "HuggingFaceDisk",
    "ImageFolder",
    "Locations",
    "TextFiles",
    "Unreadable",
    "WebDatasetShards",
    "expand_text_paths",
    "open_source",
    "record_source",
    "recorded_source",
    "table_from_embeddings",
]
