"""Where samples come from: folders of images, embeddings already computed."""

from curata.sources.embeddings import table_from_embeddings
from curata.sources.images import ImageFolder

__all__ = ["ImageFolder", "table_from_embeddings"]
