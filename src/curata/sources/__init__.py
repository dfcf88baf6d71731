"""Where samples come from: folders of images, text files, embeddings already computed."""

from curata.sources.embeddings import table_from_embeddings
from curata.sources.images import ImageFolder
from curata.sources.texts import TextFiles

__all__ = ["ImageFolder", "TextFiles", "table_from_embeddings"]
