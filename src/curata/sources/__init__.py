"""Where samples come from: folders of images."""

from curata.sources.images import ImageFolder

__all__ = ["ImageFolder"]
