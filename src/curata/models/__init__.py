"""Models that load offline: presets, local Hugging Face folders, timm checkpoints, and their preprocessing."""

from curata.models.images import ImagePreprocess, efficientnet_lite0, timm_model
from curata.models.presets import PRESETS, LoadedModel, load_model
from curata.models.text import SentenceEncoder, huggingface_directory, minilm

__all__ = [
    "PRESETS",
    "ImagePreprocess",
    "LoadedModel",
    "SentenceEncoder",
    "efficientnet_lite0",
    "huggingface_directory",
    "load_model",
    "minilm",
    "timm_model",
]
